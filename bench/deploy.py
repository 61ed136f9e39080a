"""Deploy benchmark: deploybot's own time over the docker CLI doing the same rollout.

In one run, on the local Swarm:

- image update: a 2-replica service (update monitor 2 s, stop grace 1 s) is moved
  between two prebuilt images, `--rounds` times each way, by
  `docker service update --detach=false --image` and by a deploybot image deploy
  (GraphQL `deploy(input: {image, application, service})`, timed from the request
  until the deployment's state is final);
- git deploy: a small image is built, pushed and rolled out from a git commit, by
  `docker build` + `docker push` + `docker stack deploy` + waiting until the service
  runs the new image with its update completed, and by a deploybot git deploy.

It prints each run's times, deploybot's step times, the medians and the difference.
A script that prints figures, not a test.

    PYTHONPATH=src .venv/bin/python bench/deploy.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gitserver import GitServer  # noqa: E402
from tests.servers import Client, ServerProcess  # noqa: E402

DOCKER = "/usr/bin/docker"
REGISTRY = os.environ.get("DEPLOYBOT_TEST_REGISTRY", "127.0.0.1:5000")
BASE = os.environ.get("DEPLOYBOT_BASE_IMAGE", "deploybot/busybox:latest")
PREFIX = f"rn-bench{uuid.uuid4().hex[:4]}"
MONITOR = "2s"
DEPLOY = (
    "mutation($input: DeployInput!) { deploy(input: $input) {"
    " userErrors { message code } deployment { id } } }"
)
GET = (
    "query($id: ID!) { deployment(id: $id) { state errorCode errorMessage"
    " steps { name duration } } }"
)
STACK = f"""version: "3.8"
services:
  app:
    build: .
    image: ${{IMAGE:-unused}}
    stop_grace_period: 1s
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        delay: 0s
        monitor: {MONITOR}
        order: stop-first
"""


def docker(*args: str, input: str | None = None) -> str:
    return subprocess.run(
        [DOCKER, *args], check=True, capture_output=True, text=True, timeout=300, input=input
    ).stdout


def timed(*args: str) -> float:
    started = time.monotonic()
    docker(*args)
    return time.monotonic() - started


def build_local(tag: str, marker: str) -> None:
    dockerfile = f'FROM {BASE}\nLABEL bench="{marker}"\nCMD ["sleep", "3600"]\n'
    docker("build", "-q", "-t", tag, "-", input=dockerfile)


def create_service(name: str, namespace: str, image: str) -> None:
    docker(
        "service",
        "create",
        "--detach=false",
        "--quiet",
        "--name",
        name,
        "--label",
        f"com.docker.stack.namespace={namespace}",
        "--replicas",
        "2",
        "--update-monitor",
        MONITOR,
        "--update-parallelism",
        "1",
        "--update-delay",
        "0s",
        "--update-failure-action",
        "pause",
        "--stop-grace-period",
        "1s",
        "--endpoint-mode",
        "dnsrr",
        image,
    )


def deploybot_deploy(client: Client, **input: Any) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    payload = client.query(DEPLOY, {"input": input})["deploy"]
    assert not payload["userErrors"], payload["userErrors"]
    deployment_id = payload["deployment"]["id"]
    while True:
        found = client.query(GET, {"id": deployment_id})["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            took = time.monotonic() - started
            assert found["state"] == "SUCCESS", found
            return took, found
        time.sleep(0.02)


def steps(found: dict[str, Any]) -> str:
    return " ".join(f"{s['name']} {s['duration'] or 0:.2f}s" for s in found["steps"])


def image_update(client: Client, rounds: int) -> tuple[list[float], list[float]]:
    images = [f"{PREFIX}/app:1", f"{PREFIX}/app:2"]
    for index, tag in enumerate(images):
        build_local(tag, f"{PREFIX}-{index}")
    create_service(f"{PREFIX}cli_app", f"{PREFIX}cli", images[0])
    create_service(f"{PREFIX}bot_app", f"{PREFIX}bot", images[0])
    cli: list[float] = []
    bot: list[float] = []
    print(f"image update, 2 replicas, monitor {MONITOR}, stop grace 1s:")
    for index in range(rounds * 2):
        image = images[(index + 1) % 2]
        took = timed("service", "update", "--detach=false", "--image", image, f"{PREFIX}cli_app")
        cli.append(took)
        took_bot, found = deploybot_deploy(
            client, image=image, application=f"{PREFIX}bot", service="app", version=str(index)
        )
        bot.append(took_bot)
        print(f"  docker {took:5.2f}s  deploybot {took_bot:5.2f}s  ({steps(found)})")
    return cli, bot


def wait_stack_converged(service: str, image_prefix: str, timeout: float = 120) -> None:
    """What `docker stack deploy` leaves to its user: wait for the update to complete."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = json.loads(docker("service", "inspect", service))[0]
        image = data["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        state = (data.get("UpdateStatus") or {}).get("State", "completed")
        if image.startswith(image_prefix) and state == "completed":
            tasks = docker(
                "service",
                "ps",
                service,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.CurrentState}}",
            ).split("\n")
            if all(t.startswith("Running") for t in tasks if t):
                return
        time.sleep(0.1)
    raise TimeoutError(f"{service} did not converge")


