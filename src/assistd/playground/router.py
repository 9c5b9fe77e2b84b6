"""Routes of the playground and the reference: ``/playground``, its assets, ``/docs``.

The assets are read once from the package directory into a table; only names in that table
are served, so no request path ever reaches the file system."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from assistd.core.errors import NotFoundError
from assistd.playground.headers import SECURITY_HEADERS

STATIC_DIR: Final = Path(__file__).parent / "static"
ASSET_PREFIX: Final = "/playground/static/"

MEDIA_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    """One static file: its bytes and media type."""

    body: bytes
    media_type: str


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every servable file under ``root``, keyed by its path relative to it."""
    assets: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        media_type = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            assets[path.relative_to(root).as_posix()] = Asset(path.read_bytes(), media_type)
    return assets


def _page(asset: Asset) -> Response:
    return Response(asset.body, media_type=asset.media_type, headers=SECURITY_HEADERS)


def playground_router() -> APIRouter:
    """The pages' routes, outside ``/v1`` (the pages themselves need no key)."""
    assets = load_assets()
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def root() -> RedirectResponse:
        """The server's front page is the playground."""
        return RedirectResponse("/playground", status_code=307, headers=SECURITY_HEADERS)

    @router.get("/playground")
    async def playground() -> Response:
        """The playground's page."""
        return _page(assets["index.html"])

    @router.get("/docs")
    async def docs() -> Response:
        """The API reference, rendered in the browser from ``/openapi.json``."""
        return _page(assets["docs.html"])

    @router.get(ASSET_PREFIX + "{name:path}")
    async def asset(name: str) -> Response:
        """A file of the pages (scripts, styles, images)."""
        found = assets.get(name)
        if found is None or name.endswith(".html"):
            raise NotFoundError(f"No playground asset named '{name}'.")
        return _page(found)

    return router
