"""A two-service stack file and shortcuts that parse and convert stack texts."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from deploybot.runner.stack import StackFileError, parse_stack_file, service_specs

NS = "app"
SECOND = 1_000_000_000

TWO_SERVICES = """
version: "3.8"
services:
  web:
    build:
      context: ./web
      dockerfile: docker/Dockerfile.prod
      args: [VERSION=1.2, FROM_ENV]
      target: runtime
    image: example/web:latest
    entrypoint: /docker-entrypoint.sh
    command: gunicorn -b 0.0.0.0:8000 "app:create()"
    environment:
      - DEBUG=0
      - API_KEY
      - UNSET
    labels:
      role: frontend
    healthcheck:
      test: curl -fsS http://localhost:8000/health
      interval: 10s
      timeout: 3s
      start_period: 1m30s
      retries: 3
    ports:
      - "8080:8000"
      - target: 9000
        published: 9000
        protocol: udp
        mode: ingress
    volumes:
      - data:/var/lib/web
      - /etc/ssl/certs:/etc/ssl/certs:ro
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 64m}
    networks:
      backend:
        aliases: [api]
      edge:
    deploy:
      endpoint_mode: vip
      replicas: 3
      labels: {traefik.enable: "true"}
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.1
        order: start-first
      resources:
        limits: {cpus: "0.5", memory: 512M, pids: 200}
        reservations: {cpus: "0.25", memory: 128M}
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
  worker:
    image: example/worker:2
    command: [celery, worker]
    restart: on-failure:5
    deploy:
      mode: global
networks:
  backend:
    attachable: true
  edge:
    external: true
    name: traefik-public
volumes:
  data:
    labels: {backup: daily}
"""


def _stack_specs(
    text: str, images: Mapping[str, str] | None = None, **options: Any
) -> dict[str, dict[str, Any]]:
    stack = parse_stack_file(textwrap.dedent(text), env=options.pop("env", None))
    specs = service_specs(stack, NS, images or {}, **options)
    return {s.service: s.spec for s in specs}


def _web(text: str, **options: Any) -> dict[str, Any]:
    """Spec of a one-service stack `web` whose body is `text` (indented service keys)."""
    body = textwrap.indent(textwrap.dedent(text), "    ")
    return _stack_specs(f"services:\n  web:\n    image: nginx\n{body}", **options)["web"]


def _error(text: str, env: Mapping[str, str] | None = None) -> StackFileError:
    with pytest.raises(StackFileError) as caught:
        parse_stack_file(textwrap.dedent(text), env=env)
    return caught.value


def _web_error(text: str) -> StackFileError:
    body = textwrap.indent(textwrap.dedent(text), "    ")
    return _error(f"services:\n  web:\n    image: nginx\n{body}")
