"""zorbel: a tiny time-series toolkit written for dorag's Unseen-API benchmark.

No model has seen this library: it was written for the benchmark, and its names, argument orders,
return types and error types deliberately differ from pandas, numpy and the standard library.

The central type is the :class:`Reel`, a sequence of *knots*. A knot is a ``(stamp, height)`` pair:
``stamp`` is an ``int`` (strictly increasing along a reel) and ``height`` is a ``float``. Functions
never modify a reel; they return new ones.

Errors all derive from :class:`ZorbelFault` (never ``ValueError``/``KeyError``/``IndexError``):
``StampClash`` (stamps not strictly increasing, or overlapping reels), ``StampAbsent`` (no knot at a
stamp), ``HollowReel`` (an operation that needs at least one knot), ``WidthFault`` (a bad window or
chunk size), ``FlatReel`` (zero spread where a spread is needed), ``RungFault`` (a quantile outside
0..100) and ``LedgerFault`` (a malformed ledger text).

Example:
    >>> import zorbel
    >>> r = zorbel.spool([3.0, 5.0, 4.0], origin=10, stride=5)
    >>> r.stamps()
    (10, 15, 20)
    >>> zorbel.tally(r)
    12.0
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable, Iterable, Iterator, Sequence

__version__ = "1.3.0"

__all__ = [
    "ZorbelFault", "StampClash", "StampAbsent", "HollowReel", "WidthFault", "FlatReel", "RungFault", "LedgerFault",
    "Reel", "spool", "thread", "hollow", "nudge", "amplify", "lift", "pinch", "remap", "sieve", "excerpt", "thin",
    "steps", "accrue", "smooth", "drift", "echo", "centre", "temper", "podium", "braid", "splice", "overlay", "mesh",
    "fissures", "mend", "tally", "midline", "spread", "crest", "trough", "rung", "slope", "breaches", "chop",
    "coarsen", "streaks", "inscribe", "decipher", "sigil", "Gauge", "Alarm", "FOLDS",
]


# ---------------------------------------------------------------- errors

class ZorbelFault(Exception):
    """Base class of every zorbel error."""


class StampClash(ZorbelFault):
    """Stamps are not strictly increasing, or two reels overlap where they must not."""


class StampAbsent(ZorbelFault):
    """A reel has no knot at the requested stamp."""


class HollowReel(ZorbelFault):
    """The operation needs a reel with at least one knot."""


class WidthFault(ZorbelFault):
    """A window, chunk or bucket width is out of range."""


class FlatReel(ZorbelFault):
    """The reel's heights have no spread where one is required."""


class RungFault(ZorbelFault):
    """A quantile rung outside 0..100."""


class LedgerFault(ZorbelFault):
    """A ledger text line could not be deciphered."""


# ---------------------------------------------------------------- the reel

