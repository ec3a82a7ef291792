"""Small statistics for the analytics page, in plain Python (no SciPy in the web app).

Pearson and Spearman correlation, the two-sided p-value of r through Student's t
distribution (whose CDF is the regularized incomplete beta function, evaluated with a
continued fraction), the mean of Y per bin of X, and an even sample of points for a
scatter that must stay light in the browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Continued-fraction settings: 200 terms reach double precision for any a, b we use
# (a = df / 2 can be in the thousands; convergence takes about sqrt(a) terms).
_MAX_TERMS = 300
_EPSILON = 3e-16
_TINY = 1e-300


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r; ``None`` for fewer than 2 pairs or when either side does not vary."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    n = len(xs)
    if n < 2:
        return None
    mean_x = math.fsum(xs) / n
    mean_y = math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    syy = math.fsum((y - mean_y) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    # Rounding can push |r| a hair past 1 for perfectly linear data.
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing the mean of the ranks they span (as Spearman needs)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = shared
        start = end + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the (tie-averaged) ranks."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    return pearson(average_ranks(xs), average_ranks(ys))


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1.

    Uses the continued fraction of I_x(a, b) (modified Lentz's method) on the side where
    it converges fast, and the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) on the other.
    """
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    if not 0.0 <= x <= 1.0:
        raise ValueError("x must be within [0, 1]")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction 1 / (1 + d1 / (1 + d2 / (1 + ...))) of I_x(a, b)."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_TERMS + 1):
        # Even step: d_{2m} = m (b − m) x / ((a + 2m − 1)(a + 2m)).
        numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + numerator / c
        c = c if abs(c) > _TINY else _TINY
        result *= d * c
        # Odd step: d_{2m+1} = −(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)).
        numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + numerator / c
        c = c if abs(c) > _TINY else _TINY
        step = d * c
        result *= step
        if abs(step - 1.0) < _EPSILON:
            break
    return result


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("df must be positive")
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t))


def correlation_p_value(r: float | None, n: int) -> float | None:
    """Two-sided p for H0: no correlation, t = r·√((n − 2) / (1 − r²)) with n − 2 df."""
    if r is None or n < 3:
        return None
    if abs(r) >= 1.0:
        return 0.0
    df = n - 2
    t = r * math.sqrt(df / (1 - r * r))
    return student_t_two_sided_p(t, df)


@dataclass(frozen=True)
class Correlation:
    method: str
    r: float | None
    p: float | None
    n: int


def correlate(xs: Sequence[float], ys: Sequence[float], method: str = "pearson") -> Correlation:
    if method == "pearson":
        r = pearson(xs, ys)
    elif method == "spearman":
        r = spearman(xs, ys)
    else:
        raise ValueError(f"unknown method {method!r}")
    return Correlation(method, r, correlation_p_value(r, len(xs)), len(xs))


def strength(r: float) -> str:
    """Words for |r| (a common rule of thumb, not a law)."""
    size = abs(r)
    if size < 0.1:
        return "no"
    if size < 0.3:
        return "a weak"
    if size < 0.5:
        return "a moderate"
    return "a strong"


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    n: int
    mean_y: float | None

    @property
    def center(self) -> float:
        return (self.low + self.high) / 2


def bin_means(xs: Sequence[float], ys: Sequence[float], bins: int = 10) -> list[Bin]:
    """Mean of Y in each of ``bins`` equal-width bins of X between its min and max.

    The last bin includes the maximum. When X does not vary there is a single bin.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    if not xs:
        return []
    low, high = min(xs), max(xs)
    if low == high:
        return [Bin(low, high, len(ys), mean(ys))]
    width = (high - low) / bins
    sums = [0.0] * bins
    counts = [0] * bins
    last = bins - 1
    for x, y in zip(xs, ys, strict=True):
        index = int((x - low) / width)
        if index > last:  # only x == high, or a rounding hair below it
            index = last
        sums[index] += y
        counts[index] += 1
    return [
        Bin(
            low + i * width,
            low + (i + 1) * width,
            counts[i],
            sums[i] / counts[i] if counts[i] else None,
        )
        for i in range(bins)
    ]


def even_sample(items: Sequence[T], limit: int) -> list[T]:
    """At most ``limit`` items spread evenly over the sequence (all of them if few)."""
    if len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]
