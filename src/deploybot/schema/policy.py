"""GraphQL types of the deploy policy (admin only): what deployments may do to the nodes."""

from __future__ import annotations

from datetime import datetime

import strawberry

from deploybot.core import policy as core
from deploybot.schema.common import UserError


@strawberry.type(description="A range of ports (start = end for one port).")
class PortRange:
    start: int
    end: int


@strawberry.input(description="A range of ports (give end = start, or omit end, for one port).")
class PortRangeInput:
    start: int
    end: int | None = None


@strawberry.type(
    description="What deployments may do to the nodes, checked by deploy, validateDeployment"
    " and again by the runner (after Argo CD's AppProject and Portainer's security settings)."
)
class DeployPolicy:
    repositories: list[str] = strawberry.field(
        description="Globs of repository URLs deploys may come from. Local paths and file://"
        " URLs only match patterns that start with file:// (never `*`)."
    )
    registries: list[str] = strawberry.field(
        description="Globs of registries (`127.0.0.1:5000`, `*.example.com`) or registry paths"
        " (`ghcr.io/acme/*`) images may come from; Docker Hub is docker.io."
    )
    bind_mount_prefixes: list[str] = strawberry.field(
        description="Host path prefixes bind mounts may come from; none: no bind mounts."
    )
    capabilities: list[str] = strawberry.field(
        description="Capabilities `cap_add` may add (CAP_NET_ADMIN...; ALL: any)."
    )
    sysctls: list[str] = strawberry.field(description="Globs of sysctls services may set.")
    published_ports: list[PortRange] = strawberry.field(
        description="The ports services may publish on the nodes."
    )
    allow_devices: bool = strawberry.field(
        description="Whether `devices` (and volumes over host devices) are allowed."
    )
    allow_host_namespaces: bool = strawberry.field(
        description="Whether the host's network, pid, ipc, uts, user or cgroup namespace may be"
        " shared (`network_mode: host`, the `host` network, `pid: host`...)."
    )
    allow_privileged: bool = strawberry.field(
        description="Whether `privileged: true` and unconfined `security_opt` are allowed."
    )
    edited: bool = strawberry.field(
        description="False: the settings' policy (DEPLOYBOT_POLICY_*); true: an admin's edit."
    )
    updated_at: datetime | None = strawberry.field(description="When an admin last edited it.")
    updated_by: str | None = strawberry.field(description="Who last edited it.")

    @classmethod
    def of(cls, stored: core.StoredPolicy) -> DeployPolicy:
        policy = stored.policy
        return cls(
            repositories=list(policy.repositories),
            registries=list(policy.registries),
            bind_mount_prefixes=list(policy.bind_mount_prefixes),
            capabilities=list(policy.capabilities),
            sysctls=list(policy.sysctls),
            published_ports=[PortRange(start=r.start, end=r.end) for r in policy.published_ports],
            allow_devices=policy.allow_devices,
            allow_host_namespaces=policy.allow_host_namespaces,
            allow_privileged=policy.allow_privileged,
            edited=stored.edited,
            updated_at=stored.updated_at,
            updated_by=stored.updated_by,
        )


@strawberry.input(
    description="Change the deploy policy: each field given replaces the policy's list or flag;"
    " `reset` first goes back to the settings' policy."
)
class UpdateDeployPolicyInput:
    repositories: list[str] | None = None
    registries: list[str] | None = None
    bind_mount_prefixes: list[str] | None = None
    capabilities: list[str] | None = None
    sysctls: list[str] | None = None
    published_ports: list[PortRangeInput] | None = None
    allow_devices: bool | None = None
    allow_host_namespaces: bool | None = None
    allow_privileged: bool | None = None
    reset: bool = False
    client_mutation_id: str | None = None

    def to_core(self) -> core.PolicyChange:
        """The change (PolicyError for a port range that makes no sense)."""

        def strings(values: list[str] | None) -> tuple[str, ...] | None:
            return None if values is None else tuple(v.strip() for v in values)

        ports = None
        if self.published_ports is not None:
            ports = tuple(
                core.port_range(p.start, p.start if p.end is None else p.end)
                for p in self.published_ports
            )
        return core.PolicyChange(
            repositories=strings(self.repositories),
            registries=strings(self.registries),
            bind_mount_prefixes=strings(self.bind_mount_prefixes),
            capabilities=strings(self.capabilities),
            sysctls=strings(self.sysctls),
            published_ports=ports,
            allow_devices=self.allow_devices,
            allow_host_namespaces=self.allow_host_namespaces,
            allow_privileged=self.allow_privileged,
            reset=self.reset,
        )


@strawberry.type
class UpdateDeployPolicyPayload:
    deploy_policy: DeployPolicy | None = strawberry.field(
        description="The policy now in force (null when the change was refused)."
    )
    user_errors: list[UserError]
    client_mutation_id: str | None
