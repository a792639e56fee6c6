"""The vendored files: read once from the package, fingerprinted, sent with strict headers."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

from fastapi import Response

# The page's script and styles come from this origin only: no inline script or style, so an
# injected tag cannot run; no framing (clickjacking); no form posting elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The shells name each asset with its content hash, so an asset URL never changes meaning and
# may be cached for good; the shells themselves are revalidated on every load.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MEDIA_TYPES = {"admin.js": "text/javascript", "admin.css": "text/css"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


@cache
def asset(name: str) -> Asset:
    body = _read(name)
    return Asset(body, MEDIA_TYPES[name], hashlib.sha256(body).hexdigest()[:16])


def asset_response(name: str, version: str | None) -> Response:
    found = asset(name)
    cache_control = IMMUTABLE if version == found.version else REVALIDATE
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control}
    return Response(found.body, media_type=found.media_type, headers=headers)


@cache
def _template(name: str) -> Template:
    return Template(_read(name).decode("utf-8"))


def page_response(template: str, root_path: str, **values: str) -> Response:
    """A shell with every substituted value HTML-escaped (the root path comes from a proxy)."""
    root = root_path.rstrip("/")
    urls = {
        "root": root,
        "js": f"{root}/static/admin.js?v={asset('admin.js').version}",
        "css": f"{root}/static/admin.css?v={asset('admin.css').version}",
    }
    escaped = {key: html.escape(value, quote=True) for key, value in {**urls, **values}.items()}
    body = _template(template).substitute(escaped)
    headers = {**SECURITY_HEADERS, "Cache-Control": REVALIDATE}
    return Response(body, media_type="text/html", headers=headers)
