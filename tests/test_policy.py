"""Rego mutation testing: operators, scores, reports, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_core import cards, policy
from maestro_core.cli import main
from maestro_core.errors import (
    DecisionLogError,
    FileError,
    InputError,
    PolicyError,
    PolicySyntaxError,
)

POLICY = """package authz

default allow := false

allow if {
    input.age >= 18
    input.country == "FR"
    not input.banned
}
"""

WEAK_TEST = """package authz

test_adult if {
    allow with input as {"age": 30, "country": "FR"}
}
"""

STRONG_TEST = WEAK_TEST + """
test_edge if { allow with input as {"age": 18, "country": "FR"} }
test_minor if { not allow with input as {"age": 17, "country": "FR"} }
test_de if { not allow with input as {"age": 30, "country": "DE"} }
test_gb if { not allow with input as {"age": 30, "country": "GB"} }
test_banned if { not allow with input as {"age": 30, "country": "FR", "banned": true} }
"""


def write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp


def test_load_like_opa(tmp_path: Path) -> None:
    root = write(tmp_path, {"authz/policy.rego": POLICY, "authz/policy_test.rego": WEAK_TEST,
                            "authz/data.json": '{"limit": 3}', "roles/data.yaml": "admins:\n  - alice\n",
                            ".hidden/x.rego": "package broken {{{", "notes.txt": "ignored"})
    ps = policy.load(root)
    assert [Path(m.path).name for m in ps.modules] == ["policy.rego", "policy_test.rego"]
    assert [m.is_test for m in ps.modules] == [False, True]
    assert ps.data == {"authz": {"limit": 3}, "roles": {"admins": ["alice"]}}
    assert not ps.rego_v0
    assert ps.evaluator().eval("data.authz.allow", {"age": 20, "country": "FR"}) is True


def test_weak_tests_score_below_strong(tmp_path: Path) -> None:
    weak = policy.PolicySet.from_texts({"p.rego": POLICY, "p_test.rego": WEAK_TEST})
    strong = policy.PolicySet.from_texts({"p.rego": POLICY, "p_test.rego": STRONG_TEST})
    a = policy.mutate(weak, home=tmp_path, incremental=False)
    b = policy.mutate(strong, home=tmp_path, incremental=False)
    assert a.score is not None and b.score is not None
    assert a.score < 0.85 <= b.score
    assert b.counts["survived"] == 0, [m.diff for m in b.survivors]
    ops = {m.operator for m in a.mutants}
    assert {"relational_op", "negation_remove", "statement_delete", "constant_boundary", "default_flip",
            "rule_delete"} <= ops
    # Every survivor of the weak suite comes with a test that kills it: adding
    # those tests kills them all.
    extra = "\n".join(m.suggested_test for m in a.survivors if m.suggested_test)
    assert extra
    fixed = policy.PolicySet.from_texts({"p.rego": POLICY, "p_test.rego": WEAK_TEST + "\n" + extra})
    c = policy.mutate(fixed, home=tmp_path, incremental=False)
    assert all(t[1] == "pass" for t in c.tests)
    killed_now = {m.id for m in c.mutants if m.status == "killed"}
    assert {m.id for m in a.survivors if m.suggested_test} <= killed_now


def test_score_formula_and_card(tmp_path: Path) -> None:
    ps = policy.PolicySet.from_texts({"p.rego": POLICY, "p_test.rego": WEAK_TEST})
    r = policy.mutate(ps, home=tmp_path)
    c = r.counts
    detected = c["killed"] + c["timeout"] + c["error"]
    assert r.score == pytest.approx(detected / (c["generated"] - c["stillborn"] - c["equivalent"]))
    assert sum(c[k] for k in ("killed", "survived", "stillborn", "equivalent", "timeout", "error")) == c["generated"]
    card = cards.get(r.card or "", home=tmp_path)
    assert card.kind == "policy.mutate" and card.metrics["generated"] == c["generated"]


def test_incremental_skips_unchanged(tmp_path: Path) -> None:
    ps = policy.PolicySet.from_texts({"p.rego": POLICY, "p_test.rego": WEAK_TEST})
    a = policy.mutate(ps, home=tmp_path, record_card=False)
    b = policy.mutate(ps, home=tmp_path, record_card=False)
    assert a.counts["cached"] == 0
    assert b.counts["cached"] == b.counts["generated"]
    assert [m.status for m in a.mutants] == [m.status for m in b.mutants]
    edited = POLICY + "\nother if input.x == 2\n"
    c = policy.mutate(policy.PolicySet.from_texts({"p.rego": edited, "p_test.rego": WEAK_TEST}), home=tmp_path,
                      record_card=False)
    assert 0 < c.counts["cached"] < c.counts["generated"]
    assert all(not m.cached for m in c.mutants if m.rule == "other")


def test_sarif_has_each_survivor_at_its_span(tmp_path: Path) -> None:
    ps = policy.PolicySet.from_texts({"p.rego": POLICY, "p_test.rego": WEAK_TEST})
    r = policy.mutate(ps, home=tmp_path, record_card=False)
    doc = policy.sarif(r)
    assert doc["version"] == "2.1.0"
    res = doc["runs"][0]["results"]
    assert len(res) == len(r.survivors) > 0
    for x, m in zip(res, r.survivors):
        region = x["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (m.line, m.col)
        assert m.diff in x["message"]["text"]
        assert POLICY.splitlines()[m.line - 1][m.col - 1:].startswith(m.original.split("\n")[0])


def test_decisions_kill_and_labels(tmp_path: Path) -> None:
    ps = policy.PolicySet.from_texts({"p.rego": POLICY})
    lines = "\n".join(json.dumps(x) for x in [
        {"input": {"age": 18, "country": "FR"}, "expected": True},
        {"input": {"age": 17, "country": "FR"}, "expected": False},
        {"input": {"age": 40, "country": "FR", "banned": True}, "expected": True},  # mislabelled
        "not an object",
    ]) + "\n{broken\n"
    decs, skipped = policy.load_decisions(lines, "data.authz.allow", text=True)
    assert len(decs) == 3 and [s.what for s in skipped] == ["decisions line 4", "decisions line 5"]
    r = policy.mutate(ps, decs, home=tmp_path, record_card=False)
    assert r.decisions == 3
    assert [m[0] for m in r.label_mismatches] == [3]
    assert any(m.status == "killed" and m.detail.startswith("decision") for m in r.mutants)


def test_syntax_error_names_file_line_col(tmp_path: Path) -> None:
    write(tmp_path, {"bad.rego": "package p\n\nallow if {\n    input.x >\n}\n"})
    with pytest.raises(PolicySyntaxError) as e:
        policy.load(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'bad.rego'}:") and (":5:" in msg or ":4:" in msg), msg
    assert isinstance(e.value, InputError) and isinstance(e.value, ValueError)


def test_missing_import_and_undefined_function_are_typed(tmp_path: Path) -> None:
    bad = policy.PolicySet.from_texts({"p.rego": "package p\nallow if nosuch.fn(input.x)\n"})
    with pytest.raises(PolicyError):
        policy.mutate(bad, home=tmp_path, record_card=False)
    with pytest.raises(FileError):
        policy.load(tmp_path / "missing")


def test_slow_mutants_time_out_and_are_listed(tmp_path: Path) -> None:
    src = """package slow

