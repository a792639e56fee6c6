"""HTTP only: the admin page shell, the offline /docs shell, and their two static files.

None of these responses holds data, so none needs a key: the data comes from the admin API,
which checks the key on every call. /docs stays behind `DocsAccessDep` in server/app.py all the
same, so that RLPA_DOCS_PUBLIC keeps its meaning.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.admin_ui import assets
from server.errors import NotFoundError


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root


def create_router(*, admin_ui: bool = True) -> APIRouter:
    """The static files always (the /docs page uses them too); the admin page if enabled."""
    router = APIRouter(include_in_schema=False)

    @router.get("/static/{name}")
    async def static_file(name: str, v: str | None = None) -> Response:
        if name not in assets.MEDIA_TYPES:
            raise NotFoundError(f"No static file '{name}'.", param="name")
        return assets.asset_response(name, v)

    if admin_ui:

        @router.get("/admin/ui")
        async def admin_page(request: Request) -> Response:
            return assets.page_response("admin.html", _root_path(request))

    return router


def docs_page(request: Request, title: str) -> Response:
    """The API reference, rendered in the browser from /openapi.json by the same script."""
    return assets.page_response("docs.html", _root_path(request), title=title)
