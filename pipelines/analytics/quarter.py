"""Calendar quarters in UTC: `2026-Q3` is [2026-07-01T00:00, 2026-10-01T00:00)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    q: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        match = _PATTERN.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a quarter; expected e.g. 2026-Q3")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, t: dt.datetime) -> Quarter:
        """The quarter containing instant t (naive times are UTC)."""
        if t.tzinfo is not None:
            t = t.astimezone(dt.UTC).replace(tzinfo=None)
        return cls(t.year, (t.month - 1) // 3 + 1)

    @classmethod
    def last_full(cls, t: dt.datetime) -> Quarter:
        """The latest quarter that has ended by instant t: the one before the quarter containing t."""
        return cls.of(t).previous()

    @property
    def label(self) -> str:
        return f"{self.year}-Q{self.q}"

    @property
    def start(self) -> dt.datetime:
        """First instant of the quarter, naive UTC."""
        return dt.datetime(self.year, 3 * (self.q - 1) + 1, 1)

    @property
    def end(self) -> dt.datetime:
        """First instant after the quarter, naive UTC."""
        return self.next().start

    def next(self) -> Quarter:
        return Quarter(self.year + 1, 1) if self.q == 4 else Quarter(self.year, self.q + 1)

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.q == 1 else Quarter(self.year, self.q - 1)

    def __str__(self) -> str:
        return self.label
