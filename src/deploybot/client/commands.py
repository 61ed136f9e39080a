"""The client commands of `deploybot`: deploy, logs, status, history, rollback, cancel.

Each talks to the server at `--url`/`DEPLOYBOT_URL` with `--token`/`DEPLOYBOT_TOKEN`
and exits with a code of `exitcodes.ExitCode` (the README has the table).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
import typer

from deploybot.client import documents
from deploybot.client.connection import (
    AuthenticationFailed,
    Connection,
    ConnectionLost,
    GraphQLErrors,
    Unreachable,
)
from deploybot.client.exitcodes import FINAL_STATES, ExitCode
from deploybot.client.follow import Watcher, follow
from deploybot.client.output import Printer, summary

UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="DEPLOYBOT_URL", show_envvar=True, help="The deploybot server"),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="DEPLOYBOT_TOKEN",
        show_envvar=True,
        show_default=False,
        help="API token, sent as `Authorization: Bearer`",
    ),
]
OutputOpt = Annotated[
    str,
    typer.Option("--output", "-o", help="text, or json for scripts", show_default=True),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", min=0.0, help="Seconds to wait at most (exit code 7 after)"),
]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Follow the deployment until it ends; exit by its state")
]
LogsOpt = Annotated[bool, typer.Option("--logs", help="With --wait: stream its log lines")]

DEFAULT_URL = "http://127.0.0.1:8000"
OUTPUTS = ("text", "json")

Body = Callable[[Connection, Printer], Awaitable[ExitCode]]


def run(url: str, token: str | None, output: str, timeout: float | None, body: Body) -> None:
    """Run one command against the server and exit with its code."""
    if output not in OUTPUTS:
        raise typer.BadParameter(
            f"{output!r} is not one of {', '.join(OUTPUTS)}", param_hint="--output"
        )
    printer = Printer(output)

    async def main() -> ExitCode:
        connection = Connection(url, token)
        try:
            async with asyncio.timeout(timeout):
                return await body(connection, printer)
        finally:
            await connection.close()

    try:
        code = asyncio.run(main())
    except TimeoutError:
        printer.error(f"--timeout of {timeout:g}s ran out (the deployment goes on on the server)")
        code = ExitCode.TIMEOUT
    except AuthenticationFailed as exc:
        printer.error(f"authentication failed: {exc}")
        code = ExitCode.AUTHENTICATION
    except (Unreachable, ConnectionLost) as exc:
        printer.error(str(exc))
        code = ExitCode.UNREACHABLE
    except GraphQLErrors as exc:
        printer.error(str(exc))
        code = ExitCode.NOT_FOUND if "DEPLOYMENT_NOT_FOUND" in exc.codes else ExitCode.REFUSED
    raise typer.Exit(int(code))


def refused(printer: Printer, payload: dict[str, Any]) -> ExitCode:
    """The exit code of a mutation the server refused (its userErrors printed)."""
    printer.user_errors(payload["userErrors"])
    if printer.json:
        printer.document({"userErrors": payload["userErrors"]})
    codes = {error["code"] for error in payload["userErrors"]}
    if codes == {"FORBIDDEN"}:
        return ExitCode.AUTHENTICATION
    if codes <= {"DEPLOYMENT_NOT_FOUND"}:
        return ExitCode.NOT_FOUND
    return ExitCode.REFUSED


async def queued(
    connection: Connection,
    printer: Printer,
    deployment: dict[str, Any],
    *,
    wait: bool,
    logs: bool,
) -> ExitCode:
    """After a deploy or rollback was accepted: report it, and with `wait` follow it."""
    number = deployment["number"]
    printer.info(f"deployment #{number} {deployment['state']}: {deployment['logsUrl']}")
    if not wait:
        if printer.json:
            printer.document(deployment)
        return ExitCode.OK
    watcher = Watcher(
        on_progress=lambda progress: printer.progress(number, progress),
        on_lines=printer.lines if logs else None,
        on_reconnect=lambda why: printer.info(f"connection lost: {why}"),
    )
    with printer.following(number):
        await follow(connection, deployment["id"], watcher)
    final = await final_deployment(connection, deployment["id"])
    if printer.json:
        printer.document(final)
    else:
        for line in summary(final):
            printer.info(line)
    return FINAL_STATES.get(final["state"], ExitCode.ERROR)


async def final_deployment(connection: Connection, deployment_id: str) -> dict[str, Any]:
    """The deployment once it has ended (its progress said so just before)."""
    while True:
        found: dict[str, Any] = (
            await connection.execute(documents.GET_DEPLOYMENT, {"id": deployment_id})
        )["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            return found
        await asyncio.sleep(0.2)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, [], {})}


def deploy_input(options: dict[str, Any]) -> dict[str, Any]:
    """The DeployInput of the `deploy` flags (unset flags are left to the server)."""
    rolling = _drop_none(
        {
            "parallelism": options.pop("parallelism"),
            "delay": options.pop("update_delay"),
            "order": options.pop("update_order"),
            "failureAction": options.pop("failure_action"),
            "monitor": options.pop("monitor"),
        }
    )
    health = _drop_none(
        {
            "timeout": options.pop("health_timeout"),
            "interval": options.pop("health_interval"),
            "retries": options.pop("health_retries"),
        }
    )
    hook_service = options.pop("hook_service")
    pre = [_drop_none({"command": c, "service": hook_service}) for c in options.pop("pre_deploy")]
    post = [_drop_none({"command": c, "service": hook_service}) for c in options.pop("post_deploy")]
    return _drop_none(
        {
            "repositoryUrl": options["repo"],
            "commitSha": options["sha"],
            "ref": options["ref"],
            "application": options["application"],
            "environment": options["environment"],
            "stackFile": options["stack_file"],
            "version": options["version"],
            "description": options["description"],
            "references": options["reference"],
            "image": options["image"],
            "service": options["service"],
            "strategy": options["strategy"].upper() if options["strategy"] else None,
            "queue": options["queue"],
            "dependencies": options["dependency"],
            "idempotencyKey": options["idempotency_key"],
            "rollbackOnFailure": options["rollback_on_failure"],
            "rollingUpdate": rolling,
            "canaryPeriod": options["canary_period"],
            "healthCheckUrl": options["health_check_url"],
            "healthCheck": health,
            "preDeployHooks": pre,
            "postDeployHooks": post,
            "clientMutationId": options["client_mutation_id"],
        }
    )


def _enum(value: str | None) -> str | None:
    return value.upper().replace("-", "_") if value else None


def deploy(
    repo: Annotated[
        str | None, typer.Option(help="Repository URL (git://, https://, ssh://)")
    ] = None,
    sha: Annotated[str | None, typer.Option(help="Commit sha (full or abbreviated)")] = None,
    ref: Annotated[str | None, typer.Option(help="Branch or tag")] = None,
    image: Annotated[str | None, typer.Option(help="Deploy this prebuilt image")] = None,
    application: Annotated[str | None, typer.Option("--application", "-a")] = None,
    environment: Annotated[str | None, typer.Option()] = None,
    stack_file: Annotated[
        str | None, typer.Option(help="Defaults to docker-compose.stack.yml")
    ] = None,
    version: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    reference: Annotated[list[str], typer.Option(help="A ticket or link (repeatable)")] = [],  # noqa: B006
    service: Annotated[str | None, typer.Option(help="The service an image deploy updates")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="rolling, blue_green, canary or recreate")
    ] = None,
    queue: Annotated[
        bool | None, typer.Option("--queue/--no-queue", help="Wait behind a running deployment")
    ] = None,
    dependency: Annotated[
        list[str], typer.Option(help="An application that must be HEALTHY first (repeatable)")
    ] = [],  # noqa: B006
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    rollback_on_failure: Annotated[
        bool | None, typer.Option("--rollback-on-failure/--no-rollback-on-failure")
    ] = None,
    parallelism: Annotated[int | None, typer.Option(help="Rolling update: tasks at once")] = None,
    update_delay: Annotated[float | None, typer.Option(help="Rolling update: seconds")] = None,
    update_order: Annotated[str | None, typer.Option(help="stop_first or start_first")] = None,
    failure_action: Annotated[str | None, typer.Option(help="pause, continue or rollback")] = None,
    monitor: Annotated[float | None, typer.Option(help="Rolling update: seconds watched")] = None,
    canary_period: Annotated[float | None, typer.Option(help="CANARY: seconds healthy")] = None,
    health_check_url: Annotated[str | None, typer.Option(help="Polled after the rollout")] = None,
    health_timeout: Annotated[float | None, typer.Option()] = None,
    health_interval: Annotated[float | None, typer.Option()] = None,
    health_retries: Annotated[int | None, typer.Option()] = None,
    pre_deploy: Annotated[
        list[str], typer.Option(help="A command run before the rollout (repeatable)")
    ] = [],  # noqa: B006
    post_deploy: Annotated[
        list[str], typer.Option(help="A command run after the rollout (repeatable)")
    ] = [],  # noqa: B006
    hook_service: Annotated[str | None, typer.Option(help="The service hooks run in")] = None,
    client_mutation_id: Annotated[str | None, typer.Option()] = None,
    wait: WaitOpt = False,
    logs: LogsOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = "text",
) -> None:
    """Deploy a commit (--repo with --sha or --ref) or an image (--image)."""
    options = dict(locals())
    for name in ("wait", "logs", "timeout", "url", "token", "output"):
        options.pop(name)
    for name in ("update_order", "failure_action"):
        options[name] = _enum(options[name])
    options["strategy"] = _enum(options["strategy"])
    input = deploy_input(options)

    async def body(connection: Connection, printer: Printer) -> ExitCode:
        payload = (await connection.execute(documents.DEPLOY, {"input": input}))["deploy"]
        if payload["userErrors"]:
            return refused(printer, payload)
        return await queued(connection, printer, payload["deployment"], wait=wait, logs=logs)

    run(url, token, output, timeout, body)


def rollback(
    application: Annotated[str, typer.Argument()],
    version: Annotated[
        str | None, typer.Option(help="The newest successful deployment of it")
    ] = None,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="A deployment's number or ID to restore")
    ] = None,
    environment: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    wait: WaitOpt = False,
    logs: LogsOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = "text",
) -> None:
    """Put an earlier deployment of an application back (its previous success by default)."""
    input = _drop_none(
        {
            "application": application,
            "version": version,
            "deploymentId": deployment,
            "environment": environment,
            "description": description,
        }
    )

    async def body(connection: Connection, printer: Printer) -> ExitCode:
        payload = (await connection.execute(documents.ROLLBACK, {"input": input}))["rollback"]
        if payload["userErrors"]:
            return refused(printer, payload)
        return await queued(connection, printer, payload["deployment"], wait=wait, logs=logs)

    run(url, token, output, timeout, body)


def cancel(
    id: Annotated[str, typer.Argument(help="A deployment's number or ID")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = "text",
) -> None:
    """Cancel a queued deployment, or ask a running one to stop."""

    async def body(connection: Connection, printer: Printer) -> ExitCode:
        payload = (await connection.execute(documents.CANCEL, {"input": {"id": id}}))[
            "cancelDeployment"
        ]
        if payload["userErrors"]:
            return refused(printer, payload)
        found = payload["deployment"]
        if printer.json:
            printer.document(found)
        elif found["state"] == "CANCELLED":
            printer.info(f"deployment #{found['number']} CANCELLED")
        else:
            printer.info(f"deployment #{found['number']} {found['state']}: asked to stop")
        return ExitCode.OK

    run(url, token, output, None, body)


def logs(
    id: Annotated[str, typer.Argument(help="A deployment's number or ID")],
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Then stream new lines until it ends")
    ] = False,
    after: Annotated[int, typer.Option(help="Start after this sequence number")] = 0,
    timeout: TimeoutOpt = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = "text",
) -> None:
    """Print a deployment's log; with -f, follow it live (resuming after a dropped socket)."""

    async def body(connection: Connection, printer: Printer) -> ExitCode:
        found = (await connection.execute(documents.GET_DEPLOYMENT, {"id": id}))["deployment"]
        if found is None:
            printer.error(f"DEPLOYMENT_NOT_FOUND: no deployment {id}")
            return ExitCode.NOT_FOUND
        if follow_:
            emit = _json_lines if printer.json else printer.lines
            watcher = Watcher(
                on_lines=emit, on_reconnect=lambda why: printer.info(f"connection lost: {why}")
            )
            await follow(connection, found["id"], watcher, after=after)
            return ExitCode.OK
        lines = await _stored_lines(connection, found["id"], after)
        if printer.json:
            printer.document(lines)
        else:
            printer.lines(lines)
        return ExitCode.OK

    run(url, token, output, timeout, body)


