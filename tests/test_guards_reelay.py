"""Guards expressible in past-time temporal logic agree with reelay.

One event per discrete time step (event i at time i), one key. Each family
pairs a guard with the past-time formula that holds exactly at the events
where the guard reports a violation (skip-till-next semantics, see
docs/guards.md). reelay builds a monitor in tens of ms, so monitors are
built once per example and the example counts are kept small.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_core import guards

reelay = pytest.importorskip("reelay")

NAMES = ["a", "b", "c", "e", "w", "z"]

FAMILIES = {
    # a then b with no c (and no earlier b) in between
    "neg": ("guard g { match a -> !c -> b }", "{b} and pre((not {c} and not {b}) since {a})"),
    # the first write of the key, with no z (authz) before it
    "anchored": ("guard g { match !z -> w }", "{w} and not (once {z}) and not (pre (once {w}))"),
    # a then the next b within 3 steps
    "within": ("guard g { within 3ns match a -> b }", "{b} and pre(not {b} since[0:2] {a})"),
    # two e within 3 steps
    "count": ("guard g { match count(e) >= 2 within 3ns }", "{e} and pre(once[0:2] {e})"),
}


def _rust(src: str, names: list[str]) -> list[int]:
    m = guards.Matcher(guards.compile(src))
    n = len(names)
    m.feed_arrays(np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                  np.array([NAMES.index(x) for x in names], dtype=np.int64), NAMES)
    m.finish()
    return sorted({int(v.seq) for v in m.violations() if v.seq is not None})


def _reelay(formula: str, names: list[str]) -> list[int]:
    mon = reelay.discrete_timed_monitor(pattern=formula, condense=False)
    out = []
    for i, x in enumerate(names):
        if mon.update({"time": i, **{k: k == x for k in NAMES}})["value"]:
            out.append(i)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
@settings(max_examples=40)
@given(names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=40))
def test_agrees_with_reelay(family: str, names: list[str]) -> None:
    src, formula = FAMILIES[family]
    assert _rust(src, names) == _reelay(formula, names)


def test_families_fire() -> None:
    names = ["a", "e", "b", "e", "w", "z", "w", "a", "c", "b"]
    assert _rust(FAMILIES["neg"][0], names) == _reelay(FAMILIES["neg"][1], names) == [2]
    assert _rust(FAMILIES["count"][0], names) == [3]
    assert _rust(FAMILIES["anchored"][0], names) == [4]
