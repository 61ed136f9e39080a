"""Image references normalised as the docker CLI stores them in a service spec."""

from __future__ import annotations

import pytest

from deploybot.runner.stack import service_specs
from deploybot.runner.stack.images import normalize_image
from deploybot.runner.stack.loading import parse_stack_file

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("redis", "redis:latest"),
        ("redis:alpine", "redis:alpine"),
        ("dockersamples/examplevotingapp_worker", "dockersamples/examplevotingapp_worker:latest"),
        ("docker.io/library/redis", "redis:latest"),
        ("index.docker.io/library/redis:7", "redis:7"),
        ("docker.io/foo/bar", "foo/bar:latest"),
        ("docker.io/library/foo/bar:1", "library/foo/bar:1"),
        ("127.0.0.1:5000/app/web", "127.0.0.1:5000/app/web:latest"),
        ("127.0.0.1:5000/app/web:2", "127.0.0.1:5000/app/web:2"),
        ("localhost/web", "localhost/web:latest"),
        ("ghcr.io/org/web", "ghcr.io/org/web:latest"),
        (f"redis@{DIGEST}", f"redis@{DIGEST}"),
        (f"127.0.0.1:5000/app/web:1@{DIGEST}", f"127.0.0.1:5000/app/web:1@{DIGEST}"),
        (f"docker.io/library/redis:7@{DIGEST}", f"redis:7@{DIGEST}"),
    ],
)
def test_normalised_like_the_docker_cli(written: str, stored: str) -> None:
    assert normalize_image(written) == stored


def test_the_spec_runs_the_normalised_image_and_the_label_keeps_the_written_one() -> None:
    stack = parse_stack_file(
        'version: "3.8"\nservices:\n  worker:\n    image: dockersamples/worker\n',
        filename="docker-stack.yml",
    )
    (spec,) = service_specs(stack, "vote", {})
    assert spec.spec["TaskTemplate"]["ContainerSpec"]["Image"] == "dockersamples/worker:latest"
    assert spec.spec["Labels"]["com.docker.stack.image"] == "dockersamples/worker"
