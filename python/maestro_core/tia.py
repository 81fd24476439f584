"""Test impact analysis: which tests a change needs, at what cost, and why.

The repository is modelled as a weighted directed hypergraph
(:mod:`maestro_core.hypergraph`):

* nodes: one per file (its module-level code), per symbol (function, class,
  method, found with :mod:`ast`) and per test (pytest node id);
* hyperedges, with costs (lower = stronger link):
  ``define`` file → its symbols; ``member`` file or symbol → the file's
  interface node ``api:`` (so a symbol change does not spread to its
  siblings), ``import`` imported interface → importing file (relative
  imports resolved; importing ``a.b.c`` also imports ``a`` and ``a.b``),
  ``cover`` executed symbols/files → test (one coverage.py dynamic context
  per test, recorded by ``pytest --maestro-collect``),
  ``testdef`` test file / test function → test,
  ``cochange`` a commit over the files it touched (undirected; the cost grows
  with the commit's age and size).

The index lives in the store's ``maestro.db`` (tables ``tia_*``, written by
this module beside the native tables). Re-indexing re-parses only files
whose digest changed and adds only unseen commits.

Selection maps ``git diff BASE`` to changed nodes (symbols whose lines
changed, else the file), computes hop-bounded min-cost paths natively, and
keeps either every test with a path (``safe``) or the lazy-greedy best
coverage of the changed region per second within a time budget. When the
analysis cannot be trusted (no git, shallow clone, no index, unparsable or
non-Python changes) it falls back to *all* tests and says why.
"""

from __future__ import annotations

import ast
import json
import math
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import cards
from .errors import FileError, InputError, NotFoundError
from .hashing import hash_bytes
from .hypergraph import DECISIONS, Hypergraph, select_tests
from .store import default_home, open_store

