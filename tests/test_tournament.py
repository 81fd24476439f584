"""Tournaments: judges, votes, crash consistency, promotion, the demo and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from maestro_core import cards
from maestro_core.cli import main
from maestro_core.duel import CallableJudge, CommandJudge, StopRule, Tournament, Verdict
from maestro_core.errors import (ConflictError, DuelError, InputError, JudgeError, JudgeTimeoutError, MaestroError,
                                 StorageError)
from maestro_core.prompts import Genome, Registry
from maestro_core.store import open_store


def arms(reg: Registry, n: int = 4) -> list[str]:
    return [reg.add(Genome(f"Variant {i}{'!' * i}: {{q}}", {"q": None})).id for i in range(n)]


def by_length(a, b):  # type: ignore[no-untyped-def]
    """A deterministic judge: the shorter template wins."""
    return "A" if len(a.genome.template) < len(b.genome.template) else "B"


def test_callable_judge_finds_the_winner(home) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(home)
    ids = arms(reg, 5)
    t = Tournament.create(reg, ids[::-1], "dts", seed=1, incumbent=ids[4])
    res = t.run(CallableJudge(by_length), StopRule(delta=0.05, max_duels=500))
    assert res.best == ids[0] and res.stopped == "confident" and res.confidence >= 0.95
    t.verify()
    again = Tournament.open(reg, t.id)
    assert again.steps == t.steps and again.judged == t.judged and again.best() == ids[0]
    card = t.promote(min_confidence=0.95)
    assert card.decision == "promote" and card.kind == "prompts.promote"
    m = card.metrics
    assert m["winner"] == ids[0] and m["incumbent"] == ids[4] and m["duels"] == t.judged
    assert m["cost_delta"] == reg.get(ids[0]).cost_tokens - reg.get(ids[4]).cost_tokens
    assert "lineage" in m and cards.get(card.id, store=reg.store).id == card.id
    assert open_store(home).tournament(t.id)["status"] == "promoted"


def test_judge_verdict_forms(home) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(home)
    ids = arms(reg, 2)
    a, b = reg.get(ids[0]), reg.get(ids[1])
    assert CallableJudge(lambda x, y: 1)(a, b).winner == 1
    assert CallableJudge(lambda x, y: y.id[:10])(a, b).winner == 1
    assert CallableJudge(lambda x, y: Verdict(0, {"why": "test"}))(a, b).detail == {"why": "test"}
    for bad in (None, 7, "C", True, 1.5, Verdict(3)):
        with pytest.raises(JudgeError):
            CallableJudge(lambda x, y, v=bad: v)(a, b)


def script(tmp_path: Path, body: str) -> list[str]:
    p = tmp_path / "judge.py"
    p.write_text(textwrap.dedent(body))
    return [sys.executable, str(p)]


def test_command_judge(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(home)
    ids = arms(reg, 2)
    a, b = reg.get(ids[0]), reg.get(ids[1])
    ok = script(tmp_path, """
        import json, os, sys
        d = json.load(sys.stdin)
        assert d["a"]["id"] == os.environ["MAESTRO_DUEL_A"]
        print("thinking...")
        print(d["b"]["id"] if len(d["b"]["template"]) < len(d["a"]["template"]) else "A")
    """)
    assert CommandJudge(ok)(a, b).winner == 0
    assert CommandJudge(ok)(b, a).winner == 1
    with pytest.raises(JudgeError, match="exited with status 3: boom"):
        CommandJudge(script(tmp_path, "import sys; print('boom', file=sys.stderr); sys.exit(3)"))(a, b)
    with pytest.raises(JudgeTimeoutError, match="no answer within 0.5 s"):
        CommandJudge(script(tmp_path, "import time; time.sleep(10)"), timeout=0.5)(a, b)
    with pytest.raises(JudgeError, match="cannot read a winner from 'maybe the first one"):
        CommandJudge(script(tmp_path, "print('maybe the first one?')"))(a, b)
    with pytest.raises(JudgeError, match="printed nothing"):
        CommandJudge(script(tmp_path, "pass"))(a, b)
    with pytest.raises(JudgeError, match="cannot run"):
        CommandJudge(["/nonexistent/judge"])(a, b)
    with pytest.raises(InputError):
        CommandJudge("")
    assert issubclass(JudgeTimeoutError, TimeoutError) and issubclass(JudgeError, MaestroError)


def test_failing_judge_leaves_state_unchanged(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(home)
    t = Tournament.create(reg, arms(reg, 3), "rucb", seed=2)
    t.run(CallableJudge(by_length), StopRule(max_duels=5))
    before = open_store(home).tournament(t.id)
    steps = t.steps
    with pytest.raises(JudgeError):
        t.step(CommandJudge(script(tmp_path, "print('garbage')")))
    pair = t.duel.pending
    assert open_store(home).tournament(t.id) == before and t.steps == steps
    assert t.duel.select() == pair  # the same pair is asked again
    assert Tournament.open(reg, t.id).duel.select() == pair  # also after a restart
    t.verify()


def votes_file(tmp_path: Path, rows: list[object]) -> Path:
    p = tmp_path / "votes.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_votes(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(home)
    ids = arms(reg, 3)
    outsider = reg.add(Genome("not in the tournament {q}", {"q": None})).id
    t = Tournament.create(reg, ids, "dts", seed=0, name="t-votes")
    good = [{"tournament": "t-votes", "a": ids[0], "b": ids[1], "winner": ids[1], "vote_id": "v1", "voter": "ann"},
            {"a": ids[2][:12], "b": ids[1], "winner": ids[2][:12], "vote_id": "v2"}]
    assert t.apply_votes(votes_file(tmp_path, good)) == {"recorded": 2, "skipped": 0}
    assert t.apply_votes(votes_file(tmp_path, good)) == {"recorded": 0, "skipped": 2}  # replay: no double count
    w = t.duel.wins()
    assert w[1, 0] == 1 and w[2, 1] == 1 and w.sum() == 2 and t.steps == 2
    for rows, err, match in [
        ([{"a": ids[0], "b": outsider, "winner": ids[0]}], DuelError, "line 1: unknown pair"),
        ([{"a": ids[0], "b": ids[1], "winner": ids[2]}], DuelError, "neither a nor b"),
        ([{"a": ids[0], "b": ids[0], "winner": ids[0]}], DuelError, "two different genomes"),
        ([{"a": ids[0], "b": ids[1], "winner": ids[0], "tournament": "other"}], DuelError, "not 't-votes'"),
        ([good[0], "{not json"], InputError, "line 2: malformed JSON"),
        ([{"a": ids[0], "winner": ids[0]}], InputError, "field 'b'"),
    ]:
        with pytest.raises(err, match=match):
            t.apply_votes(votes_file(tmp_path, rows))
    assert Tournament.open(reg, t.id).steps == 2  # nothing recorded by the bad files
    t.verify()


def test_stale_writer_is_refused(home) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(home)
    t = Tournament.create(reg, arms(reg, 3), "dts", seed=0)
    other = Tournament.open(reg, t.id)
    t.step(CallableJudge(by_length))
    with pytest.raises(ConflictError, match="another process recorded"):
        other.step(CallableJudge(by_length))
    t.verify()
    with pytest.raises(DuelError):
        Tournament.create(reg, [t.arms[0], t.arms[0]])
    with pytest.raises(ConflictError):
        Tournament.create(reg, t.arms[:2], name=t.id)


RUNNER = """
import sys, time
from maestro_core.duel import CallableJudge, StopRule, Tournament
from maestro_core.prompts import Registry
reg = Registry(sys.argv[1])
t = Tournament.open(reg, sys.argv[2])
def judge(a, b):
    time.sleep(0.01)
    return "A" if len(a.genome.template) < len(b.genome.template) else "B"
