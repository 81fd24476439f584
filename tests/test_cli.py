"""The ``maestro`` command line: exit codes, one-line errors, ``--json``,
the store location, Decision Cards, and the auditor's offline flow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from maestro_core import cards
from maestro_core.cli import main
from maestro_core.errors import InputError

SUBCOMMANDS = [
    [], ["keys"], ["keys", "generate"], ["evidence"], ["evidence", "build"], ["evidence", "verify"],
    ["log"], ["log", "append"], ["log", "checkpoint"], ["log", "prove"], ["log", "consistency"], ["log", "verify"],
    ["cards"], ["cards", "list"], ["cards", "show"], ["demo"],
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse: --help, usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("maestro: "), repr(err)
    return lines[0]


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with no MAESTRO_HOME: the store goes to ./.maestro."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAESTRO_HOME", raising=False)
    return tmp_path


def _release(root: Path) -> Path:
    d = root / "rel"
    (d / "bin").mkdir(parents=True)
    (d / "bin" / "app").write_bytes(b"\x7fELF binary")
    (d / "config.json").write_text('{"replicas": 3}\n')
    (d / "README").write_text("read me\n")
    return d


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=lambda s: " ".join(s) or "maestro")
def test_help_everywhere(capsys: pytest.CaptureFixture[str], sub: list[str]) -> None:
    code, out, err = run(capsys, *sub, "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: maestro")


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("maestro ")
    for argv in ([], ["nope"], ["keys"], ["evidence", "build"], ["log", "prove", "--index", "x"], ["cards", "list", "--limit", "many"]):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        one_line(err)


def test_full_flow_and_offline_audit(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rel = _release(cwd)
    assert run(capsys, "keys", "generate", "-o", "keys", "--name", "cli.example/log")[0] == 0
    for ext in ("key", "pub", "vkey"):
        assert (cwd / "keys" / f"maestro.{ext}").is_file()
    code, out, err = run(capsys, "evidence", "build", str(rel), "-o", "m.json", "--key", "keys/maestro.key")
    assert code == 0, err
    assert "3 files" in out and (cwd / "m.json").is_file()
    assert (cwd / ".maestro" / "maestro.db").is_file(), "the store lives in ./.maestro by default"
    assert run(capsys, "log", "checkpoint", "--key", "keys/maestro.key", "-o", "cp1.txt")[0] == 0
    (cwd / "note.txt").write_text("something else to log")
    for _ in range(3):
        assert run(capsys, "log", "append", "note.txt", "--kind", "test.note")[0] == 0
    assert run(capsys, "log", "checkpoint", "--key", "keys/maestro.key", "-o", "cp2.txt")[0] == 0
    code, out, err = run(capsys, "log", "prove", "m.json", "--checkpoint", "cp2.txt", "--log-key", "keys/maestro.pub",
                         "-o", "proof.json")
    assert code == 0, err
    assert run(capsys, "log", "consistency", "cp1.txt", "cp2.txt", "-o", "cons.json")[0] == 0
    assert run(capsys, "log", "verify")[0] == 0

    # The auditor: a folder with only files, no store, no private key.
    aud = cwd / "auditor"
    aud.mkdir()
    for f in ("m.json", "cp1.txt", "cp2.txt", "proof.json", "cons.json", "keys/maestro.pub", "keys/maestro.vkey"):
        shutil.copy(cwd / f, aud / Path(f).name)
    shutil.copytree(rel, aud / "rel")
    os.chdir(aud)
    argv = ["evidence", "verify", "m.json", "--dir", "rel", "--key", "maestro.pub", "--checkpoint", "cp2.txt",
            "--log-key", "maestro.vkey", "--proof", "proof.json", "--old-checkpoint", "cp1.txt",
            "--consistency-proof", "cons.json", "--no-card"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert out.startswith("OK") and "consistent" in out
    assert not (aud / ".maestro").exists(), "an offline audit with --no-card touches no store"
    code, out, _ = run(capsys, *argv, "--json")
    rep = json.loads(out)
    assert rep["ok"] is True and rep["files"] == 3 and rep["log_index"] == 0

    # A tampered folder: exit 1, one line naming the file.
    (aud / "rel" / "config.json").write_text('{"replicas": 30}\n')
    code, out, err = run(capsys, *argv)
    assert code == 1
    line = one_line(err)
    assert "config.json" in line and "VerificationError" in line
    code, out, err = run(capsys, *argv, "--json")
    assert code == 1 and json.loads(out)["ok"] is False and "config.json" in json.loads(out)["error"]
    (aud / "rel" / "config.json").write_text('{"replicas": 3}\n')
    (aud / "rel" / "extra").write_text("x")
    code, _, err = run(capsys, *argv)
    assert code == 1 and "extra" in one_line(err)
    (aud / "rel" / "extra").unlink()
    # a proof step that differs: exit 1
    proof = json.loads((aud / "proof.json").read_text())
    proof["hashes"][0] = "00" * 32
    (aud / "bad-proof.json").write_text(json.dumps(proof))
    code, _, err = run(capsys, *[a if a != "proof.json" else "bad-proof.json" for a in argv])
    assert code == 1 and "inclusion" in one_line(err)
    # the wrong key: exit 1
    assert run(capsys, "keys", "generate", "-o", "other", "--name", "cli.example/log")[0] == 0
    code, _, err = run(capsys, *[a if a != "maestro.pub" else "other/maestro.pub" for a in argv])
    assert code == 1 and "signature" in one_line(err)


def test_bad_input_exits_2_with_one_line(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rel = _release(cwd)
    run(capsys, "keys", "generate", "-o", "k")
    run(capsys, "evidence", "build", str(rel), "-o", "m.json", "--key", "k/maestro.key")
    (cwd / "bad.json").write_text("{ not json")
    (cwd / "bad-key.pub").write_text("garbage")
    cases = [
        ["evidence", "verify", "missing.json", "--dir", "rel", "--key", "k/maestro.pub"],
        ["evidence", "verify", "bad.json", "--dir", "rel", "--key", "k/maestro.pub"],
        ["evidence", "verify", "m.json", "--dir", "no-such-dir", "--key", "k/maestro.pub"],
        ["evidence", "verify", "m.json", "--dir", "rel", "--key", "bad-key.pub"],
        ["evidence", "verify", "m.json", "--dir", "rel", "--key", "missing.pub"],
        ["evidence", "verify", "m.json", "--dir", "rel"],
        ["evidence", "verify", "m.json", "--dir", "rel", "--key", "k/maestro.pub", "--checkpoint", "missing.txt",
         "--log-key", "k/maestro.pub"],
        ["evidence", "verify", "m.json", "--dir", "rel", "--key", "k/maestro.pub", "--checkpoint", "bad.json",
         "--log-key", "k/maestro.pub"],
        ["evidence", "build", "no-such-dir", "-o", "out.json", "--key", "k/maestro.key"],
        ["evidence", "build", str(rel), "-o", "out.json", "--key", "bad-key.pub"],
        ["keys", "generate", "-o", "k"],  # refuses to overwrite
        ["keys", "generate", "-o", "k2", "--name", "has space"],
        ["log", "prove", "--index", "99"],
        ["log", "prove", "m.json", "--checkpoint", "bad.json"],
        ["log", "consistency", "bad.json", "bad.json"],
        ["log", "append", "no-such-file"],
        ["log", "append", "bad.json"],  # a malformed manifest is not logged
        ["cards", "show", "dc-ffffffff"],
    ]
    size_before = _log_size(cwd)
    for argv in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        one_line(err)
    assert not (cwd / "out.json").exists() and not (cwd / "k2").exists()
    assert _log_size(cwd) == size_before, "failed commands must not log anything"


def _log_size(root: Path) -> int:
    from maestro_core.log import TransparencyLog
    from maestro_core.store import open_store

    return TransparencyLog(open_store(root / ".maestro")).size


def test_json_outputs(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rel = _release(cwd)
    code, out, _ = run(capsys, "keys", "generate", "-o", "k", "--json")
    k = json.loads(out)
    assert code == 0 and k["name"] == "maestro.local/log" and k["vkey"].startswith("maestro.local/log+")
    code, out, _ = run(capsys, "evidence", "build", str(rel), "-o", "m.json", "--key", "k/maestro.key", "--json",
                       "--algorithm", "sha256")
    b = json.loads(out)
    assert code == 0 and b["files"] == 3 and b["algorithm"] == "sha256" and b["log_index"] == 0
    code, out, _ = run(capsys, "log", "checkpoint", "--key", "k/maestro.key", "--json")
    c = json.loads(out)
    assert c["size"] == 2 and c["note"].startswith("maestro.local/log\n2\n")  # manifest + its card
    (cwd / "cp.txt").write_text(c["note"])
    code, out, _ = run(capsys, "log", "prove", "m.json", "--json", "-o", "p.json")
    p = json.loads(out)
    assert p["logIndex"] == 0 and p["treeSize"] == 2 and json.loads((cwd / "p.json").read_text()) == p
    code, out, _ = run(capsys, "log", "consistency", "cp.txt", "cp.txt", "--json")
    assert json.loads(out)["hashes"] == []
    code, out, _ = run(capsys, "log", "verify", "--json")
    assert json.loads(out)["ok"] is True
    code, out, _ = run(capsys, "cards", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and listed and all(c["id"].startswith("dc-") for c in listed)


def test_store_location(cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rel = _release(cwd)
    run(capsys, "keys", "generate", "-o", "k")
    build = ["evidence", "build", str(rel), "-o", "m.json", "--key", "k/maestro.key"]
    assert run(capsys, *build, "--home", "h1")[0] == 0
    assert (cwd / "h1" / "maestro.db").is_file() and not (cwd / ".maestro").exists()
    monkeypatch.setenv("MAESTRO_HOME", str(cwd / "h2"))
    assert run(capsys, *build)[0] == 0
    assert (cwd / "h2" / "maestro.db").is_file() and not (cwd / ".maestro").exists()
    assert run(capsys, *build, "--home", "h3")[0] == 0  # --home wins over MAESTRO_HOME
    assert (cwd / "h3" / "maestro.db").is_file()
    monkeypatch.delenv("MAESTRO_HOME")
    assert run(capsys, *build)[0] == 0
    assert (cwd / ".maestro" / "maestro.db").is_file()
    for home in ("h1", "h2", "h3"):
        code, out, _ = run(capsys, "cards", "list", "--json", "--home", home)
        assert [c["kind"] for c in json.loads(out)] == ["evidence.build"]


def test_cards_list_show_and_schema(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rel = _release(cwd)
    run(capsys, "keys", "generate", "-o", "k")
    run(capsys, "evidence", "build", str(rel), "-o", "m.json", "--key", "k/maestro.key")
    run(capsys, "evidence", "verify", "m.json", "--dir", str(rel), "--key", "k/maestro.pub")
    code, out, _ = run(capsys, "cards", "list")
    assert code == 0 and "evidence.verify" in out and "evidence.build" in out
    code, out, _ = run(capsys, "cards", "list", "--json", "--kind", "evidence.verify")
    listed = json.loads(out)
    assert [c["decision"] for c in listed] == ["pass"]
    schema = json.loads(resources.files("maestro_core").joinpath("schemas/decision-card.v1.json").read_text())
    assert schema == json.loads((Path(cards.__file__).parent / "schemas" / "decision-card.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    code, out, _ = run(capsys, "cards", "list", "--json")
    for c in json.loads(out):
        body = {k: v for k, v in c.items() if k != "log_index"}
        jsonschema.validate(body, schema)
        assert isinstance(c["log_index"], int)
        code, shown, _ = run(capsys, "cards", "show", c["id"])
        assert code == 0 and json.loads(shown) == c
        code, shown, _ = run(capsys, "cards", "show", c["id"][:10])  # unique prefix
        assert code == 0 and json.loads(shown)["id"] == c["id"]
    code, out, _ = run(capsys, "cards", "list", "--limit", "1", "--json")
    assert len(json.loads(out)) == 1
    code, out, _ = run(capsys, "cards", "list", "--kind", "nothing.here")
    assert code == 0 and "no decision cards" in out


def _card(**over: object) -> cards.DecisionCard:
    base = dict(kind="test.check", subject="s", decision="pass", reasons=["because"],
                inputs_digest=cards.digest_inputs(b"x"), metrics={"n": 1})
    base.update(over)
    return cards.DecisionCard(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field,value",
    [
        ("kind", "NoDot"),
        ("kind", "Upper.case"),
        ("subject", ""),
        ("decision", ""),
        ("reasons", [""]),
        ("inputs_digest", "md5:abc"),
        ("inputs_digest", "blake3:" + "A" * 64),
        ("metrics", {"m": [1, 2]}),
        ("evidence", 5),
        ("created", "yesterday"),
        ("created", "2026-13-45T99:00:00Z"),
        ("schema_version", 2),
    ],
)
def test_bad_card_field_is_named(tmp_path: Path, field: str, value: object) -> None:
    with pytest.raises(InputError) as ei:
        cards.record(_card(**{field: value}), home=tmp_path)
    assert f"field {field}" in str(ei.value)
    assert cards.list_cards(home=tmp_path) == [], "nothing stored"


def test_card_round_trip_and_ids(tmp_path: Path) -> None:
    c = cards.record(_card(metrics={"f": 0.5, "s": "x", "b": True, "z": None}, evidence="log:3"), home=tmp_path)
    assert c.id.startswith("dc-") and len(c.id) == 35
    got = cards.get(c.id, home=tmp_path)
    assert got == c and got.log_index == c.log_index
    jsonschema.validate(got.body(), cards.schema())
    with pytest.raises(InputError, match="finite"):
        cards.record(_card(metrics={"x": float("nan")}), home=tmp_path)
    other = cards.record(_card(decision="fail"), home=tmp_path)
    assert other.id != c.id
    assert [x.id for x in cards.list_cards(home=tmp_path)] == [other.id, c.id]


def test_demo(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo")
    assert code == 0, err
    assert "tampered copy fails" in out and "config.json" in out
    assert (cwd / ".maestro" / "maestro.db").is_file()
    assert (cwd / "maestro-demo" / "release.manifest.json").is_file()
    # again, with JSON, reusing its keys and store
    code, out, err = run(capsys, "demo", "--json", "-o", "maestro-demo")
    assert code == 0, err
    d = json.loads(out)
    assert d["ok"] is True and "config.json" in d["tampered_detected"]
    code, out, _ = run(capsys, "cards", "list", "--json")
    assert {"evidence.build", "evidence.verify", "demo.note"} <= {c["kind"] for c in json.loads(out)}
    assert run(capsys, "log", "verify")[0] == 0


def test_subprocess_entry_points(cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MAESTRO_HOME"}
    r = subprocess.run([sys.executable, "-m", "maestro_core", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "evidence" in r.stdout
    rel = _release(cwd)
    steps = [
        ["keys", "generate", "-o", "k"],
        ["evidence", "build", str(rel), "-o", "m.json", "--key", "k/maestro.key"],
        ["evidence", "verify", "m.json", "--dir", str(rel), "--key", "k/maestro.pub", "--json"],
    ]
    for s in steps:
        r = subprocess.run([sys.executable, "-m", "maestro_core", *s], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)
        assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True
    (rel / "README").write_text("changed\n")
    script = Path(sys.executable).parent / "maestro"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "maestro_core"]
    r = subprocess.run([*cmd, *steps[2][:-1]], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "README" in r.stderr
    r = subprocess.run([*cmd, "evidence", "verify", "nope.json", "--dir", "x", "--key", "k/maestro.pub"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=cwd)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nope.json" in r.stderr
