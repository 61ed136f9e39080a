"""A compose service's ContainerSpec: command, environment, mounts, healthcheck, hosts, DNS,
capabilities and ulimits, as docker/cli's convert package builds it."""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Mapping
from typing import Any

from deploybot.runner.stack.images import normalize_image
from deploybot.runner.stack.model import NAMESPACE_LABEL, Invalid, StackFile
from deploybot.runner.stack.networks import Resolved, resolve
from deploybot.runner.stack.values import (
    compact,
    go_str,
    is_int,
    mapping,
    parse_bytes,
    parse_count,
    parse_duration,
    parse_volume_spec,
    shell_split,
)


def _command(value: object) -> list[str]:
    if isinstance(value, str):
        return shell_split(value)
    return [str(item) for item in value] if isinstance(value, list) else []


def _string_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def volume_defs(stack: StackFile, namespace: str) -> dict[str, Resolved]:
    return {key: resolve(key, config, namespace) for key, config in stack.volumes.items()}


def _healthcheck(config: Mapping[str, Any] | None, path: str) -> dict[str, Any] | None:
    """convertHealthcheck: `disable: true` means Test ["NONE"]; a string test runs in a shell."""
    if config is None:
        return None
    test = config.get("test")
    tests = ["CMD-SHELL", test] if isinstance(test, str) else [str(t) for t in test or []]
    if config.get("disable"):
        if tests:
            raise Invalid(f"{path}.healthcheck", "test and disable can't be set at the same time")
        return {"Test": ["NONE"]}
    durations = {
        name: parse_duration(config[key]) if key in config else 0
        for key, name in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start_period", "StartPeriod"),
            ("start_interval", "StartInterval"),
        )
    }
    retries = parse_count(config["retries"]) if "retries" in config else 0
    return compact({"Test": tests, **durations, "Retries": retries})


def _hosts(value: object, path: str) -> list[str]:
    """convertExtraHosts: 'host:ip' (or a mapping) to the engine's 'ip host' form."""
    if isinstance(value, dict):
        entries = sorted(f"{k}:{go_str(v)}" for k, v in value.items() if v is not None)
    else:
        entries = _string_list(value)
    hosts = []
    for index, entry in enumerate(entries):
        host, colon, ip = entry.partition(":")
        if not colon:
            # docker silently drops such entries; an error is kinder.
            raise Invalid(f"{path}.extra_hosts[{index}]", f"{entry!r} must be 'hostname:ip'")
        hosts.append(f"{ip} {host}")
    return hosts


