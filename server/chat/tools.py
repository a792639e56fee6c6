"""A choice's tool calls as the chat turn yields them: each call the model wrote, read against
the tools the turn offers, numbered and given an id (docs/tools.md)."""

from __future__ import annotations

import uuid

from server import metrics, rlpa
from server.chat.events import ToolCallDelta


class CallReader:
    def __init__(self, tools: rlpa.ToolUse, index: int) -> None:
        self._tools = tools
        self._index = index
        self.count = 0

    def read(self, texts: tuple[str, ...]) -> list[ToolCallDelta]:
        """The calls among `texts` (each a `<tool_call>` block's text) that call a tool the turn
        offers; without parallel calls, only the choice's first. One that does not is a format
        failure: it is dropped, as a malformed block is."""
        calls = []
        for text in texts:
            call = rlpa.read_tool_call(text, self._tools)
            if call is None:
                metrics.FORMAT_FAILURES.inc()
                continue
            if self.count and not self._tools.parallel:
                continue
            name, arguments = call
            calls.append(
                ToolCallDelta(
                    index=self._index,
                    call_index=self.count,
                    id=f"call_{uuid.uuid4().hex[:24]}",
                    name=name,
                    arguments=arguments,
                )
            )
            self.count += 1
        return calls
