"""The exit codes of the client commands (documented in the README): a CI job can tell a
failed rollout from a refused request, a timeout or a bad token."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    """The command did what it was asked; with --wait, the deployment ended SUCCESS."""
    FAILURE = 1
    """The deployment ended FAILURE."""
    USAGE = 2
    """The command line was wrong (unknown option, bad value)."""
    ROLLED_BACK = 3
    """The deployment failed and the last good deployment was put back (ROLLED_BACK)."""
    ERROR = 4
    """The deployment ended ERROR (deploybot or Docker could not run it)."""
    CANCELLED = 5
    """The deployment was CANCELLED."""
    REFUSED = 6
    """The server refused the request (userErrors, printed with their codes)."""
    TIMEOUT = 7
    """--timeout ran out before the deployment ended (it goes on on the server)."""
    AUTHENTICATION = 8
    """The token is missing, unknown or may not do this (HTTP 401/403, FORBIDDEN)."""
    UNREACHABLE = 9
    """The server could not be reached or answered with something unusable."""
    NOT_FOUND = 10
    """The deployment or application asked for does not exist."""


FINAL_STATES = {
    "SUCCESS": ExitCode.OK,
    "INACTIVE": ExitCode.OK,  # succeeded, and a newer success has since replaced it
    "FAILURE": ExitCode.FAILURE,
    "ROLLED_BACK": ExitCode.ROLLED_BACK,
    "ERROR": ExitCode.ERROR,
    "CANCELLED": ExitCode.CANCELLED,
}
"""The exit code of a deployment that ended in each state."""