n := 25

big if {
    count([x | some x in numbers.range(1, n); some y in numbers.range(1, n)]) > n
}
"""
    test = "package slow\n\ntest_big if { big }\n"
    ps = policy.PolicySet.from_texts({"s.rego": src, "s_test.rego": test})
    # A ×2 threshold step of n makes nothing slow; a hand edit does: n := 40000.
    slow = ps.with_module(0, src.replace("n := 25", "n := 40000"))
    r = policy.mutate(slow, home=tmp_path, timeout_ms=200, equivalence_samples=2, record_card=False)
    assert any(s.what == "data.slow.test_big" for s in r.skipped)
    timed = r.by_status("timeout")
    assert timed, r.counts
    assert all(any(m.id in s.what for s in r.skipped) for m in timed)
    assert r.counts["generated"] == len(r.mutants)


def test_stillborn_classified_by_compile(tmp_path: Path) -> None:
    src = "package p\n\nallow if {\n    x := input.a\n    x > 1\n}\n"
    ps = policy.PolicySet.from_texts({"p.rego": src, "p_test.rego": "package p\ntest_a if allow with input as {\"a\": 2}\n"})
    r = policy.mutate(ps, home=tmp_path, record_card=False)
    sb = r.by_status("stillborn")
    assert any(m.operator == "statement_delete" and ":=" in m.original for m in sb)
    assert all(m.detail for m in sb)


def test_malformed_decision_log_is_typed(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    p.write_text("{oops\n[1,2]\n")
    with pytest.raises(DecisionLogError):
        policy.load_decision_log(p)
    with pytest.raises(DecisionLogError):
        policy.load_decisions(p)
    p.write_text('{"path": "p/allow", "input": {}, "outcome": "override"}\n{"path": 3}\n{"input": {}}\n'
                 '{"path": "p/allow", "input": {}, "outcome": "weird"}\n')
    ev, sk = policy.load_decision_log(p)
    assert len(ev) == 1 and ev[0].query == "data.p.allow" and len(sk) == 3


def test_unknown_operator_rejected() -> None:
    ps = policy.PolicySet.from_texts({"p.rego": POLICY})
    with pytest.raises(InputError):
        policy.mutate(ps, operators=["nope"], record_card=False, incremental=False)


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet="package pallowif{}()[]=<>!:;\"\n 0123456789.input", max_size=80))
def test_fuzzed_modules_never_crash(text: str) -> None:
    try:
        ps = policy.PolicySet.from_texts({"f.rego": text})
    except InputError:
        return
    try:
        policy.mutate(ps, record_card=False, incremental=False, equivalence_samples=2, timeout_ms=200)
    except InputError:
        pass


def test_v0_policy_and_v1_rewrite() -> None:
    v0 = "package k\n\ndefault allow = false\n\nallow { input.a == 1 }\n\ndeny[msg] { input.b; msg := \"b\" }\n"
    ps = policy.PolicySet.from_texts({"k.rego": v0})
    assert ps.rego_v0
    v1 = ps.to_v1()
    assert not v1.rego_v0 and "deny contains msg if" in v1.modules[0].text
    for inp in ({"a": 1}, {"a": 2, "b": True}):
        assert ps.evaluator().eval("data.k.allow", inp) == v1.evaluator().eval("data.k.allow", inp)
        assert ps.evaluator().eval("data.k.deny", inp) == v1.evaluator().eval("data.k.deny", inp)


def test_cli_mutate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "pol", {"p.rego": POLICY, "p_test.rego": WEAK_TEST})
    out = tmp_path / "out.sarif"
    home = tmp_path / "home"
    rc = main(["policy", "mutate", str(root), "--sarif", str(out), "--json", "--home", str(home)])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["generated"] > 0 and data["card"].startswith("dc-")
    assert json.loads(out.read_text())["runs"][0]["results"]
    rc = main(["policy", "mutate", str(root), "--min-score", "0.99", "--home", str(home)])
    assert rc == 1
    assert "mutation score" in capsys.readouterr().out
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "b.rego").write_text("package b\nallow if {\n")
    rc = main(["policy", "mutate", str(tmp_path / "bad"), "--home", str(home)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "b.rego:" in err
