"""Variable interpolation and the type casts after it."""

from __future__ import annotations

from deploybot.runner.stack import parse_stack_file, service_specs
from tests.runner.stack.examples import NS, _error, _stack_specs


def test_interpolation_forms() -> None:
    env = {"TAG": "v1", "EMPTY": "", "REPLICAS": "4", "PORT": "8080"}
    spec = _stack_specs(
        """
        services:
          web:
            image: example/web:${TAG}
            hostname: ${TAG}-host
            working_dir: /srv/$TAG-ignored
            environment:
              SOFT: ${EMPTY:-soft}
              HARD: ${EMPTY-hard}
              UNSET_SOFT: ${NOPE:-fallback}
              UNSET_HARD: ${NOPE-fallback}
              MISSING: x${NOPE}y
              DOLLARS: $$HOME and $${TAG}
            ports:
              - target: 80
                published: ${PORT}
            deploy:
              replicas: ${REPLICAS}
        """,
        env=env,
    )["web"]

    container = spec["TaskTemplate"]["ContainerSpec"]
    assert container["Image"] == "example/web:v1"
    assert container["Hostname"] == "v1-host"
    # docker/cli quirk, kept for parity: unbraced `$TAG-x` reads `-x` as a default.
    assert container["Dir"] == "/srv/v1"
    assert container["Env"] == [
        "DOLLARS=$HOME and ${TAG}",
        "HARD=",
        "MISSING=xy",
        "SOFT=soft",
        "UNSET_HARD=fallback",
        "UNSET_SOFT=fallback",
    ]
    assert spec["Mode"] == {"Replicated": {"Replicas": 4}}
    assert spec["EndpointSpec"]["Ports"][0]["PublishedPort"] == 8080


def test_required_variable_error_names_key_and_message() -> None:
    error = _error("services:\n  web:\n    image: web:${TAG:?set TAG to deploy}\n")

    assert error.key == "services.web.image"
    assert error.message == "required variable TAG is missing a value: set TAG to deploy"


def test_interpolated_value_of_wrong_type_is_rejected() -> None:
    error = _error(
        "services:\n  web:\n    image: x\n    deploy:\n      replicas: ${N}\n", env={"N": "many"}
    )

    assert error.key == "services.web.deploy.replicas"
    assert "failed to cast" in error.message


def test_environment_keys_without_value_come_from_env_or_are_dropped() -> None:
    stack = parse_stack_file(
        "services:\n  web:\n    image: x\n    environment: [B=2, A, C, D=]\n", env={"A": "from-env"}
    )

    assert stack.services["web"]["environment"] == {"A": "from-env", "B": "2", "D": ""}
    env = service_specs(stack, NS, {})[0].spec["TaskTemplate"]["ContainerSpec"]["Env"]
    assert env == ["A=from-env", "B=2", "D="]
