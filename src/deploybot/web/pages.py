"""The pages deploybot serves to browsers: the dashboard at `/`, GraphiQL at `/graphql`, and
their assets under `/static` (GraphiQL, React and the explorer plugin are vendored, pinned,
in `web/static/vendor/`), so both work on a network without a CDN.

The pages hold no data: they ask the API, with the token the user signs in with, so they
need no authentication of their own."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


@cache
def _page(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def graphiql_page() -> str:
    return _page("graphiql.html")


async def dashboard(request: Request) -> Response:
    return HTMLResponse(_page("dashboard/index.html"))


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
