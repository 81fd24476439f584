"""Differential check: regorus (the engine) agrees with the real OPA
(opa-golib-python-bindings, installed by ``make build``) on every policy and
test case of the corpus. v0 modules are rewritten to v1 for OPA 1.x."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))

from policy_common import agree, opa_eval  # noqa: E402

from maestro_core import policy  # noqa: E402

from rego_corpus import CorpusPolicy, corpus  # noqa: E402


@pytest.mark.parametrize("cp", corpus(), ids=lambda c: c.name)
def test_regorus_agrees_with_opa(cp: CorpusPolicy) -> None:
    ps = policy.load(cp.paths, cp.data)
    ev = ps.evaluator()
    ours = [ev.eval(d.query, d.input) for d in cp.decisions]
    ours = [{"undefined": True} if v is None else v for v in ours]
    theirs, _ = opa_eval(cp)
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if not agree(a, b)]
    assert not bad, bad[:3]


def test_opa_sees_a_mutant_like_we_do() -> None:
    src = "package p\n\nallow if input.n >= 3\n"
    mutant = src.replace(">=", ">")
    from policy_common import opa_outcomes

    decs = [policy.Decision("data.p.allow", {"n": 3})]
    assert opa_outcomes([("p.rego", src)], {}, decs) == [True]
    assert opa_outcomes([("p.rego", mutant)], {}, decs) == [{"undefined": True}]
    assert policy.PolicySet.from_texts({"p.rego": mutant}).evaluator().eval("data.p.allow", {"n": 3}) is None
