"""Split a streamed model output as it arrives: reply text goes out, the profile is kept back.

The reply is exactly what parse_output would return for the whole output; see tests for the
property that pins this down for every way of cutting the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.rlpa.machine import Machine
from server.rlpa.tools import TOOL_TAGS
from server.rlpa.traits import ASCII_LOWER, TAGS

_LONGEST_TAG = max(len(tag) for tag in (*TAGS, *TOOL_TAGS))


@dataclass(frozen=True)
class SplitEvent:
    text: str
    """Reply text to send now, possibly empty."""
    profile: list[str] | None = None
    """Set once, on the event where the first profile block became complete."""
    calls: tuple[str, ...] = ()
    """Tool calls completed by this chunk, each the text between its tags (`tools=True`)."""


class StreamSplitter:
    def __init__(self, *, tools: bool = False) -> None:
        self._machine = Machine(tools=tools)
        self._pending = ""  # an unresolved tag prefix from the end of the last chunk
        self._started = False  # the reply's leading whitespace is dropped, as strip() would
        self._spaces: list[str] = []  # whitespace that is sent only if more reply follows
        self._sent: list[str] = []
        self._finished = False

    @property
    def profile(self) -> list[str] | None:
        return self._machine.profile

    @property
    def response(self) -> str:
        return "".join(self._sent)

    @property
    def done(self) -> bool:
        """The output has ended for the reader: `</response>` came, or finish() was called.
        Whatever is fed from here on is dropped."""
        return self._machine.done

    @property
    def format_ok(self) -> bool:
        """Final only after finish()."""
        return self._machine.format_ok

    @property
    def calling(self) -> bool:
        """Inside a tool call: the output has turned from the block to an answer."""
        return self._machine.calling

    def feed(self, chunk: str) -> SplitEvent:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        return self._drain(self._pending + chunk, final=False)

    def finish(self) -> SplitEvent:
        if self._finished:
            raise RuntimeError("finish() called twice")
        event = self._drain(self._pending, final=True)
        calls = len(self._machine.calls)
        closed = self._machine.finish()
        self._finished = True
        profile = event.profile if closed is None else closed
        return SplitEvent(event.text, profile, event.calls + tuple(self._machine.calls[calls:]))

    def _drain(self, buf: str, *, final: bool) -> SplitEvent:
        out: list[str] = []
        profile: list[str] | None = None
        calls = len(self._machine.calls)
        pos = 0
        # Every step moves pos past a "<" or a tag, so the work is linear in the chunk.
        while pos < len(buf) and not self._machine.done:
            lt = buf.find("<", pos)
            if lt < 0:
                self._text(buf[pos:], out)
                pos = len(buf)
                break
            self._text(buf[pos:lt], out)
            head = buf[lt : lt + _LONGEST_TAG].translate(ASCII_LOWER)
            tags = self._machine.tags  # in the reply only `</response>`: only its start is held
            tag = next((t for t in tags if head.startswith(t)), None)
            if tag is not None:
                completed = self._machine.tag(tag)
                if completed is not None:
                    profile = completed
                pos = lt + len(tag)
            elif not final and len(head) < _LONGEST_TAG and any(t.startswith(head) for t in tags):
                pos = lt  # a tag may be cut at the chunk's end: wait for the rest
                break
            else:
                self._text("<", out)
                pos = lt + 1
        self._pending = "" if self._machine.done else buf[pos:]
        text = "".join(out)
        self._sent.append(text)
        return SplitEvent(text, profile, tuple(self._machine.calls[calls:]))

    def _text(self, text: str, out: list[str]) -> None:
        text = self._machine.text(text)
        if not text:
            return
        if not self._started:
            text = text.lstrip()
            if not text:
                return
            self._started = True
        body = text.rstrip()
        if body:
            out.extend(self._spaces)
            out.append(body)
            self._spaces = [text[len(body) :]]
        else:
            self._spaces.append(text)
