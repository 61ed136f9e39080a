"""`deploybot` command line: the server (serve, runner, migrate, token, export-schema)
and the client a CI job uses (deploy, logs, status, history, rollback, cancel)."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from deploybot.client.commands import register as register_client_commands
from deploybot.config import Settings

if TYPE_CHECKING:
    from deploybot.db.engine import Database

T = TypeVar("T")

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", envvar="DEPLOYBOT_DATABASE_URL", show_envvar=True)
]
EnvironmentOpt = Annotated[
    str | None, typer.Option("--environment", envvar="DEPLOYBOT_ENVIRONMENT", show_envvar=True)
]
RegistryOpt = Annotated[
    str | None, typer.Option("--registry", envvar="DEPLOYBOT_REGISTRY", show_envvar=True)
]
DockerHostOpt = Annotated[
    str | None, typer.Option("--docker-host", envvar="DEPLOYBOT_DOCKER_HOST", show_envvar=True)
]
WorkDirOpt = Annotated[
    Path | None, typer.Option("--work-dir", envvar="DEPLOYBOT_WORK_DIR", show_envvar=True)
]


def _settings(database_url: str | None, environment: str | None, **extra: object) -> Settings:
    overrides: dict[str, object] = {k: v for k, v in extra.items() if v is not None}
    if database_url:
        overrides["database_url"] = database_url
    if environment:
        overrides["environment"] = environment
    return Settings(**overrides)  # type: ignore[arg-type]


def _logging(level: str, settings: Settings | None = None) -> None:
    from deploybot import logformat

    logformat.configure(level, (settings or Settings()).log_format)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(envvar="DEPLOYBOT_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="DEPLOYBOT_PORT")] = 8000,
    database_url: DatabaseOpt = None,
    environment: EnvironmentOpt = None,
    registry: RegistryOpt = None,
    docker_host: DockerHostOpt = None,
    work_dir: WorkDirOpt = None,
    runner: Annotated[
        bool, typer.Option("--runner/--no-runner", help="Run the runner in this process")
    ] = True,
    migrate: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
    log_level: str = "info",
) -> None:
    """Run the API server (and, by default, the runner) with uvicorn."""
    import uvicorn

    from deploybot.app import create_app
    from deploybot.web.graceful import GracefulServer

    settings = _settings(
        database_url, environment, registry=registry, docker_host=docker_host, work_dir=work_dir
    )
    _logging(log_level, settings)
    if not settings.auth:
        from deploybot.first_start import AUTH_OFF_WARNING

        typer.echo(f"WARNING: {AUTH_OFF_WARNING}", err=True)
        if not is_loopback(host):
            typer.echo(
                f"refusing to serve {host} with DEPLOYBOT_AUTH=off: only a loopback host "
                "(127.0.0.1, ::1, localhost) may run without authentication",
                err=True,
            )
            raise typer.Exit(2)
    app = create_app(settings, run_migrations=migrate, embedded_runner=runner)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        ws_per_message_deflate=settings.ws_compression,
        # A WebSocket message is a request too: the same bound as /graphql's bodies.
        ws_max_size=settings.graphql_max_body_bytes,
    )
    GracefulServer(config, app, settings.runner_stop_grace).run()


@cli.command()
def relay(
    host: Annotated[str, typer.Option(envvar="DEPLOYBOT_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="DEPLOYBOT_PORT")] = 8000,
    database_url: DatabaseOpt = None,
    log_level: str = "info",
) -> None:
    """Run the environment relay: one schema over every environment's instance
    (DEPLOYBOT_RELAY_ENVIRONMENTS); its database holds only the callers' tokens."""
    import uvicorn

    from deploybot.relay.app import create_relay_app

    _logging(log_level)
    settings = _settings(database_url, None)
    app = create_relay_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command("runner")
def run_runner(
    database_url: DatabaseOpt = None,
    environment: EnvironmentOpt = None,
    registry: RegistryOpt = None,
    docker_host: DockerHostOpt = None,
    work_dir: WorkDirOpt = None,
    log_level: str = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="DEPLOYBOT_RUNNER_METRICS_PORT",
            help="Serve this runner's Prometheus figures (durations, log lines) on this port",
        ),
    ] = None,
) -> None:
    """Run only the runner, against the same database as the API processes."""
    from deploybot.instance import Instance
    from deploybot.runner.worker import Runner

    settings = _settings(
        database_url, environment, registry=registry, docker_host=docker_host, work_dir=work_dir
    )
    _logging(log_level, settings)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")

    async def main() -> None:
        # On PostgreSQL the API processes hear of new work and follow its logs via NOTIFY.
        async with Instance(settings).running() as instance:
            worker = Runner(instance.db, instance.bus, settings, instance.swarm)
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, worker.stop)
            draining: list[asyncio.Task[None]] = []
            loop.add_signal_handler(
                signal.SIGTERM,
                lambda: draining.append(
                    asyncio.create_task(worker.drain(settings.runner_stop_grace))
                ),
            )
            await worker.run()

    asyncio.run(main())


