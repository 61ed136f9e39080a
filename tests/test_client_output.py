"""The client's printing: plain lines carry no control characters; on a terminal the rich
progress bar and tables render."""

from __future__ import annotations

import io

from deploybot.client.output import Printer, log_line, plain


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


LINE = {
    "sequence": 1,
    "timestamp": "2026-01-02T03:04:05.678901+00:00",
    "source": "BUILD",
    "sourceName": "web",
    "stream": "STDERR",
    "text": "\x1b[31mred\x1b[0m\tand a bell\x07 \x1b]0;title\x07done",
}
PROGRESS = {"state": "IN_PROGRESS", "step": "build", "status": "RUNNING", "message": "building",
            "percentage": 20}  # fmt: skip


def test_plain_lines_strip_escapes_and_control_characters() -> None:
    assert plain("a\x1b[1;32mb\x1b[0m\r\x00c\td") == "abc    d"
    assert log_line(LINE) == "03:04:05.678 [build/web] ! red    and a bell done"


def test_without_a_terminal_progress_is_printed_once_per_change() -> None:
    out = io.StringIO()
    printer = Printer("text", stdout=out)
    with printer.following(7):
        printer.progress(7, PROGRESS)
        printer.progress(7, PROGRESS)
        printer.lines([LINE])
        printer.progress(7, {**PROGRESS, "percentage": 40, "step": "push"})
    assert out.getvalue().splitlines() == [
        "deployment #7:  20% IN_PROGRESS build RUNNING: building",
        "03:04:05.678 [build/web] ! red    and a bell done",
        "deployment #7:  40% IN_PROGRESS push RUNNING: building",
    ]


def test_on_a_terminal_a_progress_bar_and_tables() -> None:
    out = Terminal()
    printer = Printer("text", stdout=out)
    assert printer.rich
    with printer.following(7):
        printer.progress(7, PROGRESS)
        printer.lines([LINE])
    printer.table("deployments", ["#", "state"], [[7, "SUCCESS"]])
    shown = out.getvalue()
    assert "#7" in shown and "build: building" in shown and "red" in shown
    assert "\x1b[" in shown and "SUCCESS" in shown and "━" in shown
