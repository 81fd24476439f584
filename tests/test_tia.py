"""Test impact analysis on small git repositories made in temporary folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maestro_core import FileError, InputError, NotFoundError, cards
from maestro_core.cli import main
from maestro_core.tia import Index, changed_lines, module_names, parse_duration, parse_python

A = '''\
LIMIT = 10


def add(x, y):
    return x + y


def mul(x, y):
    return x * y


class Box:
    def get(self):
        return 1
'''
B = '''\
from .a import add


def inc(x):
    return add(x, 1)
'''
TA = '''\
from pkg.a import add, mul, Box


def test_add():
    assert add(1, 2) == 3


def test_mul():
    assert mul(2, 3) == 6


def test_box():
    assert Box().get() == 1
'''
TB = '''\
from pkg.b import inc


def test_inc():
    assert inc(1) == 2
'''
TC = '''\
def test_alone():
    assert True
'''


def sh(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def pytest_in(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MAESTRO_HOME"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                          cwd=repo, capture_output=True, text=True, env=env)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    (r / "pkg").mkdir(parents=True)
    (r / "tests").mkdir()
    (r / "pkg" / "__init__.py").write_text("")
    (r / "pkg" / "a.py").write_text(A)
    (r / "pkg" / "b.py").write_text(B)
    (r / "tests" / "test_a.py").write_text(TA)
    (r / "tests" / "test_b.py").write_text(TB)
    (r / "tests" / "test_c.py").write_text(TC)
    (r / ".gitignore").write_text(".maestro/\n")
    sh(r, "git", "init", "-q")
    sh(r, "git", "add", "-A")
    sh(r, "git", "commit", "-qm", "init")
    p = pytest_in(r, "--maestro-collect")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "recorded coverage and durations of 5 tests" in p.stdout
    return r


def open_index(repo: Path) -> Index:
    """The index the plugin writes (``REPO/.maestro``), whatever $MAESTRO_HOME says."""
    return Index(repo, repo / ".maestro")


def selected(repo: Path, **kw: object) -> list[str]:
    idx = open_index(repo)
    try:
        sel = idx.select("HEAD", safe=True, **kw)  # type: ignore[arg-type]
        assert sel.fallback is None, sel.fallback
        return sorted(sel.selected)
    finally:
        idx.close()


def test_symbol_change_selects_covering_tests_with_paths(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("x * y", "y * x"))
    idx = open_index(repo)
    sel = idx.select("HEAD", safe=True, k=1)
    assert sel.changed == ["sym:pkg/a.py::mul"]
    assert sel.selected == ["tests/test_a.py::test_mul"]
    d = next(d for d in sel.decisions if d.selected)
    assert d.path == ["sym:pkg/a.py::mul", "[cover] test:tests/test_a.py::test_mul"]
    assert d.cost == pytest.approx(idx.weights.cover)
    # k=3 adds the tests of the importing test file, but not test_b / test_c
    assert selected(repo, k=3) == ["tests/test_a.py::test_add", "tests/test_a.py::test_box",
                                   "tests/test_a.py::test_mul"]
    idx.close()


def test_add_change_reaches_indirect_user(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("x + y", "y + x"))
    got = selected(repo, k=1)
    assert got == ["tests/test_a.py::test_add", "tests/test_b.py::test_inc"]


def test_module_level_change_reaches_importers(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("LIMIT = 10", "LIMIT = 11"))
    got = selected(repo, k=3)
    assert "tests/test_b.py::test_inc" in got
    # test_c imports nothing: only the co-change of the first commit links it
    idx = open_index(repo)
    sel = idx.select("HEAD", safe=True, k=3)
    alone = next(d for d in sel.decisions if d.nodeid == "tests/test_c.py::test_alone")
    assert any("[cochange]" in p for p in alone.path)
    assert alone.cost is not None and alone.cost > 4.0
    sel = idx.select("HEAD", safe=True, k=3, threshold=4.0)
    assert "tests/test_c.py::test_alone" not in sel.selected and "tests/test_b.py::test_inc" in sel.selected
    idx.close()


def test_plugin_runs_only_selected_and_prints_reasons(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("x * y", "y * x"))
    p = pytest_in(repo, "--maestro-select", "--maestro-k=1", "-rN")
    assert p.returncode == 0, p.stdout
    assert "1 passed, 4 deselected" in p.stdout
    assert "1/5 tests selected" in p.stdout
    assert "sym:pkg/a.py::mul → [cover] test:tests/test_a.py::test_mul" in p.stdout
    c = cards.list_cards("tia.select", home=repo / ".maestro")
    assert c and c[0].decision == "run 1" and c[0].metrics["selected"] == 1


def test_plugin_catches_a_failure_in_selected_tests(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("x * y", "x * y + 1"))
    p = pytest_in(repo, "--maestro-select=HEAD")
    assert p.returncode == 1 and "test_mul" in p.stdout and "1 failed" in p.stdout


def test_new_test_always_runs(repo: Path) -> None:
    (repo / "tests" / "test_new.py").write_text("def test_new():\n    assert True\n")
    p = pytest_in(repo, "--maestro-select")
    assert "test_new.py" in p.stdout and "new test" in p.stdout
    assert "1 passed, 5 deselected" in p.stdout


def test_budget_mode_cuts_with_reasons(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("x + y", "y + x").replace("x * y", "y * x"))
    idx = open_index(repo)
    sel = idx.select("HEAD", budget=0.0, k=3)
    assert sel.selected == []
    reasons = {d.nodeid: d.reason for d in sel.decisions}
    assert reasons["tests/test_a.py::test_mul"].startswith("cut: time budget")
    assert reasons["tests/test_c.py::test_alone"].startswith("no path")
    sel = idx.select("HEAD", budget=1e9, threshold=0.2, k=3)
    # test_add and test_inc reach `add` at the same cost: the faster one is
    # kept and the other has nothing left to cover
    adders = {"tests/test_a.py::test_add", "tests/test_b.py::test_inc"}
    assert "tests/test_a.py::test_mul" in sel.selected and len(adders & set(sel.selected)) == 1
    other = next(d for d in sel.decisions if d.nodeid in adders and not d.selected)
    assert other.reason.startswith("cut: selected tests already cover")
    assert next(d for d in sel.decisions if d.nodeid == "tests/test_a.py::test_box").reason.startswith(
        "cut: cost above threshold")
    idx.close()


def test_incremental_reindex_parses_only_changed_files(repo: Path) -> None:
    idx = open_index(repo)
    assert idx.index()["parsed"] == 0
    (repo / "pkg" / "b.py").write_text(B + "\n\ndef dec(x):\n    return x - 1\n")
    rep = idx.index()
    assert rep["parsed"] == 1
    assert "sym:pkg/b.py::dec" in idx.graph()[2]
    idx.close()


def test_deleted_and_renamed_files_select_their_users(repo: Path) -> None:
    sh(repo, "git", "mv", "pkg/b.py", "pkg/c.py")
    got = selected(repo, k=3)
    assert "tests/test_b.py::test_inc" in got
    sh(repo, "git", "mv", "pkg/c.py", "pkg/b.py")
    (repo / "pkg" / "b.py").unlink()
    assert "tests/test_b.py::test_inc" in selected(repo, k=3)


def test_syntax_error_falls_back_to_everything(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("def mul(x, y):", "def mul(x, y)"))
    idx = open_index(repo)
    sel = idx.select("HEAD", safe=True)
    assert sel.run_all and "pkg/a.py: syntax error at line 8" in sel.fallback
    assert len(sel.selected) == 5
    rep = idx.index()
    assert any("pkg/a.py: syntax error" in e for e in rep["errors"])
    idx.close()


def test_collection_error_runs_everything(repo: Path) -> None:
    (repo / "tests" / "test_c.py").write_text("import does_not_exist\n\ndef test_alone():\n    pass\n")
    p = pytest_in(repo, "--maestro-select", "--continue-on-collection-errors")
    assert "running all tests: collection failed in tests/test_c.py" in p.stdout
    assert "5 passed" not in p.stdout and "4 passed" in p.stdout


def test_non_python_change_falls_back(repo: Path) -> None:
    (repo / "pkg" / "data.json").write_text("{}")
    idx = open_index(repo)
    sel = idx.select("HEAD")
    assert sel.run_all and "pkg/data.json: a non-Python file changed" in sel.fallback
    (repo / "pkg" / "data.json").unlink()
    (repo / "README.md").write_text("docs only")
    sel = idx.select("HEAD")
    assert not sel.run_all and sel.selected == []
    idx.close()


def test_shallow_clone_falls_back(repo: Path, tmp_path: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("x * y", "y * x"))
    sh(repo, "git", "commit", "-qam", "two")
    clone = tmp_path / "shallow"
    sh(tmp_path, "git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    idx = open_index(clone)
    sel = idx.select("HEAD")
    assert sel.run_all and sel.fallback is not None and "shallow clone" in sel.fallback
    assert idx.index()["shallow"] is True
    idx.close()


def test_unknown_base_and_no_index_fall_back(repo: Path, tmp_path: Path) -> None:
    idx = open_index(repo)
    sel = idx.select("no-such-ref")
    assert sel.run_all and "no-such-ref" in (sel.fallback or "")
    idx.close()
    fresh = Index(repo, home=tmp_path / "empty")
    assert "no tests recorded" in (fresh.select("HEAD").fallback or "")
    fresh.close()


def test_not_a_git_repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileError, match="not a git repository"):
        Index(tmp_path)
    assert main(["tia", "index", "--repo", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a git repository" in err
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    p = pytest_in(tmp_path, "--maestro-select")
    assert "running all tests" in p.stdout and "not a git repository" in p.stdout and "1 passed" in p.stdout


def test_cli_select_explain_json(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("x * y", "y * x"))
    home = str(repo / ".maestro")
    assert main(["tia", "index", "--repo", str(repo), "--home", home]) == 0
    assert "indexed 6 Python files" in capsys.readouterr().out
    assert main(["tia", "select", "--repo", str(repo), "--home", home, "--base", "HEAD", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["card"].startswith("dc-") and "tests/test_a.py::test_mul" in out["selected"]
    assert main(["tia", "select", "--repo", str(repo), "--home", home, "--base", "HEAD", "--budget", "1m"]) == 0
    assert "selected" in capsys.readouterr().out
    assert main(["tia", "explain", "tests/test_a.py::test_mul", "--repo", str(repo), "--home", home]) == 0
    assert "[cover] test:tests/test_a.py::test_mul" in capsys.readouterr().out
    assert main(["tia", "explain", "tests/nope.py::t", "--repo", str(repo), "--home", home]) == 2
    assert "not in the index" in capsys.readouterr().err
    assert main(["tia", "select", "--repo", str(repo), "--home", home, "--base", "HEAD", "--budget", "soon"]) == 2
    assert "budget 'soon'" in capsys.readouterr().err
    with pytest.raises(NotFoundError):
        from maestro_core.tia import explain

        explain(open_index(repo), "x::y")


def test_parse_helpers() -> None:
    p = parse_python("from . import x\nfrom ..c import d\nimport e.f\n", "pkg.sub.mod", False, "m.py")
    assert p.imports == ["e.f", "pkg.c", "pkg.c.d", "pkg.sub", "pkg.sub.x"]
    p = parse_python("from . import y\n", "pkg", True, "pkg/__init__.py")
    assert p.imports == ["pkg", "pkg.y"]
    p = parse_python("class A:\n    @staticmethod\n    def f():\n        pass\n", "m", False, "m.py")
    assert p.symbols == [("A", 1, 4), ("A.f", 2, 4)]
    assert parse_python("def (:\n", "m", False, "m.py").error == "m.py: syntax error at line 1: invalid syntax"
    assert module_names("src/pkg/__init__.py") == [("src.pkg", True), ("pkg", True)]
    assert parse_duration("90") == 90 and parse_duration("2m") == 120 and parse_duration("1.5h") == 5400
    for bad in ("", "x", "-1s", "infs", "nan"):
        with pytest.raises(InputError):
            parse_duration(bad)


def test_changed_lines_parses_hunks(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text(A.replace("    return x * y\n", "    z = 1\n    return x * y * z\n"))
    (repo / "pkg" / "b.py").unlink()
    ch = {c.path: c for c in changed_lines(repo, "HEAD")}
    assert ch["pkg/a.py"].old_lines == {9} and ch["pkg/a.py"].new_lines == {9, 10}
    assert ch["pkg/b.py"].new_path is None and ch["pkg/b.py"].old_lines == set(range(1, 6))
