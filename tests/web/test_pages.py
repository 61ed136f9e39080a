"""The pages, in a real headless chromium that may reach nothing but the server under test:
GraphiQL runs a query with its vendored assets; the dashboard shows a deployment appearing
live while the test deploys onto the Swarm, and its page's log grows to the last line.

Test applications start with `pg-`; screenshots go to the run's artefacts
(`test-artifacts/`, or `$DEPLOYBOT_TEST_ARTIFACTS`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser import OfflinePage
from tests.conftest import remove_stack
from tests.e2e.test_deploy_swarm import DOCKERFILE, deploy, outcome, wait_final
from tests.gitserver import GitServer
from tests.servers import Client, ServerProcess

APP = "pg-dash"
LOGS = "query($id: ID!) { deployment(id: $id) { logs(first: 1000) { totalCount nodes { text } } } }"

STACK = """version: "3.8"
services:
  web:
    build: .
    stop_grace_period: 1s
    command: ["sh", "-c", "for i in 1 2 3; do echo line $$i; done; exec httpd -f -p 80 -h /www"]
    deploy:
      replicas: 1
"""


@pytest.fixture(scope="module")
def dash_repo(git_server: GitServer) -> Iterator[dict[str, Any]]:
    remove_stack(APP)
    git_server.create_repo(APP)
    sha = git_server.commit(
        APP,
        {"Dockerfile": DOCKERFILE, "docker-compose.stack.yml": STACK, "www/index.html": "dash\n"},
    )
    yield {"url": git_server.url(APP), "sha": sha}
    remove_stack(APP)


@pytest.fixture
def page(chromium: Browser, deploy_server: ServerProcess) -> Iterator[OfflinePage]:
    offline = OfflinePage(chromium, deploy_server.url)
    yield offline
    offline.close()


def test_vendored_assets_are_served(deploy_server: ServerProcess) -> None:
    html = httpx.get(f"{deploy_server.url}/graphql", headers={"Accept": "text/html"}).text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert len(assets) >= 6
    assert not re.search(r"https?://(?!127\.0\.0\.1)", html)
    for asset in assets:
        response = httpx.get(f"{deploy_server.url}{asset}")
        assert response.status_code == 200, asset
        assert len(response.content) > 500, asset


def test_graphiql_runs_a_query_offline(page: OfflinePage) -> None:
    query = "{ deployments(first: 1) { totalCount } }"
    page.page.goto(f"/graphql?q={quote(query)}")
    run = page.page.locator(".graphiql-execute-button")
    expect(run).to_be_visible(timeout=20_000)
    run.click()
    expect(page.page.locator(".graphiql-response")).to_contain_text("totalCount", timeout=20_000)
    page.screenshot("graphiql")
    assert page.elsewhere == []


def test_dashboard_follows_a_deployment_live(
    page: OfflinePage, client: Client, dash_repo: dict[str, Any]
) -> None:
    browser = page.page
    browser.goto("/")
    expect(browser.locator("#count")).to_contain_text("(", timeout=20_000)

    queued = deploy(client, repositoryUrl=dash_repo["url"], commitSha=dash_repo["sha"])
    row = browser.locator(f'#deployments tr[data-id="{queued["id"]}"]')
    expect(row).to_be_visible(timeout=20_000)  # came in over deploymentEvents, no reload
    expect(row.locator(".state")).to_have_text("SUCCESS", timeout=150_000)
    page.screenshot("dashboard-list")

    done = wait_final(client, queued["id"])
    assert done["state"] == "SUCCESS", outcome(done)
    logs = client.query(LOGS, {"id": queued["id"]})["deployment"]["logs"]
    assert logs["totalCount"] == len(logs["nodes"])
    last_line = logs["nodes"][-1]["text"]

    row.locator("a").first.click()
    expect(browser.locator("h1 .state")).to_have_text("SUCCESS", timeout=20_000)
    expect(browser.locator("#log")).to_contain_text(last_line, timeout=20_000)
    expect(browser.locator("#progresstext")).to_contain_text("100%", timeout=20_000)
    expect(browser.locator("#steps")).to_contain_text("converge")
    expect(browser.locator("#services")).to_contain_text(f"{APP}_web")
    expect(browser.locator("#rollback")).to_be_visible()  # the admin token may deploy
    page.screenshot("dashboard-deployment")

    browser.locator("dl a, h1").first.wait_for()
    browser.goto(f"/#/application/test/{APP}")
    expect(browser.locator("h1")).to_contain_text(APP, timeout=20_000)
    expect(browser.locator("main")).to_contain_text("Health")
    page.screenshot("dashboard-application")
    assert page.elsewhere == []
    assert page.console_errors == [], json.dumps(page.console_errors)


def test_a_read_only_token_sees_no_rollback_or_cancel(
    chromium: Browser, client: Client, deploy_server: ServerProcess
) -> None:
    created = client.query(
        """mutation { createApiToken(input: {name: "viewer", scopes: ["read"]}) {
            token userErrors { code } } }"""
    )["createApiToken"]
    assert created["userErrors"] == []
    reader = OfflinePage(chromium, deploy_server.url, token=created["token"])
    try:
        recorded = client.query(
            """mutation { recordDeployment(input: {application: "pg-recorded", version: "1"}) {
                deployment { id } userErrors { code } } }"""
        )["recordDeployment"]["deployment"]
        reader.page.goto(f"/#/deployment/{quote(recorded['id'])}")
        expect(reader.page.locator("h1")).to_contain_text("pg-recorded", timeout=20_000)
        reader.page.locator(".actions[data-checked]").wait_for(state="attached", timeout=20_000)
        expect(reader.page.locator("#rollback")).to_be_hidden()
        expect(reader.page.locator("#cancel")).to_be_hidden()
    finally:
        reader.close()
