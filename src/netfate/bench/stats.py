"""The one statistics helper of every benchmark, so every figure in the README comes from the
same method.

Percentiles use linear interpolation between the two nearest ranks (Hyndman & Fan type 7,
numpy's and Excel's default; ``statistics.quantiles(method="inclusive")``): for n sorted
values x[0..n-1], the q-th percentile sits at rank h = (n - 1) * q / 100 and is
x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). So p0 is the minimum, p100
the maximum and p50 the median, for any n >= 1.

Ratios compare a figure with the same run's baseline (the same machine, the same moment), never
with a number from another run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

QUANTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) of ``values``, linearly interpolated (see the
    module's docstring). ValueError if ``values`` is empty or q is out of range."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    s = sorted(values)
    h = (len(s) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """n, min, p50, p95, p99, max and mean of ``values``, rounded to ``digits`` decimals.
    ``{"n": 0}`` when there are none (so ``.get("p50")`` is None)."""
    if not values:
        return {"n": 0}
    out: dict[str, float] = {f"p{q}": round(percentile(values, q), digits) for q in QUANTILES}
    out.update(min=round(min(values), digits), max=round(max(values), digits),
               mean=round(math.fsum(values) / len(values), digits), n=len(values))
    return out


def median(values: Sequence[float], digits: int = 2) -> float | None:
    """The median (p50) rounded, or None for no values."""
    return round(percentile(values, 50), digits) if values else None


def ratio(value: float | None, baseline: float | None, digits: int = 2) -> float | None:
    """value / baseline of the same run, rounded; None when either is missing or the
    baseline is 0."""
    if value is None or not baseline:
        return None
    return round(value / baseline, digits)