def git_deploy(
    client: Client, git: GitServer, rounds: int, work: Path
) -> tuple[list[float], list[float]]:
    repo = f"{PREFIX}-repo"
    git.create_repo(repo)
    cli: list[float] = []
    bot: list[float] = []
    print("git deploy (build + push + rollout), 2 replicas:")
    for index in range(rounds):
        files = {
            "Dockerfile": f'FROM {BASE}\nRUN echo {PREFIX}-{index} > /v\nCMD ["sleep", "3600"]\n',
            "docker-compose.stack.yml": STACK,
        }
        sha = git.commit(repo, files, message=f"round {index}")
        context = work / f"ctx-{index}"
        context.mkdir()
        for name, text in files.items():
            (context / name).write_text(text)
        started = time.monotonic()
        tag = f"{REGISTRY}/{PREFIX}cli/app:{index}"
        docker("build", "-q", "-t", tag, str(context))
        docker("push", "-q", tag)
        env = {**os.environ, "IMAGE": tag}
        subprocess.run(
            [
                DOCKER,
                "stack",
                "deploy",
                "-c",
                str(context / "docker-compose.stack.yml"),
                f"{PREFIX}cli",
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=300,
        )
        wait_stack_converged(f"{PREFIX}cli_app", tag)
        took = time.monotonic() - started
        cli.append(took)
        took_bot, found = deploybot_deploy(
            client,
            repositoryUrl=git.url(repo),
            commitSha=sha,
            application=f"{PREFIX}git",
            version=f"1.0.{index}",
        )
        bot.append(took_bot)
        print(f"  docker {took:5.2f}s  deploybot {took_bot:5.2f}s  ({steps(found)})")
    return cli, bot


def summary(name: str, cli: list[float], bot: list[float]) -> None:
    c, b = statistics.median(cli), statistics.median(bot)
    paired = statistics.median(y - x for x, y in zip(cli, bot, strict=True))
    print(
        f"{name}: docker median {c:.2f}s, deploybot median {b:.2f}s, difference {b - c:+.2f}s"
        f" (median of the paired differences {paired:+.2f}s)"
    )


def clean_up() -> None:
    for namespace in ("cli", "bot", "git"):
        ids = docker(
            "service",
            "ls",
            "-q",
            "--filter",
            f"label=com.docker.stack.namespace={PREFIX}{namespace}",
        ).split()
        if ids:
            docker("service", "rm", *ids)
    subprocess.run([DOCKER, "stack", "rm", f"{PREFIX}cli"], capture_output=True, timeout=60)
    for tag in (f"{PREFIX}/app:1", f"{PREFIX}/app:2"):
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-git", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deploybot-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = {
            "DEPLOYBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/deploybot.db",
            "DEPLOYBOT_ENVIRONMENT": "bench",
            "DEPLOYBOT_WORK_DIR": str(tmp / "work"),
            "DEPLOYBOT_REGISTRY": REGISTRY,
            "DEPLOYBOT_RUNNER_POLL_INTERVAL": "0.5",
            "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT / "src"),
        }
        server = ServerProcess(env, tmp, "--log-level", "warning")
        client = Client(server.url)
        git = GitServer(tmp / "git")
        git.start()
        try:
            cli, bot = image_update(client, args.rounds)
            git_results = None if args.skip_git else git_deploy(client, git, args.rounds, tmp)
            print()
            summary("image update", cli, bot)
            if git_results:
                summary("git deploy", *git_results)
        finally:
            client.close()
            server.stop()
            git.stop()
            clean_up()


if __name__ == "__main__":
    main()
