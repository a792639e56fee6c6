"""Who a request says its end user is: the body's fields, then the configured headers.

The end user of a turn, first found wins:

1. the user a key is bound to, whatever the request says (the chat service decides this one);
2. the body's `user`: a string, or an object's `id` (Open WebUI's pipelines send an object);
3. the body's `safety_identifier` (OpenAI's successor to `user`);
4. the first header of `RLPA_USER_HEADER` the request carries (Open WebUI's
   `X-OpenWebUI-User-Id`), read only when configured: a header nobody configured names no one.

The body comes before the headers because it is what the application itself chose for this
request; a header is what a proxy in front of it adds to every request. An empty value names no
one, and the next is looked at. A header trusts its sender no more than `user` does: an unbound
chat key may name any user of its tenant either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def end_user(
    user: str | None,
    safety_identifier: str | None,
    headers: Mapping[str, str],
    header_names: Sequence[str],
) -> str | None:
    """The end user the request names (before a bound key's), or None: no one."""
    for named in (user, safety_identifier, *(headers.get(name) for name in header_names)):
        if named:
            return named
    return None
