"""zorbel's own test suite (the Unseen-API benchmark's library): doctests plus behaviour and errors."""

from __future__ import annotations

import doctest
import math

import pytest

from dorag.evaluation.unseen_api import load_library

z = load_library()


def test_every_docstring_example_holds(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "zorbel", z)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(z, "zorbel", globs={"zorbel": z, **vars(z)}) if t.examples]
    for t in tests:
        runner.run(t)
    assert runner.failures == 0
    assert sum(len(t.examples) for t in tests) >= 50


def test_reels_are_immutable_values_with_strict_stamps():
    r = z.spool([1, 2, 3], origin=10, stride=5)
    assert r.stamps() == (10, 15, 20) and r.heights() == [1.0, 2.0, 3.0]
    r.heights().append(9)
    assert len(r) == 3  # heights() returns a copy
    assert r == z.thread([(10, 1.0), (15, 2.0), (20, 3.0)]) and hash(r) == hash(z.thread(r.knots()))
    with pytest.raises(z.StampClash):
        z.thread([(1, 1.0), (1, 2.0)])
    with pytest.raises(z.WidthFault):
        z.spool([1], stride=0)
    assert "Reel<10:1" in repr(r)


def test_errors_are_zorbel_faults_not_builtin_lookups():
    r = z.spool([1.0])
    for exc, call in [(z.StampAbsent, lambda: r.at(5)), (z.HollowReel, lambda: z.midline(z.spool([]))),
                      (z.WidthFault, lambda: z.smooth(r, 2)), (z.FlatReel, lambda: z.temper(z.spool([2, 2]))),
                      (z.RungFault, lambda: z.rung(r, 101)), (z.LedgerFault, lambda: z.decipher("1;x")),
                      (z.StampClash, lambda: z.splice(r, r)), (z.WidthFault, lambda: z.pinch(r, 0, 1))]:
        with pytest.raises(exc) as info:
            call()
        assert isinstance(info.value, z.ZorbelFault) and not isinstance(info.value, (KeyError, ValueError, IndexError))


def test_windows_folds_and_lags():
    r = z.spool([1, 2, 3, 4])
    assert z.drift(r, 3, "spread").heights() == [2.0, 2.0]
    assert z.drift(r, 4, "sum").stamps() == (3,)
    with pytest.raises(z.ZorbelFault, match="unknown fold"):
        z.drift(r, 2, "median")
    assert z.echo(r, 0) == r
    assert z.braid(r, z.echo(r, 1), "-").heights() == [1.0, 1.0, 1.0]
    assert math.isnan(z.braid(r, z.spool([0.0]), "/").heights()[0])


def test_gaps_mend_and_segmentation():
    r = z.thread([(0, 0.0), (4, 4.0), (10, 10.0)])
    assert z.fissures(r, stride=2) == [(2, 1), (6, 2)]
    assert z.mend(r, 2, "bridge").stamps() == (0, 2, 4, 6, 8, 10)
    assert z.mend(r, 2, "bridge").heights() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert z.mend(r, 4, "zero").heights() == [0.0, 4.0, 0.0, 10.0]
    assert [p.stamps() for p in z.chop(r, 2)] == [(0, 4), (10,)]
    assert z.coarsen(r, 5, "max").stamps() == (0, 10)
    assert z.streaks(z.spool([1])) == []


def test_statistics():
    r = z.spool([15, 20, 35, 40, 50])
    assert [z.rung(r, p) for p in (0, 30, 40, 50, 100)] == [15.0, 20.0, 20.0, 35.0, 50.0]
    assert z.slope(z.spool([0, 2, 4])) == 2.0
    assert z.podium(r, 10) == sorted(r.knots(), key=lambda k: -k[1])
    g = z.Gauge().absorb(r)
    assert g.reading()["count"] == 5 and g.reading()["mean"] == 32.0
    with pytest.raises(z.HollowReel):
        z.Gauge().reading()
    assert z.Alarm(30, rising=False).scan(r) == [0, 1] and z.Alarm(99).first(r) is None


def test_ledger_roundtrip_and_sigil():
    r = z.spool([0.1, -2.5, 1e-9], origin=-3)
    assert z.decipher(z.inscribe(r, "|"), "|") == r
    assert z.sigil(r) == z.sigil(z.decipher(z.inscribe(r)))
    with pytest.raises(z.LedgerFault, match="line 2"):
        z.decipher("1;1\n2;2;2")