class Reel:
    """An immutable time series of knots ``(stamp, height)`` with strictly increasing int stamps.

    Build reels with :func:`spool`, :func:`thread` or :func:`hollow` rather than directly.

    Example:
        >>> r = thread([(1, 2.0), (4, 8.0)])
        >>> len(r), r.at(4), r.fore(1).stamps()
        (2, 8.0, (1,))
    """

    __slots__ = ("_stamps", "_heights")

    def __init__(self, stamps: Sequence[int], heights: Sequence[float]) -> None:
        stamps = tuple(int(s) for s in stamps)
        heights = tuple(float(h) for h in heights)
        if len(stamps) != len(heights):
            raise StampClash(f"{len(stamps)} stamps but {len(heights)} heights")
        for a, b in zip(stamps, stamps[1:]):
            if b <= a:
                raise StampClash(f"stamps must strictly increase: {a} then {b}")
        self._stamps = stamps
        self._heights = heights

    def stamps(self) -> tuple[int, ...]:
        """The stamps, as a tuple of ints.

        >>> spool([1.0, 2.0], origin=3).stamps()
        (3, 4)
        """
        return self._stamps

    def heights(self) -> list[float]:
        """The heights, as a new list of floats.

        >>> spool([1, 2]).heights()
        [1.0, 2.0]
        """
        return list(self._heights)

    def knots(self) -> Iterator[tuple[int, float]]:
        """Iterate over ``(stamp, height)`` pairs."""
        return iter(zip(self._stamps, self._heights))

    def at(self, stamp: int) -> float:
        """The height at `stamp`; raises :class:`StampAbsent` if there is no knot there.

        >>> spool([5.0, 6.0], origin=1).at(2)
        6.0
        """
        lo, hi = 0, len(self._stamps)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._stamps[mid] < stamp:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self._stamps) and self._stamps[lo] == stamp:
            return self._heights[lo]
        raise StampAbsent(f"no knot at stamp {stamp}")

    def holds(self, stamp: int) -> bool:
        """Whether the reel has a knot at `stamp`."""
        try:
            self.at(stamp)
            return True
        except StampAbsent:
            return False

    def fore(self, n: int) -> Reel:
        """The first `n` knots (all of them if `n` exceeds the length).

        >>> spool([1, 2, 3]).fore(2).heights()
        [1.0, 2.0]
        """
        return Reel(self._stamps[:max(n, 0)], self._heights[:max(n, 0)])

    def aft(self, n: int) -> Reel:
        """The last `n` knots.

        >>> spool([1, 2, 3]).aft(1).heights()
        [3.0]
        """
        if n <= 0:
            return Reel((), ())
        return Reel(self._stamps[-n:], self._heights[-n:])

    def span(self) -> tuple[int, int]:
        """``(first stamp, last stamp)``; raises :class:`HollowReel` on an empty reel.

        >>> spool([1, 2, 3], origin=5, stride=2).span()
        (5, 9)
        """
        if not self._stamps:
            raise HollowReel("span() of an empty reel")
        return self._stamps[0], self._stamps[-1]

    def stretch(self, factor: int) -> Reel:
        """Multiply every stamp by a positive int `factor` (heights unchanged).

        >>> spool([1, 2], origin=1).stretch(10).stamps()
        (10, 20)
        """
        if not isinstance(factor, int) or factor < 1:
            raise WidthFault(f"stretch factor must be a positive int, got {factor!r}")
        return Reel([s * factor for s in self._stamps], self._heights)

    def __len__(self) -> int:
        return len(self._stamps)

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return self.knots()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reel) and self._stamps == other._stamps and self._heights == other._heights

    def __hash__(self) -> int:
        return hash((self._stamps, self._heights))

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}:{h:g}" for s, h in list(self.knots())[:6])
        more = ", ..." if len(self) > 6 else ""
        return f"Reel<{inner}{more}>"


# ---------------------------------------------------------------- construction

def spool(heights: Iterable[float], origin: int = 0, stride: int = 1) -> Reel:
    """A reel from heights at stamps ``origin, origin + stride, ...``.

    Args:
        heights: the values, in order.
        origin: the first stamp.
        stride: the distance between stamps (a positive int), else :class:`WidthFault`.

    >>> spool([1.5, 2.5], origin=100, stride=10).stamps()
    (100, 110)
    """
    if stride < 1:
        raise WidthFault(f"stride must be at least 1, got {stride}")
    hs = list(heights)
    return Reel([origin + i * stride for i in range(len(hs))], hs)


def thread(knots: Iterable[tuple[int, float]]) -> Reel:
    """A reel from ``(stamp, height)`` pairs, which must already be in strictly increasing stamp order
    (:class:`StampClash` otherwise).

    >>> thread([(2, 1.0), (7, 3.0)]).at(7)
    3.0
    """
    pairs = list(knots)
    return Reel([p[0] for p in pairs], [p[1] for p in pairs])


