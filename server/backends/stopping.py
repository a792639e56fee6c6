"""Stop strings over streamed text: never emit a stop string, nor any text after it."""

from __future__ import annotations


class StopScanner:
    """Cuts the stream at the first stop string.

    Text that might be the beginning of a stop string is held back until the next piece shows
    whether it is one, so a stop string split across tokens never leaks to the client.
    """

    def __init__(self, stops: list[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `pending + text` that is now safe to emit."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        buffer = self._pending + text
        found = [index for index in (buffer.find(stop) for stop in self._stops) if index >= 0]
        if found:
            self.stopped = True
            self._pending = ""
            return buffer[: min(found)]
        held = self._held(buffer)
        self._pending = buffer[len(buffer) - held :]
        return buffer[: len(buffer) - held]

    def flush(self, text: str = "") -> str:
        """The end of the stream: held text was not a stop string after all."""
        emitted = self.feed(text)
        rest, self._pending = self._pending, ""
        return emitted + rest

    def _held(self, buffer: str) -> int:
        """Length of the longest end of `buffer` that is the start of some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
