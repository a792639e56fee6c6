"""One choice's output as the backend streams it: the profile block held back, the reply let
through, and the client's `stop` and `max_tokens` applied to the reply alone, as OpenAI applies
them to a completion.

The block has its own bound (RLPA_PROFILE_MAX_TOKENS), so a short `max_tokens` still gets a
reply and a stop string such as "\\n" never ends the turn inside the block. A token counts
toward the reply from the first one that carries reply text or is inside a tool call, toward the
block before that (the blank line after `<response>` included). Stop strings apply to the
reply's text, not to tool calls. The reader only decides where the reply ends; the chat
service then stops the generation (base.STOP).
"""

from __future__ import annotations

from dataclasses import dataclass

from server import rlpa
from server.backends.base import Finish, TextDelta
from server.backends.stopping import StopScanner


@dataclass(frozen=True)
class Read:
    text: str
    """Reply text to send now, possibly empty."""
    profile: list[str] | None = None
    """Set once, when the first profile block became complete."""
    calls: tuple[str, ...] = ()
    """Tool calls completed now, each the text between its tags."""


class ReplyReader:
    def __init__(
        self, *, stop: list[str], max_tokens: int, block_max_tokens: int, tools: bool = False
    ) -> None:
        self._splitter = rlpa.StreamSplitter(tools=tools)
        self._stops = StopScanner(stop)
        self._max_tokens = max_tokens
        self._block_max_tokens = block_max_tokens
        self.tokens = 0
        """Tokens read, hidden block and reply together."""
        self._reply_tokens = 0
        self._began = False  # the reply has begun: its tokens count toward max_tokens
        self.cut: str | None = None
        """Set when the reader ended the reply: "stop" (a stop string, or text after the reply's
        end) or "length" (a bound)."""
        self._closed = False  # the reply ended at `</response>`, before the backend's Finish

    @property
    def format_ok(self) -> bool:
        """Final only after finish()."""
        return self._splitter.format_ok

    def feed(self, delta: TextDelta) -> Read:
        if self.cut is not None:
            raise RuntimeError("feed() after the reply was cut")
        self.tokens += delta.tokens
        if self._splitter.done:
            # Text after `</response>` (a model writing on without the grammar): the reply is
            # complete and nothing more is read. Under the grammar the end comes instead.
            self.cut = "stop"
            return Read("")
        split = self._splitter.feed(delta.text)
        if self._began or split.text or split.calls or self._splitter.calling:
            self._began = True
            self._reply_tokens += delta.tokens
        text = self._stops.feed(split.text)
        if self._stops.stopped:
            self.cut = "stop"
        elif self._reply_tokens >= self._max_tokens:
            # The scanner's held text is reply text whose stop string never came; the
            # splitter's is blank or the start of `</response>`: the reply ends without it.
            text += self._stops.flush()
            self.cut = "length"
        elif not self._began and self.tokens >= self._block_max_tokens:
            self.cut = "length"  # the block ran past its bound: an open block is not stored
        return Read(text, split.profile, split.calls)

    def finish(self, finish: Finish) -> Read:
        """The backend's Finish: the rest of the reply, and a profile block the end closed."""
        if self.cut is not None:
            return Read("")
        self._closed = self._splitter.done
        tail = self._splitter.finish()
        text = self._stops.flush(tail.text)
        if finish.reason == "length" and not self._began:
            # Cut by a token bound inside the block: its last trait may be half written, and
            # under contract v1 a cut list would drop every trait after it.
            return Read(text)
        # A call the output ended in without its closing tag counts if it is whole: the chat
        # service reads each call's JSON (a cut one does not parse).
        return Read(text, tail.profile, tail.calls)

    def finish_reason(self, finish: Finish) -> str:
        """OpenAI's: "stop" when the reply ended by itself (at `</response>`, however the
        backend's generation ended), "length" when a bound ended it."""
        return self.cut or ("stop" if self._closed else finish.reason)

    def completion_tokens(self, finish: Finish) -> int:
        """What the choice generated: after a cut, what was read up to it (the backend may have
        run a token or two past it before it heard)."""
        return self.tokens if self.cut is not None else finish.completion_tokens