def hollow(count: int, fill: float = 0.0, *, origin: int = 0, stride: int = 1) -> Reel:
    """A reel of `count` knots all at height `fill`. `origin` and `stride` are keyword-only.

    >>> hollow(3, 7.0, origin=1).heights()
    [7.0, 7.0, 7.0]
    """
    return spool([fill] * count, origin=origin, stride=stride)


# ---------------------------------------------------------------- transforms

def nudge(delta: int, reel: Reel) -> Reel:
    """Shift every stamp by `delta`. Note the order: the shift comes first, then the reel.

    >>> nudge(5, spool([1.0], origin=0)).stamps()
    (5,)
    """
    return Reel([s + delta for s in reel.stamps()], reel.heights())


def amplify(reel: Reel, factor: float) -> Reel:
    """Multiply every height by `factor`.

    >>> amplify(spool([1, 2]), 3).heights()
    [3.0, 6.0]
    """
    return Reel(reel.stamps(), [h * factor for h in reel.heights()])


def lift(reel: Reel, amount: float) -> Reel:
    """Add `amount` to every height.

    >>> lift(spool([1, 2]), 0.5).heights()
    [1.5, 2.5]
    """
    return Reel(reel.stamps(), [h + amount for h in reel.heights()])


def pinch(reel: Reel, ceiling: float, floor: float) -> Reel:
    """Clamp heights into ``[floor, ceiling]``. Note the order: ceiling first, then floor.

    >>> pinch(spool([-5, 0, 5]), 2, -1).heights()
    [-1.0, 0.0, 2.0]
    """
    if floor > ceiling:
        raise WidthFault(f"floor {floor} is above ceiling {ceiling}")
    return Reel(reel.stamps(), [min(max(h, floor), ceiling) for h in reel.heights()])


def remap(fn: Callable[[float], float], reel: Reel) -> Reel:
    """Apply `fn` to every height (the function comes first).

    >>> remap(abs, spool([-1, 2])).heights()
    [1.0, 2.0]
    """
    return Reel(reel.stamps(), [fn(h) for h in reel.heights()])


def sieve(reel: Reel, keep: Callable[[int, float], bool]) -> Reel:
    """The knots for which ``keep(stamp, height)`` is true.

    >>> sieve(spool([1, 5, 2]), lambda s, h: h > 1.5).stamps()
    (1, 2)
    """
    pairs = [(s, h) for s, h in reel.knots() if keep(s, h)]
    return thread(pairs)


def excerpt(reel: Reel, first: int, last: int) -> Reel:
    """The knots with ``first <= stamp <= last`` (both ends inclusive).

    >>> excerpt(spool([1, 2, 3, 4]), 1, 2).stamps()
    (1, 2)
    """
    return sieve(reel, lambda s, h: first <= s <= last)


def thin(reel: Reel, keep_every: int) -> Reel:
    """Keep every `keep_every`-th knot, starting with the first.

    >>> thin(spool([0, 1, 2, 3, 4]), 2).heights()
    [0.0, 2.0, 4.0]
    """
    if keep_every < 1:
        raise WidthFault(f"keep_every must be at least 1, got {keep_every}")
    return thread(list(reel.knots())[::keep_every])


def steps(reel: Reel) -> Reel:
    """Differences between consecutive heights, stamped at the later knot (one knot fewer).

    >>> steps(spool([1, 4, 9])).heights(), steps(spool([1, 4, 9])).stamps()
    ([3.0, 5.0], (1, 2))
    """
    s, h = reel.stamps(), reel.heights()
    return Reel(s[1:], [b - a for a, b in zip(h, h[1:])])


def accrue(reel: Reel) -> Reel:
    """Running total of the heights.

    >>> accrue(spool([1, 2, 3])).heights()
    [1.0, 3.0, 6.0]
    """
    out, total = [], 0.0
    for h in reel.heights():
        total += h
        out.append(total)
    return Reel(reel.stamps(), out)


