"""Rego mutation testing: the likely-equivalent flag needs reach.

A survivor is flagged likely equivalent only when some random input makes the
original policy evaluate the mutated line and none tells the mutant apart.
The random inputs add the input paths the policy reads, so a rule over a
field that no test input has (``ephemeralContainers`` below) is reached, its
mutants stay survivors, and each comes with a test that kills it.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_core import policy

# Gatekeeper's shape (v0, as most of its library is): a helper set rule over
# three container lists, and a violation over the helper.
REPOS = """package k8sallowedrepos

violation[{"msg": msg}] {
  container := input_containers[_]
  not strings.any_prefix_match(container.image, input.parameters.repos)
  msg := sprintf("container <%v> has an invalid image repo <%v>", [container.name, container.image])
}

input_containers[c] {
  c := input.review.object.spec.containers[_]
}

input_containers[c] {
  c := input.review.object.spec.ephemeralContainers[_]
}
"""

# Every test input has `containers`; none has `ephemeralContainers`.
REPOS_TEST = """package k8sallowedrepos

test_allowed {
  results := violation with input as {"parameters": {"repos": ["ok/"]}, "review": {"object": {"spec": {"containers": [{"name": "a", "image": "ok/app"}]}}}}
  count(results) == 0
}

test_denied {
  results := violation with input as {"parameters": {"repos": ["ok/"]}, "review": {"object": {"spec": {"containers": [{"name": "a", "image": "evil/app"}]}}}}
  count(results) == 1
}
"""

EPHEMERAL_LINE = 14  # `c := input.review.object.spec.ephemeralContainers[_]`


def _run(tests: str, samples: int = 64) -> policy.MutationReport:
    ps = policy.PolicySet.from_texts({"src.rego": REPOS, "src_test.rego": tests})
    return policy.mutate(ps, record_card=False, incremental=False, equivalence_samples=samples)


def test_unreached_field_gives_survivors_with_killing_tests() -> None:
    rep = _run(REPOS_TEST)
    # The rule over ephemeralContainers (lines 13-15): deleting it changes
    # nothing the tests see. Before inputs grew the policy's paths, no random
    # input had ephemeralContainers either, and it was flagged equivalent.
    ephemeral = [m for m in rep.mutants if 13 <= m.line <= 15 and m.status != "stillborn"]
    assert ephemeral, [m.diff for m in rep.mutants]
    assert all(m.status == "survived" for m in ephemeral), [(m.diff, m.status, m.detail) for m in ephemeral]
    for m in ephemeral:
        assert m.reached and m.reached > 0
        assert m.suggested_test is not None and "ephemeralContainers" in m.suggested_test, m.suggested_test
        # The decision rule, not the helper, is what the test checks.
        assert "data.k8sallowedrepos.violation" in m.suggested_test, m.suggested_test
        assert m.suggested_test.splitlines()[0] in rep.summary()
    # Every suggested test, added to the test file, kills its mutant.
    suggested = [m for m in rep.survivors if m.suggested_test]
    assert suggested
    stronger = REPOS_TEST + "\n" + "\n\n".join(m.suggested_test or "" for m in suggested) + "\n"
    rep2 = _run(stronger)
    after = {m.id: m for m in rep2.mutants}
    for m in suggested:
        assert after[m.id].status == "killed", (m.diff, after[m.id].status, after[m.id].detail)
    assert (rep2.score or 0.0) > (rep.score or 0.0)


def test_equivalent_is_flagged_only_when_reached() -> None:
    for m in _run(REPOS_TEST).mutants:
        if m.status == "equivalent":
            assert m.reached and m.reached > 0, (m.diff, m.detail)
        if m.status == "survived" and not m.reached:
            assert m.detail.startswith("not reached"), m.detail


def test_reached_equivalent_mutant_stays_equivalent() -> None:
    # `input.n >= 1` after `input.n > 5`: `>= 1` → `> 1` changes nothing for
    # any value (Rego orders values of all types), and the line is reached.
    ps = policy.PolicySet.from_texts({
        "p.rego": "package p\n\nallow if {\n    input.n > 5\n    input.n >= 1\n}\n",
        "p_test.rego": "package p\n\ntest_big if { allow with input as {\"n\": 10} }\n"
                       "test_small if { not allow with input as {\"n\": 3} }\n",
    })
    rep = policy.mutate(ps, record_card=False, incremental=False)
    m = next(m for m in rep.mutants if m.original == ">=" and m.replacement == ">")
    assert m.status == "equivalent", m.detail
    assert m.reached and m.reached > 0
    assert m.suggested_test is None
    # Excluded from the denominator, as the score formula says.
    c = rep.counts
    assert rep.score == (c["killed"] + c["timeout"] + c["error"]) / (c["generated"] - c["stillborn"] - c["equivalent"])


def test_unreached_line_is_a_survivor_not_equivalent() -> None:
    # `data.config.on` is never set, so no input reaches line 7.
    ps = policy.PolicySet.from_texts({
        "p.rego": "package p\n\nallow if input.n > 5\n\nextra if {\n    data.config.on\n    input.n > 100\n}\n",
        "p_test.rego": "package p\n\ntest_big if { allow with input as {\"n\": 10} }\n"
                       "test_small if { not allow with input as {\"n\": 3} }\n",
    })
    rep = policy.mutate(ps, record_card=False, incremental=False)
    line7 = [m for m in rep.mutants if m.line == 7 and m.status != "stillborn"]
    assert line7
    for m in line7:
        assert m.status == "survived", (m.diff, m.status)
        assert m.reached == 0 and m.detail.startswith("not reached"), m.detail
    # Reported as survivors, with the reason, in the summary and in SARIF.
    assert "not reached" in rep.summary()
    results = policy.sarif(rep)["runs"][0]["results"]
    unreached = [r for r in results if r["properties"]["reached"] == 0]
    assert len(unreached) == len(line7)
    assert all("No random input reaches it" in r["message"]["text"] for r in unreached)


_KEYWORDS = {"if", "in", "not", "some", "every", "contains", "else", "default", "import", "package", "with", "as",
             "true", "false", "null", "set"}


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.from_regex(r"[a-z][a-zA-Z]{2,9}", fullmatch=True).filter(lambda f: f not in _KEYWORDS),
       threshold=st.integers(min_value=1, max_value=5000))
def test_untested_rule_survivors_are_killed_by_their_tests(field: str, threshold: int) -> None:
    # A rule reading `input.spec.<field>[_].n`, which no test input has.
    pol = (f"package h\n\ndeny contains \"tested\" if input.tested > {threshold}\n\n"
           f"deny contains \"untested\" if input.spec.{field}[_].n > {threshold}\n")
    tests = (f"package h\n\ntest_t if {{ deny == {{\"tested\"}} with input as {{\"tested\": {threshold + 1}}} }}\n\n"
             f"test_f if {{ count(deny) == 0 with input as {{\"tested\": {threshold}}} }}\n")
    ps = policy.PolicySet.from_texts({"h.rego": pol, "h_test.rego": tests})
    rep = policy.mutate(ps, record_card=False, incremental=False, equivalence_samples=64)
    # The tests kill what makes the rule fire without the field (its
    # condition deleted); the rest survive them.
    untested = [m for m in rep.mutants if m.line == 5 and m.status not in ("stillborn", "killed")]
    assert untested
    for m in untested:
        if m.status == "equivalent":
            assert m.reached
    # At least the rule's deletion and its `> threshold` → `false` show up
    # with a killing test; each such test kills its mutant once added.
    with_test = [m for m in untested if m.suggested_test]
    assert len(with_test) >= 2, [(m.diff, m.status, m.detail) for m in untested]
    for m in with_test:
        assert re.search(rf"\b{field}\b", m.suggested_test or ""), m.suggested_test
    stronger = tests + "\n" + "\n\n".join(m.suggested_test or "" for m in with_test) + "\n"
    rep2 = policy.mutate(policy.PolicySet.from_texts({"h.rego": pol, "h_test.rego": stronger}),
                         record_card=False, incremental=False, equivalence_samples=64)
    after = {m.id: m.status for m in rep2.mutants}
    assert all(after[m.id] == "killed" for m in with_test), [(m.diff, after[m.id]) for m in with_test]
