"""A deploy request's own checks: names, rollout options."""

from __future__ import annotations

from deploybot.core import requests
from deploybot.core.requests import check_options
from deploybot.inputs import HealthCheck, Hook, RollingUpdate, RolloutOptions


def test_application_names_from_sources() -> None:
    assert requests.application_name_from("git://host/team/Web_App.git", None) == "web_app"
    assert requests.application_name_from("git@github.com:team/api.git", None) == "api"
    assert requests.application_name_from(None, "127.0.0.1:5000/team/api:1.2@sha256:ab") == "api"
    assert requests.application_name_from("/srv/repos/shop/", None) == "shop"


def test_every_mistake_names_its_field() -> None:
    options = RolloutOptions(
        rolling_update=RollingUpdate(
            parallelism=-1, delay=-2, order="sideways", failure_action="x"
        ),
        canary_period=0,
        health_check=HealthCheck(url="ftp://x", timeout=0, retries=0),
        pre_deploy_hooks=[Hook("  ")],
        post_deploy_hooks=[Hook("ok", "Bad Name")],
    )
    fields = [e.field for e in check_options(options)]
    assert fields == [
        "rollingUpdate.parallelism",
        "rollingUpdate.delay",
        "rollingUpdate.order",
        "rollingUpdate.failureAction",
        "canaryPeriod",
        "healthCheckUrl",
        "healthCheck",
        "healthCheck.retries",
        "preDeployHooks.0.command",
        "postDeployHooks.0.service",
    ]
    assert check_options(RolloutOptions(health_check=HealthCheck(url="https://x.test/h"))) == []