FOLDS: dict[str, Callable[[Sequence[float]], float]] = {
    "sum": lambda xs: float(sum(xs)),
    "mean": lambda xs: float(sum(xs)) / len(xs),
    "max": lambda xs: float(max(xs)),
    "min": lambda xs: float(min(xs)),
    "spread": lambda xs: float(max(xs) - min(xs)),
}
"""The named reducers accepted by :func:`drift` and :func:`coarsen`."""


def _fold(name: str) -> Callable[[Sequence[float]], float]:
    if name not in FOLDS:
        raise ZorbelFault(f"unknown fold {name!r}; choose one of {', '.join(FOLDS)}")
    return FOLDS[name]


def drift(reel: Reel, width: int, fold: str = "mean") -> Reel:
    """Trailing window of `width` knots reduced by the named `fold` (see :data:`FOLDS`), stamped at
    the window's last knot. The result has ``len(reel) - width + 1`` knots; :class:`WidthFault` if
    `width` is below 1 or above the length.

    >>> drift(spool([1, 2, 3, 4]), 2, "sum").heights()
    [3.0, 5.0, 7.0]
    """
    if width < 1 or width > len(reel):
        raise WidthFault(f"window width {width} outside 1..{len(reel)}")
    f = _fold(fold)
    h = reel.heights()
    return Reel(reel.stamps()[width - 1:], [f(h[i - width + 1:i + 1]) for i in range(width - 1, len(h))])


def smooth(reel: Reel, width: int) -> Reel:
    """Trailing moving average over `width` knots (``drift(reel, width, "mean")``).

    >>> smooth(spool([2, 4, 6]), 2).heights()
    [3.0, 5.0]
    """
    return drift(reel, width, "mean")


def echo(reel: Reel, lag: int) -> Reel:
    """Lag the heights by `lag` knots: each stamp gets the height `lag` knots earlier; the first `lag`
    stamps are dropped.

    >>> echo(spool([1, 2, 3]), 1).heights(), echo(spool([1, 2, 3]), 1).stamps()
    ([1.0, 2.0], (1, 2))
    """
    if lag < 0 or lag >= max(len(reel), 1):
        raise WidthFault(f"lag {lag} outside 0..{len(reel) - 1}")
    return Reel(reel.stamps()[lag:], reel.heights()[: len(reel) - lag])


def centre(reel: Reel) -> Reel:
    """Subtract the mean height from every height.

    >>> centre(spool([1, 2, 3])).heights()
    [-1.0, 0.0, 1.0]
    """
    return lift(reel, -midline(reel))


def temper(reel: Reel) -> Reel:
    """Standardise heights to mean 0 and population standard deviation 1; :class:`FlatReel` when all
    heights are equal.

    >>> temper(spool([1, 3])).heights()
    [-1.0, 1.0]
    """
    m = midline(reel)
    sd = math.sqrt(sum((h - m) ** 2 for h in reel.heights()) / len(reel))
    if sd == 0:
        raise FlatReel("all heights are equal")
    return Reel(reel.stamps(), [(h - m) / sd for h in reel.heights()])


def podium(reel: Reel, places: int = 3) -> list[tuple[int, float]]:
    """The `places` highest knots as ``(stamp, height)``, highest first; ties go to the earlier stamp.

    >>> podium(spool([5, 9, 9, 1]), 2)
    [(1, 9.0), (2, 9.0)]
    """
    return sorted(reel.knots(), key=lambda k: (-k[1], k[0]))[:places]


# ---------------------------------------------------------------- combining reels

_OPS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b != 0 else math.nan,
}


