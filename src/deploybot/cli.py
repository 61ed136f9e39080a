"""`deploybot` command line: serve, runner, migrate, export-schema."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from deploybot.config import Settings

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


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


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

    _logging(log_level)
    settings = _settings(
        database_url, environment, registry=registry, docker_host=docker_host, work_dir=work_dir
    )
    app = create_app(settings, run_migrations=migrate, embedded_runner=runner)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws_per_message_deflate=settings.ws_compression,
    )
    GracefulServer(config, app, settings.runner_stop_grace).run()


@cli.command("runner")
def run_runner(
    database_url: DatabaseOpt = None,
    environment: EnvironmentOpt = None,
    registry: RegistryOpt = None,
    docker_host: DockerHostOpt = None,
    work_dir: WorkDirOpt = None,
    log_level: str = "info",
) -> None:
    """Run only the runner, against the same database as the API processes."""
    from deploybot.instance import Instance
    from deploybot.runner.worker import Runner

    _logging(log_level)
    settings = _settings(
        database_url, environment, registry=registry, docker_host=docker_host, work_dir=work_dir
    )

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


def main() -> None:
    cli()