t.run(CallableJudge(judge), StopRule(delta=1e-9, max_duels=100000))
"""


def test_crash_mid_run_loses_and_double_counts_nothing(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(home)
    t = Tournament.create(reg, arms(reg, 6), "dts", seed=4)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    for kill_at in (15, 40):
        p = subprocess.Popen([sys.executable, str(runner), str(home), t.id])
        deadline = time.time() + 120
        while open_store(home).tournament(t.id)["duels"] < kill_at and time.time() < deadline:
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        t2 = Tournament.open(reg, t.id)  # raises when state and rows disagree
        t2.verify()
        assert t2.steps >= kill_at
    # The resumed tournament continues exactly from the committed state.
    t3 = Tournament.open(reg, t.id)
    n = t3.steps
    t3.run(CallableJudge(by_length), StopRule(max_duels=t3.judged + 10, delta=1e-9))
    t3.verify()
    assert t3.steps >= n + 10
    rows = open_store(home).duels(t.id)
    assert [r["seq"] for r in rows] == list(range(len(rows)))


def test_corrupted_state_is_a_storage_error(home) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    reg = Registry(home)
    t = Tournament.create(reg, arms(reg, 3), "dts", seed=0, name="t-bad")
    t.step(CallableJudge(by_length))
    db = sqlite3.connect(Path(home) / "maestro.db")
    db.execute("UPDATE tournaments SET duels = 5 WHERE id = 't-bad'")
    db.commit()
    with pytest.raises(StorageError, match="state has 1 steps, the store 5 duels"):
        Tournament.open(reg, "t-bad")
    db.execute("UPDATE tournaments SET duels = 1, state = '{\"broken\": 1}' WHERE id = 't-bad'")
    db.commit()
    with pytest.raises(StorageError):
        Tournament.open(reg, "t-bad")


def test_prompt_demo_meets_the_target(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from maestro_core.prompt_demo import run_prompt_demo

    s = run_prompt_demo(tmp_path / "demo", seed=7)
    assert s["target_met"] and s["decision"] == "promote"
    assert s["eval_delta"] >= 0.01 and s["cost_cut"] >= 0.08
    assert s["duels"] < s["uniform_duels"]
    assert s["winner"] == s["uniform_winner"]
    assert (tmp_path / "demo" / "lineage.svg").exists()


def run_cli(*args: str) -> tuple[int, object]:
    from contextlib import redirect_stdout
    from io import StringIO

    buf = StringIO()
    with redirect_stdout(buf):
        rc = main(list(args))
    out = buf.getvalue()
    try:
        return rc, json.loads(out)
    except json.JSONDecodeError:
        return rc, out


def test_cli(home, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "g.json"
    f.write_text(json.dumps({"template": "Please answer very carefully: {q}\n\nBe brief.", "params": {"q": None},
                             "model": "m", "tags": ["cli"]}))
    rc, g = run_cli("prompts", "add", str(f), "--json")
    assert rc == 0 and g["operator"] == "seed"  # type: ignore[index]
    gid = g["id"]  # type: ignore[index]
    rc, c = run_cli("prompts", "mutate", gid[:10], "--op", "shorten", "--seed", "1", "--json")
    assert rc == 0 and c["parents"] == [gid]  # type: ignore[index]
    rc, lst = run_cli("prompts", "list", "--tag", "cli", "--json")
    assert rc == 0 and len(lst) == 2  # type: ignore[arg-type]
    rc, show = run_cli("prompts", "show", gid[:10])
    assert rc == 0 and "Please answer" in show  # type: ignore[operator]
    rc, lin = run_cli("prompts", "lineage", c["id"], "--json")  # type: ignore[index]
    assert rc == 0 and len(lin["edges"]) == 1  # type: ignore[index]
    rc, dot = run_cli("prompts", "lineage", c["id"])  # type: ignore[index]
    assert dot.startswith("digraph")  # type: ignore[union-attr]
    rc, _ = run_cli("prompts", "lineage", c["id"], "-o", str(tmp_path / "l.svg"))  # type: ignore[index]
    assert rc == 0 and (tmp_path / "l.svg").read_text().startswith("<svg")
    rc, diff = run_cli("prompts", "diff", gid, c["id"])  # type: ignore[index]
    assert rc == 0 and "cost:" in diff  # type: ignore[operator]
    rc, t = run_cli("tournament", "create", gid, c["id"], "--name", "t-cli", "--json")  # type: ignore[index]
    assert rc == 0 and t["tournament"] == "t-cli"  # type: ignore[index]
    judge = tmp_path / "j.py"
    judge.write_text("import json,sys; d=json.load(sys.stdin); "
                     "print('A' if len(d['a']['template']) < len(d['b']['template']) else 'B')")
    rc, r = run_cli("tournament", "run", "t-cli", "--judge", f"{sys.executable} {judge}", "--max-duels", "30", "--json")
    assert rc == 0 and r["best"] == c["id"] and r["stopped"] == "confident"  # type: ignore[index]
    v = tmp_path / "v.jsonl"
    v.write_text(json.dumps({"a": gid, "b": c["id"], "winner": c["id"], "vote_id": "x"}) + "\n")  # type: ignore[index]
    rc, r = run_cli("tournament", "vote", "t-cli", str(v), "--json")
    assert rc == 0 and r["recorded"] == 1  # type: ignore[index]
    rc, card = run_cli("tournament", "promote", "t-cli", "--json")
    assert rc == 0 and card["decision"] == "promote"  # type: ignore[index]
    rc, _ = run_cli("tournament", "show", "t-cli")
    assert rc == 0
    capsys.readouterr()
    # bad input: one line on stderr, exit 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"template": "Hi {name}", "params": {}}))
    assert main(["prompts", "add", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GenomeError" in err and "{name} is not declared" in err
    v.write_text(json.dumps({"a": gid, "b": "pg-0000000000", "winner": gid}) + "\n")
    assert main(["tournament", "vote", "t-cli", str(v)]) == 2
    assert "DuelError" in capsys.readouterr().err
    assert main(["tournament", "create", gid, c["id"], "--name", "t-cli-2"]) == 0  # type: ignore[index]
    capsys.readouterr()
    assert main(["tournament", "run", "t-cli-2", "--judge", "false"]) == 2
    assert "JudgeError" in capsys.readouterr().err
    assert main(["prompts", "show", "pg-ffffff"]) == 2
    _ = np  # numpy imported for parity with the other test modules