def braid(left: Reel, right: Reel, op: str = "+") -> Reel:
    """Combine two reels knot by knot on the stamps they share, with `op` one of ``+ - * /`` (given as
    a string). Division by zero gives ``nan``.

    >>> braid(spool([1, 2, 3]), spool([10, 20], origin=1), "*").heights()
    [20.0, 60.0]
    """
    if op not in _OPS:
        raise ZorbelFault(f"unknown op {op!r}; choose one of + - * /")
    f = _OPS[op]
    pairs = [(s, f(h, right.at(s))) for s, h in left.knots() if right.holds(s)]
    return thread(pairs)


def splice(first: Reel, second: Reel) -> Reel:
    """Concatenate two reels; every stamp of `second` must come after the last of `first`
    (:class:`StampClash` otherwise).

    >>> splice(spool([1]), spool([2], origin=5)).stamps()
    (0, 5)
    """
    if len(first) and len(second) and second.stamps()[0] <= first.stamps()[-1]:
        raise StampClash("the second reel starts before the first one ends")
    return thread(list(first.knots()) + list(second.knots()))


def overlay(base: Reel, patch: Reel) -> Reel:
    """The union of both reels' stamps; where both have a knot, the `patch` height wins.

    >>> overlay(spool([1, 1, 1]), spool([9], origin=1)).heights()
    [1.0, 9.0, 1.0]
    """
    merged = dict(base.knots())
    merged.update(dict(patch.knots()))
    return thread(sorted(merged.items()))


def mesh(a: Reel, b: Reel) -> tuple[Reel, Reel]:
    """Both reels restricted to the stamps they have in common, as a tuple ``(a', b')``.

    >>> [r.stamps() for r in mesh(spool([1, 2, 3]), spool([5, 6], origin=1))]
    [(1, 2), (1, 2)]
    """
    common = set(a.stamps()) & set(b.stamps())
    return sieve(a, lambda s, h: s in common), sieve(b, lambda s, h: s in common)


# ---------------------------------------------------------------- gaps

def fissures(reel: Reel, stride: int = 1) -> list[tuple[int, int]]:
    """Runs of missing stamps for a reel expected every `stride`: a list of ``(first missing stamp,
    number of missing stamps)``.

    >>> fissures(thread([(0, 1.0), (1, 1.0), (4, 1.0), (6, 1.0)]))
    [(2, 2), (5, 1)]
    """
    if stride < 1:
        raise WidthFault(f"stride must be at least 1, got {stride}")
    out = []
    s = reel.stamps()
    for a, b in zip(s, s[1:]):
        missing = (b - a) // stride - 1
        if missing > 0:
            out.append((a + stride, missing))
    return out


def mend(reel: Reel, stride: int = 1, how: str = "carry") -> Reel:
    """Fill the stamps missing at `stride` spacing. `how` is ``"carry"`` (repeat the last height),
    ``"bridge"`` (linear interpolation between the neighbours) or ``"zero"``.

    >>> mend(thread([(0, 1.0), (3, 4.0)]), how="bridge").heights()
    [1.0, 2.0, 3.0, 4.0]
    """
    if how not in ("carry", "bridge", "zero"):
        raise ZorbelFault(f"unknown mend method {how!r}; choose carry, bridge or zero")
    knots = list(reel.knots())
    out: list[tuple[int, float]] = []
    for (s0, h0), (s1, h1) in zip(knots, knots[1:]):
        out.append((s0, h0))
        t = s0 + stride
        while t < s1:
            if how == "carry":
                out.append((t, h0))
            elif how == "zero":
                out.append((t, 0.0))
            else:
                out.append((t, h0 + (h1 - h0) * (t - s0) / (s1 - s0)))
            t += stride
    if knots:
        out.append(knots[-1])
    return thread(out)


# ---------------------------------------------------------------- statistics

def _need(reel: Reel, what: str) -> None:
    if not len(reel):
        raise HollowReel(f"{what}() of an empty reel")


def tally(reel: Reel) -> float:
    """Sum of the heights (0.0 for an empty reel).

    >>> tally(spool([1, 2, 3.5]))
    6.5
    """
    return float(sum(reel.heights()))


