"""The Rego corpus (real policies shipped in the regorus crate): load, the
shipped expected decisions, mutation scores, and agreement with real OPA."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro_core import policy

from rego_corpus import corpus

SMALL = [c for c in corpus() if not c.name.startswith("kata/")]
KATA = [c for c in corpus() if c.name.startswith("kata/")]


def test_corpus_is_real_and_licensed() -> None:
    cs = corpus()
    assert len(cs) >= 20
    assert len(KATA) == 12
    for c in cs:
        assert c.licence is not None and c.licence.is_file()
        assert "Permission is hereby granted" in c.licence.read_text()  # MIT
        assert c.decisions, c.name
        assert all(Path(p).is_file() for p in c.paths)


@pytest.mark.parametrize("cp", KATA, ids=lambda c: c.name)
def test_kata_expected_decisions_hold(cp: object) -> None:
    from rego_corpus import CorpusPolicy

    assert isinstance(cp, CorpusPolicy)
    ps = policy.load(cp.paths, cp.data)
    assert ps.rego_v0
    ev = ps.evaluator()
    got = [ev.eval(d.query, d.input) for d in cp.decisions]
    assert got == [d.expected for d in cp.decisions]


@pytest.mark.parametrize("cp", SMALL, ids=lambda c: c.name)
def test_small_policies_mutation(cp: object, tmp_path: Path) -> None:
    from rego_corpus import CorpusPolicy

    assert isinstance(cp, CorpusPolicy)
    ps = policy.load(cp.paths, cp.data)
    r = policy.mutate(ps, cp.decisions, home=tmp_path, record_card=False, equivalence_samples=32)
    assert r.counts["generated"] > 5
    assert r.score is not None
    # A survivor comes with an input that kills it, unless no random input
    # reaches its line; only a reached one may be flagged likely-equivalent.
    for m in r.survivors:
        if m.reached == 0:
            assert m.detail.startswith("not reached") and m.suggested_test is None, m.detail
        else:
            assert m.killing_input is not None and m.suggested_test and m.suggested_test.startswith("test_kills_")
    for m in r.by_status("equivalent"):
        assert m.reached, m.detail
    if r.score < 0.85:
        assert r.survivors, "a weak score must show the survivors and the tests that kill them"


def test_kata_sampled_mutation(tmp_path: Path) -> None:
    cp = KATA[0]
    ps = policy.load(cp.paths, cp.data)
    r = policy.mutate(ps, cp.decisions, home=tmp_path, record_card=False, max_mutants=24,
                      equivalence_samples=8, timeout_ms=5000)
    assert r.counts["generated"] == 24
    assert r.decisions == len(cp.decisions)
    assert not r.label_mismatches


_QUIET = """
import sys
sys.path.insert(0, {tests!r})
from rego_corpus import by_name
from maestro_core import policy
for name in ("bench/time_based_policy", "examples/server"):
    cp = by_name(name)
    r = policy.mutate(policy.load(cp.paths, cp.data), cp.decisions, threads=1,
                      equivalence_samples=0, incremental=False, record_card=False)
    print(sum(1 for m in r.mutants if m.status == "stillborn" and "OPA's compiler" in m.detail))
"""


def test_unsafe_mutants_are_stillborn_without_engine_noise() -> None:
    # mutants with a variable nothing binds are rejected by OPA's compiler; ours
    # classifies them before regorus's scheduler, which would print a warning
    # to stderr for each one and evaluate on
    import subprocess
    import sys

    code = _QUIET.format(tests=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == ""
    assert all(int(n) > 0 for n in out.stdout.split()), out.stdout
