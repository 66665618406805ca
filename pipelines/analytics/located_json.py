"""JSON read with the line every object member starts on, so an import can say `file:line` for a field.

`loads(text)` returns what `json.loads` returns, except that objects are `LocatedDict`s: `.line` is the
line of the object's `{`, `.line_of(key)` the line its member's value starts on (1-based, both).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from json import decoder, scanner
from typing import Any


class LocatedDict(dict[str, Any]):
    """A JSON object that knows where it was in the text."""

    line: int = 0
    lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """The line `key`'s value starts on (the object's own line when the key is absent)."""
        return getattr(self, "lines", {}).get(key, self.line)


def loads(text: str) -> Any:
    """`json.loads(text)` with located objects; raises `json.JSONDecodeError` as it does."""
    newlines = [i for i, c in enumerate(text) if c == "\n"]

    def line(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    def parse_object(
        s_and_end: tuple[str, int],
        strict: bool,
        scan_once: Callable[[str, int], tuple[Any, int]],
        object_hook: Any,
        object_pairs_hook: Any,
        memo: dict[str, str] | None = None,
    ) -> tuple[LocatedDict, int]:
        starts: list[int] = []  # where each member's value starts, in member order

        def scan_value(string: str, idx: int) -> tuple[Any, int]:
            starts.append(idx)
            return scan_once(string, idx)

        pairs, end = decoder.JSONObject(  # type: ignore[attr-defined]  # the stdlib's own object parser
            s_and_end, strict, scan_value, None, lambda p: p, memo
        )
        obj = LocatedDict(pairs)
        obj.line = line(s_and_end[1] - 1)
        obj.lines = {key: line(at) for (key, _), at in zip(pairs, starts, strict=True)}
        return obj, end

    located = json.JSONDecoder()
    located.parse_object = parse_object  # type: ignore[attr-defined]
    # The C scanner calls its own object parser; the Python one calls `parse_object` above.
    located.scan_once = scanner.py_make_scanner(located)  # type: ignore[attr-defined]
    return located.decode(text)