def midline(reel: Reel) -> float:
    """Mean height; :class:`HollowReel` on an empty reel.

    >>> midline(spool([1, 2, 6]))
    3.0
    """
    _need(reel, "midline")
    return tally(reel) / len(reel)


def spread(reel: Reel) -> float:
    """Highest minus lowest height.

    >>> spread(spool([4, 1, 7]))
    6.0
    """
    _need(reel, "spread")
    return max(reel.heights()) - min(reel.heights())


def crest(reel: Reel) -> tuple[int, float]:
    """The highest knot as ``(stamp, height)``; the earliest one on ties.

    >>> crest(spool([1, 8, 8]))
    (1, 8.0)
    """
    _need(reel, "crest")
    return max(reel.knots(), key=lambda k: (k[1], -k[0]))


def trough(reel: Reel) -> tuple[int, float]:
    """The lowest knot as ``(stamp, height)``; the earliest one on ties.

    >>> trough(spool([3, 1, 1]))
    (1, 1.0)
    """
    _need(reel, "trough")
    return min(reel.knots(), key=lambda k: (k[1], k[0]))


def rung(reel: Reel, percent: float) -> float:
    """Nearest-rank percentile: the smallest height with at least `percent`% of heights at or below it.
    `percent` is on a 0..100 scale (:class:`RungFault` otherwise); rung 0 is the minimum.

    >>> rung(spool([15, 20, 35, 40, 50]), 40)
    20.0
    """
    if not 0 <= percent <= 100:
        raise RungFault(f"percent must be within 0..100, got {percent}")
    _need(reel, "rung")
    ordered = sorted(reel.heights())
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def slope(reel: Reel) -> float:
    """Least-squares slope of height against stamp; :class:`HollowReel` with fewer than 2 knots.

    >>> slope(spool([1, 3, 5], stride=2))
    1.0
    """
    if len(reel) < 2:
        raise HollowReel("slope() needs at least 2 knots")
    xs, ys = reel.stamps(), reel.heights()
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def breaches(reel: Reel, level: float) -> list[int]:
    """Stamps where the reel crosses `level` going up: the height is above `level` and the previous one
    was at or below it.

    >>> breaches(spool([0, 2, 0, 3]), 1)
    [1, 3]
    """
    knots = list(reel.knots())
    return [s1 for (s0, h0), (s1, h1) in zip(knots, knots[1:]) if h0 <= level < h1]


# ---------------------------------------------------------------- segmentation

def chop(reel: Reel, size: int) -> list[Reel]:
    """Consecutive pieces of `size` knots (the last may be shorter).

    >>> [len(p) for p in chop(spool(range(5)), 2)]
    [2, 2, 1]
    """
    if size < 1:
        raise WidthFault(f"chop size must be at least 1, got {size}")
    knots = list(reel.knots())
    return [thread(knots[i:i + size]) for i in range(0, len(knots), size)]


def coarsen(reel: Reel, width: int, fold: str = "mean") -> Reel:
    """Group knots into buckets of `width` stamps (stamp floored to a multiple of `width`) and reduce
    each bucket with the named `fold`; the bucket's stamp is the floored one.

    >>> coarsen(spool([1, 3, 5, 7]), 2, "sum").heights(), coarsen(spool([1, 3, 5, 7]), 2).stamps()
    ([4.0, 12.0], (0, 2))
    """
    if width < 1:
        raise WidthFault(f"bucket width must be at least 1, got {width}")
    f = _fold(fold)
    buckets: dict[int, list[float]] = {}
    for s, h in reel.knots():
        buckets.setdefault(s - s % width, []).append(h)
    return thread([(b, f(hs)) for b, hs in sorted(buckets.items())])


