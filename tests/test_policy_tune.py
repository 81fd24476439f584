"""Noisy-deny tuning on a replayed, labelled decision log.

The log is built with a seeded generator (policy.synth_nsg_log) for the
corpus policy azure_nsg_policy.rego from the regorus crate: dangerous ports
from internal networks need priority >= 1000; the hidden ground truth allows
them from 990, so denies in [990, 1000) are overridden by humans (noisy) and
requests below 990 are unsafe (half of them labelled so).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maestro_core import cards, policy
from maestro_core.cli import main

from rego_corpus import by_name

DANGEROUS = {22, 3389, 1433, 3306, 5432, 6379, 27017}


def nsg() -> policy.PolicySet:
    return policy.load(by_name("bench/azure_nsg_policy").paths)


def events(n: int, seed: int) -> list[policy.LogEvent]:
    text = "\n".join(json.dumps(e) for e in policy.synth_nsg_log(n, seed))
    ev, skipped = policy.load_decision_log(text, text=True)
    assert not skipped
    return ev


def truly_unsafe(e: policy.LogEvent) -> bool:
    r = e.input["rule"]
    return r["destinationPortRange"] in DANGEROUS and r["priority"] < 990


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tuning_quiets_noise_without_false_allows(tmp_path: Path, seed: int) -> None:
    log = events(1200, seed)
    hist, live = log[:800], log[800:]
    t = policy.Tuner(nsg(), home=tmp_path, seed=seed)
    res = t.replay(hist, live)
    assert res.admitted is not None, res.eliminated
    assert res.noisy_rate_before > 0.15
    assert res.noisy_rate_after < 0.03, res.to_dict()
    assert res.false_allows == 0
    assert not res.rolled_back
    # Not only labelled ones: no truly unsafe request is allowed either.
    active = policy.Evaluator(nsg().with_module(0, _apply(nsg(), res.active)))
    assert not any(truly_unsafe(e) and active.eval(e.query, e.input) is True for e in live)
    card = cards.get(res.cards[0], home=tmp_path)
    assert card.kind == "policy.tune.admit" and card.subject == res.admitted.diff


def _apply(ps: policy.PolicySet, v: policy.Variant | None) -> str:
    assert v is not None
    text = ps.modules[v.module].text
    return text[: v.start] + v.replacement + text[v.end:]


def test_injected_unsafe_request_rolls_back_at_once(tmp_path: Path) -> None:
    log = events(1000, 11)
    t = policy.Tuner(nsg(), home=tmp_path, seed=11)
    admitted = t.fit(log)
    assert admitted is not None
    # An unsafe request the admitted variant allows (priority just above its
    # new threshold, below the old one), labelled as an incident.
    ev = policy.Evaluator(nsg().with_module(admitted.module, _apply(nsg(), admitted)))
    probe = None
    for prio in range(999, 900, -1):
        inp = {"operation": "Microsoft.Network/networkSecurityGroups/securityRules/write",
               "rule": {"direction": "Inbound", "access": "Allow", "destinationPortRange": 22,
                        "sourceAddressPrefix": "10.9.9.9", "priority": prio}}
        if ev.eval("data.bench.allow", inp) is True and nsg().evaluator().eval("data.bench.allow", inp) is not True:
            probe = inp
            break
    assert probe is not None
    bad = policy.LogEvent("injected", "data.bench.allow", probe, True, "incident")
    assert t.observe(bad) is True  # the false allow happened...
    assert t.active is None or t.active.variant != admitted  # ...and was rolled back at once
    assert t.rolled_back == [admitted]
    kinds = [cards.get(c, home=tmp_path).kind for c in t.cards]
    assert kinds[:2] == ["policy.tune.admit", "policy.tune.rollback"]
    # The same request is denied right after.
    assert t.observe(bad) is False


def test_unsafe_labels_block_admission(tmp_path: Path) -> None:
    # Every request below the policy's threshold is labelled unsafe: nothing to relax.
    log = [e for e in events(600, 5)]
    relabelled = [policy.LogEvent(e.decision_id, e.query, e.input, e.result,
                                  "unsafe" if e.label == "override" else e.label) for e in log]
    t = policy.Tuner(nsg(), home=tmp_path, seed=5)
    assert t.fit(relabelled) is None
    assert t.cards == []


def test_cli_tune(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logf = tmp_path / "log.jsonl"
    logf.write_text("\n".join(json.dumps(e) for e in policy.synth_nsg_log(900, 4)) + "\n{bad line\n")
    rc = main(["policy", "tune", *map(str, by_name("bench/azure_nsg_policy").paths), "--log", str(logf),
               "--json", "--home", str(tmp_path / "h")])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["admitted"] and d["false_allows"] == 0 and d["noisy_rate_after"] < 0.03
    assert d["skipped"][0]["what"] == "decision log line 901"
