"""The admin page (`/admin/ui`) and the offline API reference (`/docs`), served without a CDN.

A server-rendered HTML shell plus one vendored JavaScript and one CSS file. The page holds no
data of its own: its script calls the admin JSON API with the key the operator typed, kept in
sessionStorage and sent as `Authorization: Bearer`. No cookie is ever set, so no other site can
make a browser act with the key (no CSRF by construction).
"""

from server.admin_ui.router import create_router, docs_page

__all__ = ["create_router", "docs_page"]