__all__ = [
    "Index", "Selection", "SAFE_THRESHOLD", "TestDecision", "Change", "Weights", "git", "changed_lines",
    "parse_duration", "record_selection",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS tia_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tia_files (
    path TEXT PRIMARY KEY, digest TEXT NOT NULL, error TEXT, imports TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tia_symbols (
    path TEXT NOT NULL, qualname TEXT NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL,
    PRIMARY KEY (path, qualname)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tia_tests (
    nodeid TEXT PRIMARY KEY, path TEXT NOT NULL, duration REAL NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tia_coverage (
    nodeid TEXT NOT NULL, path TEXT NOT NULL, lines TEXT NOT NULL,
    PRIMARY KEY (nodeid, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tia_commits (
    sha TEXT PRIMARY KEY, time INTEGER NOT NULL, files TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tia_graph (generation INTEGER PRIMARY KEY, body BLOB NOT NULL);
"""

DOC_SUFFIXES = (".md", ".rst", ".txt", ".png", ".svg", ".jpg")
IGNORED_PREFIXES = ("docs/", "doc/", ".github/", "LICENSE", "AUTHORS", "CHANGELOG", "CHANGES")
#: Tool state that is never part of a change.
TOOL_STATE = (".maestro/", ".pytest_cache/", ".hypothesis/", ".testmondata", ".coverage", ".mypy_cache/")


@dataclass(frozen=True)
class Weights:
    """Hyperedge costs (lower = stronger link) and the co-change decay."""

    cover: float = 0.1
    define: float = 1.0
    member: float = 2.0
    imports: float = 2.0
    testdef: float = 0.5
    cochange: float = 8.0
    cochange_per_day: float = 1.0 / 90.0
    cochange_max_files: int = 12


#: Default threshold of safe mode: the dearest path of ``k = 3`` dependency
#: hyperedges (member + import + import = 6) passes, while co-change links
#: (cost >= 8) rank tests in budget mode but never force one into safe mode.
SAFE_THRESHOLD = 7.0


# ---------------------------------------------------------------- git
def git(root: str | os.PathLike[str], *args: str, check: bool = True) -> str:
    """Run git in ``root``; a :class:`FileError` naming the command on failure."""
    try:
        p = subprocess.run(["git", "-C", os.fspath(root), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FileError("git is not installed") from None
    if check and p.returncode != 0:
        msg = p.stderr.strip().splitlines()
        raise FileError(f"git {' '.join(args)} in {root}: {msg[-1] if msg else 'failed'}")
    return p.stdout


def repo_root(path: str | os.PathLike[str]) -> Path:
    """The work tree holding ``path``; :class:`FileError` when it is not a git repository."""
    p = Path(path)
    if not p.is_dir():
        raise FileError(f"{p}: not a folder")
    if (p / ".git").exists():  # the common case, without spawning git
        return p.resolve()
    out = subprocess.run(["git", "-C", str(p), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if out.returncode != 0:
        raise FileError(f"{p}: not a git repository (test impact analysis needs git history)")
    return Path(out.stdout.strip())


def is_shallow(root: Path) -> bool:
    return git(root, "rev-parse", "--is-shallow-repository", check=False).strip() == "true"


@dataclass(frozen=True)
class Change:
    """A changed file: its old and new path and the changed line numbers on
    each side (old lines refer to the indexed version)."""

    old_path: str | None
    new_path: str | None
    old_lines: frozenset[int]
    new_lines: frozenset[int]

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def changed_lines(root: Path, base: str) -> list[Change]:
    """Parse ``git diff -U0 --find-renames BASE`` (work tree vs BASE)."""
    out = git(root, "diff", "-U0", "--find-renames", "--no-color", "--no-ext-diff", base, "--")
    untracked = git(root, "ls-files", "--others", "--exclude-standard").split("\n")
    changes: list[Change] = []
    cur: dict[str, Any] | None = None

    def flush() -> None:
        if cur is not None:
            changes.append(Change(cur["old"], cur["new"], frozenset(cur["ol"]), frozenset(cur["nl"])))

    for line in out.splitlines():
        if line.startswith("diff --git "):
            flush()
            a, _, b = line[len("diff --git "):].partition(" b/")
            cur = {"old": a[2:], "new": b, "ol": set(), "nl": set()}
        elif cur is None:
            continue
        elif line.startswith("--- "):
            cur["old"] = None if line == "--- /dev/null" else line[6:]
        elif line.startswith("+++ "):
            cur["new"] = None if line == "+++ /dev/null" else line[6:]
        elif line.startswith("@@ "):
            old, new = line.split(" ")[1:3]
            for spec, key in ((old[1:], "ol"), (new[1:], "nl")):
                start, _, count = spec.partition(",")
                n = int(count) if count else 1
                s = int(start)
                cur[key].update(range(s, s + n) if n else [max(s, 1)])
    flush()
    for u in untracked:
        if u and not u.startswith(TOOL_STATE) and "__pycache__/" not in u:
            changes.append(Change(None, u, frozenset(), frozenset([1])))
    return changes


# ---------------------------------------------------------------- parsing
def _has_code(line: str) -> bool:
    t = line.strip()
    return bool(t) and not t.startswith("#")


@dataclass
class Parsed:
    symbols: list[tuple[str, int, int]]
    imports: list[str]
    error: str | None = None


def parse_python(text: str, module: str, is_pkg: bool, filename: str) -> Parsed:
    """Symbols ``(qualname, first, last line)`` and absolute imported module
    names (each ``from m import x`` gives ``m`` and ``m.x``)."""
    try:
        tree = ast.parse(text, filename=filename)
    except (SyntaxError, ValueError) as e:
        where = f"line {getattr(e, 'lineno', '?')}"
        return Parsed([], [], f"{filename}: syntax error at {where}: {getattr(e, 'msg', e)}")
    syms: list[tuple[str, int, int]] = []

    def walk(body: Iterable[ast.stmt], prefix: str) -> None:
        for n in body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                q = f"{prefix}{n.name}"
                first = min([n.lineno] + [d.lineno for d in n.decorator_list])
                syms.append((q, first, n.end_lineno or n.lineno))
                walk(n.body, q + ".")
            elif isinstance(n, (ast.If, ast.Try, ast.With)):
                walk(getattr(n, "body", []), prefix)

    walk(tree.body, "")
    imports: list[str] = []
    pkg = module if is_pkg else module.rpartition(".")[0]
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            imports += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                parts = pkg.split(".") if pkg else []
                up = n.level - 1
                if up > len(parts):
                    continue
                base = ".".join(parts[: len(parts) - up] if up else parts)
                mod = ".".join(x for x in (base, n.module or "") if x)
            else:
                mod = n.module or ""
            if mod:
                imports.append(mod)
            imports += [f"{mod}.{a.name}" if mod else a.name for a in n.names if a.name != "*"]
    return Parsed(syms, sorted(set(imports)))


def module_names(path: str) -> list[tuple[str, bool]]:
    """Candidate module names of a repository path (``src/`` layout too)."""
    p = Path(path)
    parts = list(p.with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    names = [(".".join(parts), is_pkg)] if parts else []
    for i in range(1, len(parts)):
        if parts[i - 1] in ("src", "lib", "python"):
            names.append((".".join(parts[i:]), is_pkg))
    return names


def parse_duration(text: str) -> float:
    """``60``, ``60s``, ``2m``, ``1.5h`` → seconds (:class:`InputError` otherwise)."""
    t = text.strip().lower()
    mult = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        v = float(t[:-1]) * mult[t[-1]] if t and t[-1] in mult else float(t)
    except ValueError:
        raise InputError(f"budget {text!r}: expected seconds such as 60, 60s, 2m or 1h") from None
    if not math.isfinite(v) or v < 0:
        raise InputError(f"budget {text!r}: must be a finite, non-negative duration")
    return v


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class TestDecision:
    """One test: selected or not, its cost and its explanation path."""

    nodeid: str
    selected: bool
    reason: str
    cost: float | None
    path: list[str] = field(default_factory=list)
    duration: float = 0.0

    def explain(self) -> str:
        c = "no path" if self.cost is None else f"cost {self.cost:.3g}"
        via = " → ".join(self.path)
        return f"{self.nodeid}: {self.reason} ({c})" + (f"\n    {via}" if via else "")

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.nodeid, "selected": self.selected, "reason": self.reason, "cost": self.cost,
                "path": self.path, "duration": self.duration}


@dataclass(frozen=True)
class Selection:
    """A selection: the decisions, or an all-tests fallback with its reason."""

    base: str
    decisions: list[TestDecision]
    changed: list[str]
    fallback: str | None = None
    mode: str = "budget"
    warnings: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def run_all(self) -> bool:
        return self.fallback is not None

    @property
    def selected(self) -> list[str]:
        return [d.nodeid for d in self.decisions if d.selected]

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "mode": self.mode, "fallback": self.fallback, "changed": self.changed,
                "warnings": self.warnings, "selected": self.selected,
                "decisions": [d.to_dict() for d in self.decisions], "elapsed_s": self.elapsed}

    def summary(self) -> str:
        if self.fallback:
            return f"maestro tia: running all tests: {self.fallback}"
        sel = [d for d in self.decisions if d.selected]
        t = sum(d.duration for d in sel)
        tot = sum(d.duration for d in self.decisions)
        return (f"maestro tia: {len(sel)}/{len(self.decisions)} tests selected "
                f"({t:.2f}s of {tot:.2f}s recorded) for {len(self.changed)} changed nodes vs {self.base}")


# ---------------------------------------------------------------- index
class _Symbols:
    """Symbols of one file on demand (``get(path, default)``), from the store."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def get(self, path: str, default: Any = None) -> list[tuple[str, int, int]]:
        rows = self.db.execute("SELECT qualname, start, stop FROM tia_symbols WHERE path=? ORDER BY start", (path,))
        return [(str(q), int(a), int(b)) for q, a, b in rows]


class Index:
    """The TIA index of one repository, stored in ``maestro.db``."""

    def __init__(self, root: str | os.PathLike[str] = ".", home: str | os.PathLike[str] | None = None,
                 weights: Weights | None = None) -> None:
        self.root = repo_root(root)
        h = default_home(home) if home is not None or os.environ.get("MAESTRO_HOME") else self.root / ".maestro"
        self.home = Path(h)
        self._store: Any = open_store(self.home)  # creates maestro.db and the native schema
        self.db = sqlite3.connect(self.home / "maestro.db", timeout=30)
        self.db.executescript(SCHEMA)
        self.weights = weights or Weights()
        self._graph: tuple[Any, ...] | None = None

    def close(self) -> None:
        self.db.close()
        self._store = None  # drops the native store's connection

    # --- meta
    def meta(self, key: str) -> str | None:
        r = self.db.execute("SELECT value FROM tia_meta WHERE key=?", (key,)).fetchone()
        return None if r is None else str(r[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO tia_meta(key, value) VALUES (?, ?)", (key, value))

    # --- indexing
    def python_files(self) -> list[str]:
        out = git(self.root, "ls-files", "-co", "--exclude-standard", "--", "*.py")
        return sorted({f for f in out.splitlines() if f and not f.startswith(TOOL_STATE) and (self.root / f).is_file()})

    def index(self, history: int = 300) -> dict[str, Any]:
        """(Re-)index files whose digest changed, and unseen commits."""
        t0 = time.perf_counter()
        files = self.python_files()
        known = {r[0]: r[1] for r in self.db.execute("SELECT path, digest FROM tia_files")}
        parsed, errors = 0, []
        with self.db:
            for gone in set(known) - set(files):
                self.db.execute("DELETE FROM tia_files WHERE path=?", (gone,))
                self.db.execute("DELETE FROM tia_symbols WHERE path=?", (gone,))
            for f in files:
                data = (self.root / f).read_bytes()
                dg = hash_bytes(data).hex()
                if known.get(f) == dg:
                    continue
                names = module_names(f)
                mod, is_pkg = names[0] if names else ("", False)
                p = parse_python(data.decode("utf-8", "replace"), mod, is_pkg, f)
                parsed += 1
                if p.error:
                    errors.append(p.error)
                self.db.execute("DELETE FROM tia_symbols WHERE path=?", (f,))
                self.db.executemany("INSERT OR REPLACE INTO tia_symbols VALUES (?,?,?,?)",
                                    [(f, q, a, b) for q, a, b in p.symbols])
                self.db.execute("INSERT OR REPLACE INTO tia_files VALUES (?,?,?,?)",
                                (f, dg, p.error, json.dumps(p.imports)))
            commits = self._index_history(history)
            head = git(self.root, "rev-parse", "HEAD", check=False).strip()
            self.set_meta("head", head)
            if parsed or commits:
                self._bump()
        self._graph = None
        dt = time.perf_counter() - t0
        return {"files": len(files), "parsed": parsed, "errors": errors, "new_commits": commits,
                "seconds": dt, "head": head, "shallow": is_shallow(self.root)}

    def _index_history(self, n: int) -> int:
        out = git(self.root, "log", f"-n{n}", "--no-merges", "--name-only", "--format=@@%H %ct", check=False)
        seen = {r[0] for r in self.db.execute("SELECT sha FROM tia_commits")}
        rows: list[tuple[str, int, list[str]]] = []
        for line in out.splitlines():
            if line.startswith("@@"):
                sha, _, ts = line[2:].partition(" ")
                rows.append((sha, int(ts or 0), []))
            elif line.strip() and rows:
                rows[-1][2].append(line.strip())
        new = [(s, t, json.dumps(fs)) for s, t, fs in rows if s not in seen]
        self.db.executemany("INSERT OR REPLACE INTO tia_commits VALUES (?,?,?)", new)
        return len(new)

    def record_run(self, durations: dict[str, tuple[str, float, str]],
                   coverage: dict[str, dict[str, list[int]]]) -> None:
        """Store per-test duration/outcome and per-test executed lines
        (``coverage[nodeid][path] = lines``); replaces only those tests."""
        with self.db:
            for nid, (path, dur, outcome) in durations.items():
                self.db.execute("INSERT OR REPLACE INTO tia_tests VALUES (?,?,?,?)", (nid, path, dur, outcome))
            for nid, files in coverage.items():
                self.db.execute("DELETE FROM tia_coverage WHERE nodeid=?", (nid,))
                self.db.executemany("INSERT INTO tia_coverage VALUES (?,?,?)",
                                    [(nid, p, json.dumps(sorted(ls))) for p, ls in files.items()])
            self._bump()
        self._graph = None

    def _bump(self) -> None:
        """A new index generation: the cached graph is stale."""
        g = int(self.meta("generation") or 0) + 1
        self.set_meta("generation", str(g))
        self.db.execute("DELETE FROM tia_graph")

    def _load_cached(self) -> Any:
        gen = int(self.meta("generation") or 0)
        row = self.db.execute("SELECT body FROM tia_graph WHERE generation=?", (gen,)).fetchone()
        if row is None:
            return None
        import io

        z = np.load(io.BytesIO(row[0]), allow_pickle=False)
        labels = bytes(z["labels"]).decode().split("\n")
        names = bytes(z["kind_names"]).decode().split("\n")
        kinds = [names[i] for i in z["kinds"].tolist()]
        g = Hypergraph(len(labels), z["tp"], z["ti"], z["w"], z["hp"], z["hi"])
        return (g, labels, {x: i for i, x in enumerate(labels)}, kinds, _Symbols(self.db))

    def _store_cached(self, arrays: dict[str, Any], labels: list[str], kinds: list[str]) -> None:
        import io

        names = sorted(set(kinds))
        code = {k: i for i, k in enumerate(names)}
        buf = io.BytesIO()
        np.savez(buf, labels=np.frombuffer("\n".join(labels).encode(), dtype=np.uint8),
                 kind_names=np.frombuffer("\n".join(names).encode(), dtype=np.uint8),
                 kinds=np.array([code[k] for k in kinds], dtype=np.uint8), **arrays)
        gen = int(self.meta("generation") or 0)
        with self.db:
            self.db.execute("DELETE FROM tia_graph")
            self.db.execute("INSERT INTO tia_graph VALUES (?, ?)", (gen, buf.getvalue()))

    def tests(self) -> dict[str, tuple[str, float, str]]:
        return {r[0]: (r[1], r[2], r[3]) for r in self.db.execute("SELECT nodeid, path, duration, outcome FROM tia_tests")}

    # --- graph
    def graph(self) -> tuple[Hypergraph, list[str], dict[str, int], list[str], Any]:
        """``(hypergraph, node labels, label → id, hyperedge kinds, symbols per file)``."""
        if self._graph is not None:
            return self._graph  # type: ignore[return-value]
        cached = self._load_cached()
        if cached is not None:
            self._graph = cached
            return cached  # type: ignore[no-any-return]
        w = self.weights
        labels: list[str] = []
        ids: dict[str, int] = {}

        def node(label: str) -> int:
            i = ids.get(label)
            if i is None:
                i = ids[label] = len(labels)
                labels.append(label)
            return i

        tails: list[list[int]] = []
        heads: list[list[int]] = []
        cost: list[float] = []
        kinds: list[str] = []

        def edge(kind: str, t: list[int], h: list[int], c: float) -> None:
            if t and h:
                tails.append(t)
                heads.append(h)
                cost.append(c)
                kinds.append(kind)

        syms: dict[str, list[tuple[str, int, int]]] = {}
        for p, q, a, b in self.db.execute("SELECT path, qualname, start, stop FROM tia_symbols ORDER BY path, start"):
            syms.setdefault(p, []).append((q, a, b))
        modmap: dict[str, str] = {}
        files = [(r[0], json.loads(r[1])) for r in self.db.execute("SELECT path, imports FROM tia_files")]
        for f, _ in files:
            for name, _pkg in module_names(f):
                modmap.setdefault(name, f)
        for f, imports in files:
            fn = node(f"file:{f}")
            s_ids = [node(f"sym:{f}::{q}") for q, _, _ in syms.get(f, [])]
            api = node(f"api:{f}")
            edge("define", [fn], s_ids, w.define)
            edge("member", [fn, *s_ids], [api], w.member)
            targets = set()
            for imp in imports:
                parts = imp.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
                    t = modmap.get(".".join(parts[:i]))
                    if t is not None and t != f:
                        targets.add(t)
            for t in sorted(targets):
                edge("import", [node(f"api:{t}")], [fn], w.imports)
        tests = self.tests()
        for nid, (path, _d, _o) in tests.items():
            tn = node(f"test:{nid}")
            fn_q = nid.split("::", 1)[1].split("[", 1)[0].replace("::", ".") if "::" in nid else ""
            src = [node(f"file:{path}")]
            if f"sym:{path}::{fn_q}" in ids:
                src.append(ids[f"sym:{path}::{fn_q}"])
            edge("testdef", src, [tn], w.testdef)
        cov: dict[str, list[int]] = {}
        for nid, path, lines in self.db.execute("SELECT nodeid, path, lines FROM tia_coverage"):
            if nid not in tests:
                continue
            hit = cov.setdefault(nid, [])
            ss = syms.get(path, [])
            for ln in json.loads(lines):
                hit.append(node(self._line_node(path, ln, ss)))
        for nid, hit in cov.items():
            edge("cover", sorted(set(hit)), [ids[f"test:{nid}"]], w.cover)
        now = time.time()
        for _sha, ts, fjs in self.db.execute("SELECT sha, time, files FROM tia_commits"):
            fs = [ids[f"file:{f}"] for f in json.loads(fjs) if f"file:{f}" in ids]
            if 2 <= len(fs) <= w.cochange_max_files:
                age = max(0.0, (now - ts) / 86400.0)
                edge("cochange", fs, fs, w.cochange + math.log2(len(fs)) + age * w.cochange_per_day)
        tp = np.zeros(len(tails) + 1, dtype=np.int64)
        tp[1:] = np.cumsum([len(t) for t in tails])
        hp = np.zeros(len(heads) + 1, dtype=np.int64)
        hp[1:] = np.cumsum([len(h) for h in heads])
        ti = np.fromiter((x for t in tails for x in t), dtype=np.int64, count=int(tp[-1]))
        hi = np.fromiter((x for h in heads for x in h), dtype=np.int64, count=int(hp[-1]))
        wa = np.asarray(cost, dtype=np.float64)
        g = Hypergraph(len(labels), tp, ti, wa, hp, hi)
        self._store_cached({"tp": tp, "ti": ti, "w": wa, "hp": hp, "hi": hi}, labels, kinds)
        self._graph = (g, labels, ids, kinds, syms)
        return self._graph

    @staticmethod
    def _line_node(path: str, line: int, ss: Sequence[tuple[str, int, int]]) -> str:
        """The innermost symbol holding ``line``, else the file."""
        best = None
        for q, a, b in ss:
            if a <= line <= b and (best is None or a >= best[1]):
                best = (q, a)
        return f"sym:{path}::{best[0]}" if best else f"file:{path}"

    # --- selection
    def changed_nodes(self, changes: Sequence[Change], base: str = "HEAD") -> tuple[list[str], list[str], list[str]]:
        """``(changed node labels, fallback reasons, warnings)``. Blank and
        comment-only lines change no behaviour and are skipped."""
        _g, _labels, ids, _k, syms = self.graph()
        out: set[str] = set()
        fallback: list[str] = []
        warnings: list[str] = []
        old_texts = self._blobs(base, [c.old_path for c in changes if c.old_path and c.old_path.endswith(".py")])
        for c in changes:
            p = c.path
            if not p.endswith(".py"):
                if p.endswith(DOC_SUFFIXES) or p.startswith(IGNORED_PREFIXES):
                    continue
                fallback.append(f"{p}: a non-Python file changed (its effect on tests is unknown)")
                continue
            if Path(p).name == "conftest.py":
                fallback.append(f"{p}: a conftest.py changed (it can affect every test below it)")
                continue
            for side, lines, is_new in ((c.old_path, c.old_lines, False), (c.new_path, c.new_lines, True)):
                if side is None:
                    continue
                if is_new:  # parse the work tree's version (syntax errors surface here)
                    ss = self._current_symbols(side, warnings, fallback)
                    text = self._read(side)
                else:
                    ss = syms.get(side, [])
                    text = old_texts.get(side, "")
                src = text.splitlines()
                lines = frozenset(ln for ln in lines if not (0 < ln <= len(src)) or _has_code(src[ln - 1]))
                if f"file:{side}" not in ids:
                    if is_new and (self.root / side).is_file():
                        warnings.append(f"{side}: not indexed yet (new file); its tests run as new tests")
                    continue
                for ln in lines:
                    lab = self._line_node(side, ln, ss)
                    out.add(lab if lab in ids else f"file:{side}")
                if c.new_path is None or c.old_path != c.new_path:
                    out.add(f"file:{side}")  # deleted or renamed: its importers are affected
        return sorted(out), fallback, warnings

    def _blobs(self, base: str, paths: list[str]) -> dict[str, str]:
        """The text of ``base:path`` for each path, in one ``git cat-file --batch``."""
        if not paths:
            return {}
        p = subprocess.run(["git", "-C", os.fspath(self.root), "cat-file", "--batch"], capture_output=True,
                           input="".join(f"{base}:{x}\n" for x in paths).encode(), check=False)
        out, pos, texts = p.stdout, 0, {}
        for path in paths:
            nl = out.find(b"\n", pos)
            if nl < 0:
                break
            head = out[pos:nl].split()
            pos = nl + 1
            if len(head) == 3 and head[1] == b"blob":
                size = int(head[2])
                texts[path] = out[pos:pos + size].decode("utf-8", "replace")
                pos += size + 1
        return texts

    def _read(self, path: str) -> str:
        try:
            return (self.root / path).read_text("utf-8", "replace")
        except OSError:
            return ""

    def _current_symbols(self, path: str, warnings: list[str], fallback: list[str]) -> list[tuple[str, int, int]]:
        f = self.root / path
        try:
            text = f.read_text("utf-8", "replace")
        except OSError as e:
            warnings.append(f"{path}: cannot read ({e.strerror})")
            return []
        names = module_names(path)
        mod, pkg = names[0] if names else ("", False)
        p = parse_python(text, mod, pkg, path)
        if p.error:
            fallback.append(p.error)
        return p.symbols

    def select(self, base: str = "HEAD", budget: float = math.inf, threshold: float = math.inf,
               k: int = 3, safe: bool = False, changes: Sequence[Change] | None = None) -> Selection:
        """Select tests for the work tree's changes against ``base``."""
        t0 = time.perf_counter()
        mode = "safe" if safe else "budget"
        tests = self.tests()
        def fall(why: str, changed: list[str] | None = None, warn: list[str] | None = None) -> Selection:
            everything = [TestDecision(n, True, "fallback: run all", None, [], d)
                          for n, (_p, d, _o) in sorted(tests.items())]
            return Selection(base, everything, changed or [], why, mode, warn or [], time.perf_counter() - t0)

        # one git call: shallow?  and does the base resolve to a commit?
        rp = git(self.root, "rev-parse", "--is-shallow-repository", f"{base}^{{commit}}", "--", check=False).split()
        if rp[:1] == ["true"]:
            return fall("shallow clone: history and the base commit may be missing (git fetch --unshallow)")
        if len(rp) < 2 or not all(ch in "0123456789abcdef" for ch in rp[1]) or len(rp[1]) < 40:
            return fall(f"base {base!r} is not a commit in this repository")
        if not tests:
            return fall("no tests recorded yet (run pytest --maestro-collect first)")
        if changes is None:
            changes = changed_lines(self.root, base)
        changed, fb, warns = self.changed_nodes(changes, base)
        if fb:
            return fall("; ".join(fb), changed, warns)
        g, labels, ids, kinds, _s = self.graph()
        test_ids = [ids[f"test:{n}"] for n in sorted(tests)]
        names = sorted(tests)
        durations = np.array([tests[n][1] for n in names], dtype=np.float64)
        src = np.array([ids[c] for c in changed], dtype=np.int64)
        if len(src) == 0:
            decisions = [TestDecision(n, False, "no changed code reaches it", None, [], tests[n][1]) for n in names]
            return Selection(base, decisions, changed, None, mode, warns, time.perf_counter() - t0)
        r = g.khop(src, k)
        dist = r.dist[test_ids]
        if safe:
            cover = dist[None, :]
        else:
            cover = g.khop_each(src, k)[:, test_ids]
        codes, _order = select_tests(cover, durations, budget, threshold, safe)
        decisions = []
        for j, n in enumerate(names):
            code = DECISIONS[int(codes[j])]
            c = float(dist[j])
            cost = c if math.isfinite(c) else None
            path: list[str] = []
            if cost is not None:
                pr = r.path(test_ids[j])
                if pr is not None:
                    nodes, edges = pr
                    path = [labels[nodes[0]]] + [f"[{kinds[e]}] {labels[v]}" for e, v in zip(edges, nodes[1:])]
            reason = {
                "selected": "selected",
                "cost": f"cut: cost above threshold {threshold:g}",
                "budget": f"cut: time budget {budget:g}s spent",
                "redundant": "cut: selected tests already cover its changed code",
                "unreachable": f"no path within {k} hyperedges",
            }[code]
            decisions.append(TestDecision(n, code == "selected", reason, cost, path, tests[n][1]))
        return Selection(base, decisions, changed, None, mode, warns, time.perf_counter() - t0)


def record_selection(sel: Selection, home: Any = None, store: Any = None) -> cards.DecisionCard:
    """One Decision Card per selection."""
    chosen = [d for d in sel.decisions if d.selected]
    reasons = [sel.fallback] if sel.fallback else [d.explain() for d in chosen[:20]]
    if not reasons:
        reasons = ["no test is reachable from the changed code"]
    body = json.dumps(sel.to_dict(), sort_keys=True).encode()
    card = cards.DecisionCard(
        kind="tia.select", subject=f"changes vs {sel.base}",
        decision="run-all" if sel.fallback else f"run {len(chosen)}",
        reasons=reasons, inputs_digest=cards.digest_inputs(body),
        metrics={"selected": len(chosen), "tests": len(sel.decisions), "changed_nodes": len(sel.changed),
                 "mode": sel.mode, "seconds_selected": round(sum(d.duration for d in chosen), 6),
                 "seconds_all": round(sum(d.duration for d in sel.decisions), 6)},
    )
    return cards.record(card, home=home, store=store)


def explain(index: Index, test: str, base: str = "HEAD", k: int = 3) -> TestDecision:
    """The decision and path of one test for the changes against ``base``
    (safe mode without a threshold, so co-change paths show too)."""
    sel = index.select(base, k=k, safe=True)
    for d in sel.decisions:
        if d.nodeid == test:
            return d
    raise NotFoundError(f"test {test!r} is not in the index (run pytest --maestro-collect)")
