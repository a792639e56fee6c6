"""The one state machine behind parse_output and StreamSplitter.

Both feed it the same tokens (text and tags), so the streamed reply and the parsed reply can
differ only in how the text was cut, never in what the tags mean. Reply text is everything outside
a profile block up to `</response>`; with a well-formed output that is the response block plus
blank lines, which stripping removes.

Inside the response block only `</response>` is a tag: a reply may hold any other text, `<`
and tag-like text included (HTML, `Vec<u8>`, a user's words echoed back), and is shown as written.

A turn that offers tools (`tools=True`) also reads `<tool_call>` blocks outside the others: their
text is neither reply nor profile, and each one is kept, as written, in `calls`
(server/rlpa/tools.py reads them).
"""

from __future__ import annotations

import re
from enum import Enum

from server.rlpa.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from server.rlpa.traits import TAGS, normalize_traits

PROFILE_OPEN, PROFILE_CLOSE, RESPONSE_OPEN, RESPONSE_CLOSE = TAGS
# Traits are one per line, and only newlines end a line: str.splitlines() would also break on
# U+2028, U+0085 and the like, cutting one trait in two (they become spaces in the trait).
_LINES = re.compile(r"\r\n|\r|\n")
_IN_REPLY = (RESPONSE_CLOSE,)
_IN_CALL = (TOOL_CALL_CLOSE,)
_WITH_TOOLS = (*TAGS, TOOL_CALL_OPEN)


class _State(Enum):
    OUTSIDE = "outside"
    PROFILE = "profile"
    RESPONSE = "response"
    CALL = "call"
    DONE = "done"


class Machine:
    """Tags must be lowercased before they reach `tag`, and be among `tags`."""

    def __init__(self, *, tools: bool = False) -> None:
        self.state = _State.OUTSIDE
        self.profile: list[str] | None = None
        self.calls: list[str] = []
        """The tool calls written so far, each the text between its tags."""
        self._tags = _WITH_TOOLS if tools else TAGS
        self._call: list[str] = []
        self._capturing = False
        self._parts: list[str] = []
        self._profile_seen = False
        self._responded = False
        # Text or tags where the format has no place for them: the reply is still recovered,
        # but the turn does not count as well-formed.
        self._stray = False

    @property
    def done(self) -> bool:
        return self.state is _State.DONE

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags that mean something here; any other tag-like text is text."""
        if self.state is _State.RESPONSE:
            return _IN_REPLY
        if self.state is _State.CALL:
            return _IN_CALL
        return () if self.state is _State.DONE else self._tags

    @property
    def format_ok(self) -> bool:
        return self._responded and not self._stray

    @property
    def calling(self) -> bool:
        """Inside a `<tool_call>` block."""
        return self.state is _State.CALL

    def text(self, text: str) -> str:
        """Feed text between tags; returns the part of it that belongs to the reply."""
        if self.state is _State.PROFILE:
            if self._capturing:
                self._parts.append(text)
            return ""
        if self.state is _State.CALL:
            self._call.append(text)
            return ""
        if self.state is _State.DONE:
            return ""
        if self.state is _State.OUTSIDE and not text.isspace() and text:
            self._stray = True
        return text

    def tag(self, tag: str) -> list[str] | None:
        """Feed one of `tags`; returns the profile if this tag completed the first profile
        block."""
        state = self.state
        if state is _State.DONE:
            return None
        if state is _State.CALL:  # its one tag, </tool_call>
            self._close_call()
            return None
        if state is _State.PROFILE:
            if tag == PROFILE_OPEN:  # a nested opening tag means nothing
                return None
            # Every other tag ends the block: a missing </profile> is the commonest slip.
            if tag == RESPONSE_OPEN:
                self._open_response()
            elif tag == TOOL_CALL_OPEN:
                self._open_call()
            else:
                self.state = _State.OUTSIDE if tag == PROFILE_CLOSE else _State.DONE
            return self._close_profile()
        if tag == RESPONSE_CLOSE:
            self.state = _State.DONE
        elif tag == PROFILE_OPEN:
            # Only the first block is the model's profile; a later one is hidden all the same.
            self._capturing = not self._profile_seen
            self.state = _State.PROFILE
            self._profile_seen = True
        elif tag == RESPONSE_OPEN:
            self._open_response()
        elif tag == TOOL_CALL_OPEN:
            self._open_call()
        else:  # a closing tag with nothing open
            self._stray = True
        return None

    def finish(self) -> list[str] | None:
        """The end of the output closes whatever is open."""
        if self.state is _State.PROFILE:
            self.state = _State.DONE
            return self._close_profile()
        if self.state is _State.CALL:  # a call the output ended without its closing tag
            self._close_call()
        self.state = _State.DONE
        return None

    def _open_response(self) -> None:
        self.state = _State.RESPONSE
        self._responded = self._responded or self._profile_seen

    def _open_call(self) -> None:
        self.state = _State.CALL
        self._responded = self._responded or self._profile_seen

    def _close_call(self) -> None:
        self.calls.append("".join(self._call).strip())
        self._call = []
        self.state = _State.OUTSIDE

    def _close_profile(self) -> list[str] | None:
        if not self._capturing:
            return None
        self._capturing = False
        self.profile = normalize_traits(_LINES.split("".join(self._parts)))
        self._parts = []
        return self.profile
