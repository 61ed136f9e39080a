"""Whether a failure is the database being away (stopped, restarting, a pooled connection
it closed) rather than a bug: transports answer DATABASE_UNAVAILABLE for it and the runner
waits it out. Apart from `db/` so the GraphQL layer can classify errors without reaching
for the database.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

DATABASE_UNAVAILABLE_MESSAGE = "the database is unavailable right now; retry shortly"

_UNAVAILABLE_SQLSTATES = ("08", "57P")
"""Connection exceptions and operator intervention (shutdown, "cannot connect now")."""


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database server cannot be reached right now (stopped,
    restarting, a pooled connection it closed), as opposed to a bad statement: the
    caller may retry the same work once it is back.

    SQLAlchemy marks a connection it found dead (`connection_invalidated`); a refused
    connect is an OSError; asyncpg's own errors carry the SQLSTATE class.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (OSError, ConnectionError)):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if type(current).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and (
            "closed" in str(current) or "does not exist" in str(current)
        ):
            return True
        pending.extend((current.__cause__, current.__context__, getattr(current, "orig", None)))
    return False