def streaks(reel: Reel) -> list[tuple[int, int, str]]:
    """Maximal runs of consecutive moves in one direction, as ``(start stamp, end stamp, direction)``
    with direction ``"rise"``, ``"fall"`` or ``"level"``.

    >>> streaks(spool([1, 2, 3, 3, 1]))
    [(0, 2, 'rise'), (2, 3, 'level'), (3, 4, 'fall')]
    """
    knots = list(reel.knots())
    out: list[tuple[int, int, str]] = []
    for (s0, h0), (s1, h1) in zip(knots, knots[1:]):
        d = "rise" if h1 > h0 else "fall" if h1 < h0 else "level"
        if out and out[-1][2] == d and out[-1][1] == s0:
            out[-1] = (out[-1][0], s1, d)
        else:
            out.append((s0, s1, d))
    return out


# ---------------------------------------------------------------- text form

def inscribe(reel: Reel, sep: str = ";") -> str:
    """The reel as ledger text: one ``stamp<sep>height`` line per knot, heights with ``repr``.

    >>> inscribe(spool([1.5, 2.0]))
    '0;1.5\\n1;2.0'
    """
    return "\n".join(f"{s}{sep}{h!r}" for s, h in reel.knots())


def decipher(text: str, sep: str = ";") -> Reel:
    """Parse ledger text written by :func:`inscribe`; blank lines and ``#`` comments are skipped.
    A bad line raises :class:`LedgerFault` naming its 1-based line number.

    >>> decipher("# temps\\n3;1.0\\n5;2.5").at(5)
    2.5
    """
    pairs = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(sep)
        try:
            if len(parts) != 2:
                raise ValueError
            pairs.append((int(parts[0]), float(parts[1])))
        except ValueError:
            raise LedgerFault(f"line {n}: cannot read {line!r}") from None
    return thread(pairs)


def sigil(reel: Reel) -> str:
    """An 8-character hex fingerprint of the reel (SHA-1 of its ledger text).

    >>> len(sigil(spool([1])))
    8
    """
    return hashlib.sha1(inscribe(reel).encode()).hexdigest()[:8]


# ---------------------------------------------------------------- stateful helpers

class Gauge:
    """A running accumulator of heights.

    >>> g = Gauge().feed(3).feed(5)
    >>> g.reading()
    {'count': 2, 'mean': 4.0, 'low': 3.0, 'high': 5.0}
    """

    def __init__(self) -> None:
        self._n = 0
        self._sum = 0.0
        self._low = math.inf
        self._high = -math.inf

    def feed(self, height: float) -> Gauge:
        """Add one height; returns the gauge so calls chain."""
        h = float(height)
        self._n += 1
        self._sum += h
        self._low = min(self._low, h)
        self._high = max(self._high, h)
        return self

    def absorb(self, reel: Reel) -> Gauge:
        """Feed every height of a reel."""
        for h in reel.heights():
            self.feed(h)
        return self

    def reading(self) -> dict[str, float]:
        """``{"count", "mean", "low", "high"}``; :class:`HollowReel` if nothing was fed."""
        if not self._n:
            raise HollowReel("the gauge has not been fed")
        return {"count": self._n, "mean": self._sum / self._n, "low": self._low, "high": self._high}


class Alarm:
    """Watches reels for heights beyond a threshold.

    Args:
        threshold: the level to watch.
        rising: True (default) fires on heights strictly above the threshold, False on heights
            strictly below it.

    >>> Alarm(2).scan(spool([1, 3, 5]))
    [1, 2]
    """

    def __init__(self, threshold: float, *, rising: bool = True) -> None:
        self.threshold = float(threshold)
        self.rising = rising

    def scan(self, reel: Reel) -> list[int]:
        """Stamps of the knots that fire the alarm."""
        if self.rising:
            return [s for s, h in reel.knots() if h > self.threshold]
        return [s for s, h in reel.knots() if h < self.threshold]

    def first(self, reel: Reel) -> int | None:
        """The first stamp that fires, or None."""
        fired = self.scan(reel)
        return fired[0] if fired else None