def _json_lines(lines: list[dict[str, Any]]) -> None:
    typer.echo("".join(orjson.dumps(line).decode() + "\n" for line in lines), nl=False)


async def _stored_lines(connection: Connection, id: str, after: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = (await connection.execute(documents.LOG_PAGE, {"id": id, "after": cursor}))[
            "deployment"
        ]["logs"]
        lines.extend(line for line in page["nodes"] if line["sequence"] > after)
        if not page["pageInfo"]["hasNextPage"]:
            return lines
        cursor = page["pageInfo"]["endCursor"]


def status(
    application: Annotated[str, typer.Argument()],
    environment: Annotated[str | None, typer.Option()] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = "text",
) -> None:
    """An application's state, health, replicas and current version."""

    async def body(connection: Connection, printer: Printer) -> ExitCode:
        variables = {"name": application, "environment": environment}
        found = (await connection.execute(documents.STATUS, variables))["application"]
        if found is None:
            printer.error(f"no application {application}")
            return ExitCode.NOT_FOUND
        if printer.json:
            printer.document(found)
            return ExitCode.OK
        replicas = found["replicas"]
        current = found["currentDeployment"]
        printer.table(
            f"{found['name']} on {found['environment']}",
            ["field", "value"],
            [
                ["state", found["state"]],
                ["health", found["health"]],
                [
                    "replicas",
                    f"{replicas['ready']}/{replicas['desired']} ready, "
                    f"{replicas['running']} running",
                ],
                ["version", found["currentVersion"]],
                ["deployment", f"#{current['number']}" if current else None],
                ["updated", found["lastUpdated"]],
            ],
        )
        components = found["healthReport"]["components"]
        if components:
            printer.table(
                "services",
                ["service", "health", "ready", "message"],
                [
                    [
                        c["name"],
                        c["status"],
                        f"{c['replicas']['ready']}/{c['replicas']['desired']}",
                        c["message"],
                    ]
                    for c in components
                ],
            )
        return ExitCode.OK

    run(url, token, output, None, body)


HISTORY_COLUMNS = [
    "#",
    "application",
    "environment",
    "state",
    "trigger",
    "version",
    "ref",
    "sha",
    "created",
    "duration",
]


def history(
    application: Annotated[list[str], typer.Option("--application", "-a")] = [],  # noqa: B006
    environment: Annotated[list[str], typer.Option()] = [],  # noqa: B006
    state: Annotated[list[str], typer.Option(help="e.g. FAILURE (repeatable)")] = [],  # noqa: B006
    repo: Annotated[str | None, typer.Option(help="Repository URL or glob")] = None,
    sha: Annotated[str | None, typer.Option(help="A prefix of the commit sha")] = None,
    ref: Annotated[list[str], typer.Option()] = [],  # noqa: B006
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO-8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest this many")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = "text",
) -> None:
    """The deployment history, newest first, filtered."""
    filter = _drop_none(
        {
            "applications": application,
            "environments": environment,
            "states": [s.upper() for s in state],
            "repository": repo,
            "commitSha": sha,
            "refs": ref,
            "createdAfter": since,
            "createdBefore": until,
        }
    )

    async def body(connection: Connection, printer: Printer) -> ExitCode:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(found) < limit:
            variables = {"first": min(100, limit - len(found)), "after": cursor, "filter": filter}
            page = (await connection.execute(documents.HISTORY, variables))["deployments"]
            found.extend(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            cursor = page["pageInfo"]["endCursor"]
        if printer.json:
            printer.document(found)
            return ExitCode.OK
        printer.table("deployments", HISTORY_COLUMNS, [_history_row(d) for d in found])
        return ExitCode.OK

    run(url, token, output, None, body)


def _history_row(d: dict[str, Any]) -> list[Any]:
    duration = f"{d['duration']:.1f}s" if d.get("duration") is not None else None
    sha = (d.get("commitSha") or "")[:8] or None
    return [
        d["number"],
        d["application"],
        d["environment"],
        d["state"],
        d["trigger"],
        d["version"],
        d["ref"],
        sha,
        d["createdAt"][:19].replace("T", " "),
        duration,
    ]


def register(app: typer.Typer) -> None:
    """Add the client commands to the `deploybot` command."""
    for command in (deploy, logs, status, history, rollback, cancel):
        app.command(command.__name__)(command)
