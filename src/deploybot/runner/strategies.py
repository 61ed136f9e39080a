"""Deployment strategies as Swarm service specs (README, "Strategies", says the same).

- ROLLING: Swarm's rolling update; `UpdateConfig` is the stack file's
  `deploy.update_config`, with the request's `rollingUpdate` fields over it,
  and `parallelism 1, stop-first, pause` when neither says.
- RECREATE: the runner first stops every old task (the running spec held onto
  no node, `phases.held`) and waits until none runs, then deploys the new specs
  (all at once).
- BLUE_GREEN: first a `<service>-green` service runs the whole new version
  (every replica of the new spec, the service's network aliases, no published
  ports, no restarts) beside the old (blue) tasks, until every green task has
  run, and stayed healthy where the image has a healthcheck, for the stability
  window: the new version is complete and healthy before anything old stops.
  Then the service itself is updated with `UpdateConfig{Parallelism: 0, Order:
  start-first}` (each blue task stops only once its replacement runs) and the
  green service is removed. A green version that fails is removed and nothing
  else changes. The service keeps its name, DNS entry and Swarm history, which
  swapping two services would not (Swarm cannot rename a service).
- CANARY: a `<service>-canary` service with one task of the new spec (no
  published ports, the service's network aliases, no restarts) runs beside the
  old tasks for the canary period; it must stay running and healthy for that
  long. Then the service is updated as ROLLING and the canary removed; a canary
  that fails is removed and nothing else changes.
"""

from __future__ import annotations

import copy
from typing import Any

from deploybot.domain import DeploymentStrategy
from deploybot.inputs import RollingUpdate
from deploybot.runner.swarm import NAMESPACE_LABEL

NS = 1_000_000_000
CANARY_LABEL = "com.deploybot.canary-of"
TWIN_LABEL = "com.deploybot.green-of"


def _rolling(base: dict[str, Any] | None, rolling: RollingUpdate | None) -> dict[str, Any]:
    config = dict(base or {"Parallelism": 1, "Order": "stop-first", "FailureAction": "pause"})
    if rolling is None:
        return config
    if rolling.parallelism is not None:
        config["Parallelism"] = rolling.parallelism
    if rolling.delay is not None:
        config["Delay"] = int(rolling.delay * NS)
    if rolling.order is not None:
        config["Order"] = rolling.order
    if rolling.failure_action is not None:
        config["FailureAction"] = rolling.failure_action
    if rolling.monitor is not None:
        config["Monitor"] = int(rolling.monitor * NS)
    return config


def with_strategy(
    spec: dict[str, Any], strategy: DeploymentStrategy, rolling: RollingUpdate | None
) -> dict[str, Any]:
    """The service spec with the `UpdateConfig` the strategy needs."""
    body = copy.deepcopy(spec)
    base = body.get("UpdateConfig")
    if strategy in (DeploymentStrategy.ROLLING, DeploymentStrategy.CANARY):
        body["UpdateConfig"] = _rolling(base, rolling)
    elif strategy is DeploymentStrategy.BLUE_GREEN:
        body["UpdateConfig"] = {
            **(base or {}),
            "Parallelism": 0,
            "Order": "start-first",
            "FailureAction": (base or {}).get("FailureAction") or "pause",
        }
        body["UpdateConfig"].pop("Delay", None)
    else:
        body["UpdateConfig"] = {**(base or {}), "Parallelism": 0, "Order": "stop-first"}
        body["UpdateConfig"].pop("Delay", None)
    return body


def replicated(spec: dict[str, Any]) -> bool:
    return "Replicated" in spec.get("Mode", {})


def canary_spec(spec: dict[str, Any], service_name: str) -> dict[str, Any]:
    """One task of the new spec beside the old service, reachable by the service's aliases."""
    return twin_spec(spec, service_name, "canary", 1)


def green_spec(spec: dict[str, Any], service_name: str) -> dict[str, Any]:
    """Every replica of the new spec beside the old service (BLUE_GREEN's green version)."""
    replicas = int(spec.get("Mode", {}).get("Replicated", {}).get("Replicas", 1))
    return twin_spec(spec, service_name, "green", replicas)


def twin_spec(spec: dict[str, Any], service_name: str, role: str, replicas: int) -> dict[str, Any]:
    """A temporary service of the new spec beside the old one, reachable by its aliases,
    outside the stack (so a prune never takes it), without published ports or restarts."""
    body = copy.deepcopy(spec)
    body["Name"] = f"{service_name}-{role}"
    labels = {k: v for k, v in body.get("Labels", {}).items() if k != NAMESPACE_LABEL}
    labels[CANARY_LABEL if role == "canary" else TWIN_LABEL] = service_name
    body["Labels"] = labels
    body["Mode"] = {"Replicated": {"Replicas": replicas}}
    body["TaskTemplate"]["RestartPolicy"] = {"Condition": "none"}
    endpoint = body.get("EndpointSpec") or {}
    body["EndpointSpec"] = {"Mode": endpoint.get("Mode", "dnsrr")}
    body.pop("UpdateConfig", None)
    body.pop("RollbackConfig", None)
    return body
