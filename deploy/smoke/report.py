"""The table `make compose-smoke` prints: one row per step, with its seconds and what it
found, failed or not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Row:
    step: str
    seconds: float = 0.0
    result: str = ""


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.started = time.monotonic()

    @contextmanager
    def step(self, name: str) -> Iterator[Row]:
        row = Row(name)
        print(f"-- {name}", flush=True)
        started = time.monotonic()
        try:
            yield row
        except BaseException as exc:
            row.result = f"FAILED: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            raise
        finally:
            row.seconds = time.monotonic() - started
            self.rows.append(row)
            print(f"   {row.seconds:.0f} s: {row.result}", flush=True)

    def render(self) -> str:
        lines = ["| step | s | result |", "| --- | ---: | --- |"]
        lines += [f"| {r.step} | {r.seconds:.0f} | {r.result} |" for r in self.rows]
        lines.append(f"| total | {time.monotonic() - self.started:.0f} | |")
        return "\n".join(lines)
