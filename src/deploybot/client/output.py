"""How the client commands print: rich progress bars and tables on a terminal, plain lines
without control characters elsewhere (CI logs), one JSON document with `--output json`."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """The text without terminal escape sequences or other control characters."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text)).replace("\t", "    ")


def log_line(line: dict[str, Any]) -> str:
    source = line["source"].lower()
    if line.get("sourceName"):
        source += f"/{line['sourceName']}"
    stream = " !" if line["stream"] == "STDERR" else ""
    return f"{line['timestamp'][11:23]} [{source}]{stream} {plain(line['text'])}"


def progress_line(number: int, progress: dict[str, Any]) -> str:
    step = progress.get("step") or "-"
    return plain(
        f"deployment #{number}: {progress['percentage']:3d}% {progress['state']} "
        f"{step} {progress['status']}: {progress['message']}"
    )


def summary(deployment: dict[str, Any]) -> list[str]:
    """What a finished (or queued) deployment comes to, for people."""
    duration = deployment.get("duration")
    took = f" in {duration:.1f}s" if duration is not None else ""
    version = f" version {deployment['version']}" if deployment.get("version") else ""
    lines = [
        f"deployment #{deployment['number']} {deployment['application']} on "
        f"{deployment['environment']}{version}: {deployment['state']}{took}"
    ]
    if deployment.get("errorCode"):
        lines.append(f"  {deployment['errorCode']}: {deployment.get('errorMessage') or ''}")
    for step in deployment.get("steps") or []:
        if step["status"] == "FAILED":
            lines.append(f"  step {step['name']} failed: {step.get('error') or step['message']}")
    lines.append(f"  logs: {deployment['logsUrl']}")
    return [plain(line) for line in lines]


class Printer:
    def __init__(self, output: str, *, stdout: TextIO | None = None) -> None:
        self.json = output == "json"
        self.stdout = stdout or sys.stdout
        self.rich = not self.json and self.stdout.isatty()
        self.console = Console(file=self.stdout) if self.rich else None
        self.errors = Console(file=sys.stderr, stderr=True) if sys.stderr.isatty() else None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_progress: str | None = None

    # --- messages --------------------------------------------------------------------------

    def info(self, text: str) -> None:
        """A line for people: stdout, or stderr when stdout carries JSON."""
        if self.json:
            print(plain(text), file=sys.stderr, flush=True)
        elif self._progress is not None:
            self._progress.console.print(Text(text))
        elif self.console is not None:
            self.console.print(Text(text))
        else:
            print(plain(text), file=self.stdout, flush=True)

    def error(self, text: str) -> None:
        if self.errors is not None:
            self.errors.print(Text(f"error: {text}", style="bold red"))
        else:
            print(f"error: {plain(text)}", file=sys.stderr, flush=True)

    def user_errors(self, errors: Sequence[dict[str, Any]]) -> None:
        for error in errors:
            where = f" ({error['field']})" if error.get("field") else ""
            self.error(f"{error['code']}{where}: {error['message']}")

    def document(self, value: Any) -> None:
        """The one JSON document of `--output json`."""
        self.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
        self.stdout.flush()

    # --- a deployment followed live ----------------------------------------------------------

    @contextmanager
    def following(self, number: int) -> Iterator[None]:
        if not self.rich or self.console is None:
            yield
            return
        with Progress(
            TextColumn("[bold]#{task.fields[number]}[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        ) as progress:
            self._progress = progress
            self._task = progress.add_task("queued", total=100, number=number)
            try:
                yield
            finally:
                self._progress = None

    def progress(self, number: int, progress: dict[str, Any]) -> None:
        if self.json:
            return
        if self._progress is not None and self._task is not None:
            step = progress.get("step") or progress["state"].lower()
            text = Text(f"{step}: {progress['message']}")
            self._progress.update(
                self._task, completed=progress["percentage"], description=text.plain
            )
            return
        line = progress_line(number, progress)
        if line != self._last_progress:
            self._last_progress = line
            print(line, file=self.stdout, flush=True)

    def lines(self, lines: list[dict[str, Any]]) -> None:
        if self._progress is not None:
            for line in lines:
                self._progress.console.print(Text(log_line(line)), highlight=False)
            return
        out = sys.stderr if self.json else self.stdout
        out.write("".join(log_line(line) + "\n" for line in lines))
        out.flush()

    # --- tables ----------------------------------------------------------------------------

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [["" if value is None else str(value) for value in row] for row in rows]
        if self.console is not None:
            table = Table(title=title)
            for column in columns:
                table.add_column(column)
            for row in cells:
                table.add_row(*row)
            self.console.print(table)
            return
        widths = [
            max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)
        ]
        for row in [list(columns), *cells]:
            text = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            print(plain(text), file=self.stdout)
        self.stdout.flush()