def _dns_config(definition: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    nameservers = _string_list(definition.get("dns"))
    for index, server in enumerate(nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise Invalid(f"{path}.dns[{index}]", f"{server!r} is not an IP address") from None
    config = compact(
        {"Nameservers": nameservers, "Search": _string_list(definition.get("dns_search"))}
    )
    return config or None


def _capabilities(add: object, drop: object) -> tuple[list[str], list[str]]:
    """opts.EffectiveCapAddCapDrop: CAP_ prefix, upper case, ALL wins, adding beats dropping."""

    def normalise(values: object) -> set[str]:
        names = {str(v).strip().upper() for v in values} if isinstance(values, list) else set()
        return {n if n in ("ALL", "RESET") or n.startswith("CAP_") else f"CAP_{n}" for n in names}

    added, dropped = normalise(add), normalise(drop)
    if "ALL" in added:
        added = {"ALL"}
    if "ALL" in dropped:
        dropped = {"ALL"}
    return sorted(added), sorted(dropped - added)


def _ulimits(value: object) -> list[dict[str, Any]]:
    limits = []
    for name, limit in sorted(value.items()) if isinstance(value, dict) else []:
        soft, hard = (limit, limit) if is_int(limit) else (limit["soft"], limit["hard"])
        limits.append({"Name": str(name), "Soft": int(soft), "Hard": int(hard)})
    return limits


def _mounts(
    definition: Mapping[str, Any], volumes: Mapping[str, Resolved], namespace: str, path: str
) -> list[dict[str, Any]]:
    mounts = []
    for index, item in enumerate(definition.get("volumes") or []):
        volume = item if isinstance(item, dict) else parse_volume_spec(item)
        mounts.append(_mount(volume, volumes, namespace, f"{path}.volumes[{index}]"))
    return mounts


def _mount(
    volume: Mapping[str, Any], volumes: Mapping[str, Resolved], namespace: str, path: str
) -> dict[str, Any]:
    """convertVolumeToMount for volume, bind and tmpfs mounts."""
    kind = str(volume["type"])
    source = str(volume.get("source") or "")
    for option in ("bind", "volume", "tmpfs"):
        if option in volume and option != kind:
            raise Invalid(path, f"{option} options are incompatible with type {kind}")
    mount = compact(
        {
            "Type": kind,
            "Source": source,
            "Target": str(volume.get("target") or ""),
            "ReadOnly": bool(volume.get("read_only", False)),
            "Consistency": volume.get("consistency"),
        }
    )
    if kind == "bind":
        return {**mount, **_bind_options(volume, source, path)}
    if kind == "tmpfs":
        if source:
            raise Invalid(path, "tmpfs mounts cannot have a source")
        size = (volume.get("tmpfs") or {}).get("size")
        options = compact({"SizeBytes": parse_bytes(size) if size is not None else 0})
        return {**mount, "TmpfsOptions": options} if "tmpfs" in volume else mount
    if not source:
        return mount  # anonymous volume
    return {**mount, **_volume_options(volume, volumes, source, namespace, path)}


def _bind_options(volume: Mapping[str, Any], source: str, path: str) -> dict[str, Any]:
    if not source:
        raise Invalid(path, "bind mounts need a source")
    if not posixpath.isabs(source):
        raise Invalid(
            path,
            f"bind mount source {source!r} must be an absolute path: "
            "a Swarm task has no working directory to resolve it against",
        )
    if "bind" not in volume:
        return {}
    return {"BindOptions": compact({"Propagation": (volume.get("bind") or {}).get("propagation")})}


def _volume_options(
    volume: Mapping[str, Any],
    volumes: Mapping[str, Resolved],
    source: str,
    namespace: str,
    path: str,
) -> dict[str, Any]:
    """Named volumes: namespaced name, stack labels and driver, unless external."""
    stack_volume = volumes.get(source)
    if stack_volume is None:
        raise Invalid(path, f"undefined volume {source!r} (add it to the top-level `volumes:`)")
    options: dict[str, Any] = compact(
        {"NoCopy": bool((volume.get("volume") or {}).get("nocopy", False))}
    )
    if not stack_volume.external:
        config = stack_volume.config
        options["Labels"] = {**mapping(config.get("labels")), NAMESPACE_LABEL: namespace}
        driver_opts = config.get("driver_opts")
        if config.get("driver") or driver_opts is not None:
            options["DriverConfig"] = compact(
                {
                    "Name": config.get("driver"),
                    "Options": {str(k): go_str(v) for k, v in (driver_opts or {}).items()},
                }
            )
    return {"Source": stack_volume.name, "VolumeOptions": options}


def container_spec(
    definition: Mapping[str, Any],
    *,
    image: str,
    namespace: str,
    volumes: Mapping[str, Resolved],
    path: str,
) -> dict[str, Any]:
    cap_add, cap_drop = _capabilities(definition.get("cap_add"), definition.get("cap_drop"))
    environment = definition.get("environment") or {}
    spec = compact(
        {
            "Image": normalize_image(image),
            "Labels": {**mapping(definition.get("labels")), NAMESPACE_LABEL: namespace},
            "Command": _command(definition.get("entrypoint")),
            "Args": _command(definition.get("command")),
            "Hostname": definition.get("hostname"),
            "Env": [f"{k}={v}" for k, v in sorted(mapping(environment).items())],
            "Dir": definition.get("working_dir"),
            "User": definition.get("user"),
            "StopSignal": definition.get("stop_signal"),
            "TTY": definition.get("tty"),
            "OpenStdin": definition.get("stdin_open"),
            "ReadOnly": definition.get("read_only"),
            "Mounts": _mounts(definition, volumes, namespace, path),
            "Healthcheck": _healthcheck(definition.get("healthcheck"), path),
            "Hosts": _hosts(definition.get("extra_hosts"), path),
            "DNSConfig": _dns_config(definition, path),
            "Isolation": definition.get("isolation"),
            "Sysctls": mapping(definition.get("sysctls")),
            "CapabilityAdd": cap_add,
            "CapabilityDrop": cap_drop,
            "Ulimits": _ulimits(definition.get("ulimits")),
            "OomScoreAdj": definition.get("oom_score_adj"),
        }
    )
    # Pointers in the Go types: sent whenever set, even when false/zero.
    if "init" in definition:
        spec["Init"] = bool(definition["init"])
    if "stop_grace_period" in definition:
        spec["StopGracePeriod"] = parse_duration(definition["stop_grace_period"])
    # The CLI always sends Privileges (its credential spec, unsupported here, and no SELinux
    # context); the engine stores it as sent, so a spec without it would differ from docker's.
    spec["Privileges"] = {"CredentialSpec": None, "SELinuxContext": None}
    return spec
