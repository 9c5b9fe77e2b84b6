"""Security headers for the playground's and the reference's pages and assets.

The policy forbids inline script and every other origin: the pages load only their own files
and talk only to this server, so a key pasted into them cannot leave it."""

from __future__ import annotations

from typing import Final

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

SECURITY_HEADERS: Final[dict[str, str]] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Pages name their assets by path, not by content hash: revalidate instead of caching.
    "cache-control": "no-cache",
}
