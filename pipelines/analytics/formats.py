"""How the review and the Analytics page write a figure: one function per kind, so the same quantity
reads the same everywhere (a TTD p50 of 6.5 min is "6.5 min" on the page, in the report and the CLI).
"""

from __future__ import annotations

import math
from typing import Any

MAX_DIGITS = 6


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def minutes(x: float | None, unit: bool = True) -> str:
    """A duration in minutes, one decimal: `6.5 min` (`6.5` with unit=False); `—` when unknown."""
    if _missing(x):
        return "—"
    text = f"{float(x):,.1f}"  # type: ignore[arg-type]
    return f"{text} min" if unit else text


def number(x: Any, digits: int = 1) -> str:
    """A count as written (`1,234`), a float with `digits` decimals, `—` when unknown."""
    if _missing(x):
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def target_pct(target: float) -> str:
    """A target as its spec writes it: 0.999 → `99.9%`, 0.9995 → `99.95%`."""
    return f"{round(target * 100, 6):g}%"


def pct(x: float | None, digits: int = 1, *, against: float | None = None) -> str:
    """A share as a percentage with `digits` decimals (at least). With `against` (a target or limit),
    more decimals are shown until the printed value differs from the printed target, unless the two are
    equal: 0.999496 against 0.9995 reads `99.9496%`, never `99.950%`."""
    if _missing(x):
        return "—"
    value = float(x)  # type: ignore[arg-type]
    d = digits
    while against is not None and value != against and d < MAX_DIGITS:
        if round(value * 100, d) != round(against * 100, d):
            break
        d += 1
    return f"{value * 100:.{d}f}%"


def points(change: float | None) -> str:
    """A change in attainment in percentage points, signed: `+0.012 pp`, `−0.250 pp`, `0 pp`."""
    if _missing(change):
        return "—"
    value = float(change) * 100  # type: ignore[arg-type]
    if value == 0:
        return "0 pp"
    d = 3
    while round(value, d) == 0 and d < MAX_DIGITS:
        d += 1
    return f"{'+' if value > 0 else '−'}{abs(value):.{d}f} pp"