@cli.command()
def migrate(database_url: DatabaseOpt = None) -> None:
    """Upgrade the database to the newest schema."""
    from deploybot.db import migrate as migrations
    from deploybot.db.engine import Database

    settings = _settings(database_url, None)

    async def main() -> None:
        db = Database(settings.database_url)
        try:
            await migrations.upgrade(db)
            typer.echo(f"database at {await migrations.current_revision(db)}")
        finally:
            await db.dispose()

    asyncio.run(main())


token_cli = typer.Typer(
    no_args_is_help=True, help="API tokens, straight on the database (the first ones too)."
)
cli.add_typer(token_cli, name="token")


def _run_on_database(database_url: str | None, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work(db)` on the (migrated) database of the settings."""
    from deploybot.db import migrate as migrations
    from deploybot.db.engine import Database

    settings = _settings(database_url, None)

    async def main() -> T:
        db = Database(settings.database_url)
        try:
            await migrations.upgrade(db)
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


async def _audit(db: Database, operation: str, target: str, outcome: str) -> None:
    """The CLI's token changes are audited as the local user's."""
    from deploybot.access import LOCAL_USER
    from deploybot.core import audit

    await audit.record(db, LOCAL_USER, operation, target, outcome)


def _fail(exc: Exception) -> NoReturn:
    from deploybot.errors import DeploybotError

    message = exc.message if isinstance(exc, DeploybotError) else str(exc)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@token_cli.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for (e.g. ci)")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="A grant `ACTIONS\\[:ENVIRONMENTS\\[/APPLICATIONS]]\\[@REPOSITORIES]`, "
            "e.g. `deploy,read:staging/shop*`; repeat for several",
        ),
    ],
    expires: Annotated[
        datetime | None, typer.Option("--expires", help="Expiry (ISO 8601, UTC)")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Create a token and print it (shown only this once)."""
    from deploybot.core import tokens
    from deploybot.errors import DeploybotError

    async def work(db: Database) -> tokens.CreatedToken:
        try:
            created = await tokens.create_token(
                db, name, scope, expires_at=expires, created_by="cli"
            )
        except DeploybotError as exc:
            await _audit(db, "token create", f"token:{name}", exc.code)
            raise
        await _audit(db, "token create", f"token:{name}", "ok")
        return created

    try:
        created = _run_on_database(database_url, work)
    except DeploybotError as exc:
        _fail(exc)
    typer.echo(f"token {created.record.id} ({created.record.name}): {created.token}")


@token_cli.command("list")
def token_list(database_url: DatabaseOpt = None) -> None:
    """Every token: id, name, prefix, scopes, state, expiry, last use."""
    from deploybot.core import tokens
    from deploybot.times import utcnow

    async def work(db: Database) -> list[tokens.TokenRecord]:
        return await tokens.list_tokens(db)

    found = _run_on_database(database_url, work)
    now = utcnow()
    for record in found:
        state = "revoked" if record.revoked_at else "active" if record.is_active(now) else "expired"
        typer.echo(
            f"{record.id}\t{record.name}\t{record.prefix}…\t{' '.join(record.grants)}\t{state}"
            f"\texpires={record.expires_at.isoformat() if record.expires_at else '-'}"
            f"\tlast-used={record.last_used_at.isoformat() if record.last_used_at else '-'}"
        )


@token_cli.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `token list`)")],
    database_url: DatabaseOpt = None,
) -> None:
    """Revoke a token (servers stop accepting it within seconds)."""
    from deploybot.core import tokens
    from deploybot.errors import DeploybotError

    async def work(db: Database) -> tokens.TokenRecord:
        try:
            revoked = await tokens.revoke_token(db, token_id)
        except DeploybotError as exc:
            await _audit(db, "token revoke", f"token:{token_id}", exc.code)
            raise
        await _audit(db, "token revoke", f"token:{token_id}", "ok")
        return revoked

    try:
        _run_on_database(database_url, work)
    except DeploybotError as exc:
        _fail(exc)
    typer.echo(f"token {token_id} revoked")


@cli.command("export-schema")
def export_schema(
    output: Annotated[Path | None, typer.Argument(help="File to write; stdout if omitted")] = None,
) -> None:
    """Print the GraphQL schema in SDL (the committed `schema.graphql`)."""
    from deploybot.schema import schema

    text = schema.as_str() + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


register_client_commands(cli)


def main() -> None:
    cli()
