"""Malformed input to every entry point of ``maestro_core._native``.

Only ``MaestroError`` subclasses (typed, with a message) or PyO3's argument
conversion errors (``TypeError``, ``OverflowError``, ``UnicodeEncodeError``
for a ``str`` that is not valid UTF-8, and the ``ValueError`` "expected tuple
of length N" for a tuple of the wrong length) may come out. Never
``pyo3_runtime.PanicException`` (a ``BaseException``) and never
``InternalError`` (a caught panic): both mean a bug.

The entry points are enumerated from the module, so a new function or method
fails :func:`test_every_entry_point_is_covered` until it is added here.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_core import _native
from maestro_core.errors import InternalError, MaestroError

ALLOWED = (MaestroError, TypeError, OverflowError, UnicodeEncodeError)

FUNCTIONS = {
    "build_manifest", "compare_manifest", "empty_root", "generate_key", "hash_bytes", "hash_file",
    "hash_files", "leaf_hash", "node_hash", "open_manifest", "open_note", "parse_checkpoint",
    "parse_public_key", "public_key_of", "scan_directory", "sign_entries", "verify_checkpoint",
    "verify_consistency", "verify_inclusion", "select_tests",
}
CLASSES = {"MerkleTree", "Store", "Duel"}
FUNCTIONS |= {"preference_regrets"}
FUNCTIONS |= {"rego_load", "rego_from_modules", "rego_parse_decisions", "rego_mutants", "rego_mutate", "rego_to_v1"}
CLASSES |= {"RegoEvaluator"}
FUNCTIONS |= {"shapley_exact", "shapley_interactions", "shapley_sample"}
CLASSES |= {"SparseGame", "CallableGame"}
CLASSES |= {"Hypergraph", "KHop"}
HYPERGRAPH_METHODS = {"csr", "edge", "khop", "khop_each", "n_edges", "n_nodes"}
KHOP_METHODS = {"dist", "path", "rounds"}
FUNCTIONS |= {"parse_guards", "compile_guards", "compile_guard_ast", "engine_version"}
CLASSES |= {"CompiledGuard", "EventSet", "GuardMatcher", "SpanFeed"}
CONSTANTS = {"KEY_HASH_SEED"}
COMPILED_GUARD_METHODS = {"canonical", "contiguity", "description", "digest", "name", "per"}
EVENTSET_METHODS = {
    "event", "from_otlp_json", "from_otlp_protobuf", "from_records", "from_spans", "origin", "read", "records_json",
    "select", "times",
}
MATCHER_METHODS = {
    "advance_watermark", "drain", "drain_arrays", "drain_late", "feed_arrays", "feed_events", "feed_rows",
    "feed_spans", "finish", "guard_names", "stats", "watermark",
}
SPANFEED_METHODS = {"attributes", "close", "closed", "errors", "events_of", "flush", "on_end", "push", "queued", "wait"}
# Classes Python cannot construct (returned by other calls only).
NO_CONSTRUCTOR = {"KHop", "CompiledGuard", "EventSet"}
MERKLE_METHODS = {
    "algorithm", "append", "append_leaf_hash", "consistency_proof", "from_leaf_hashes", "from_leaf_rows",
    "from_leaves", "inclusion_proof", "inclusion_proofs", "leaf_hashes", "root", "size",
}
STORE_METHODS = {
    "card", "cards", "checkpoints", "log_append", "log_append_many", "log_checkpoint", "log_consistency",
    "log_entry", "log_find", "log_inclusion", "log_root", "log_size", "log_verify", "path", "put_card",
    "genome_put", "genome", "genomes", "genome_count", "genome_lineage", "tournament_create", "tournament",
    "tournaments", "duel_record", "tournament_save", "duels",
}
DUEL_METHODS = {
    "algorithm", "alpha", "arms", "beats_probability", "best", "confidence", "copy", "from_json", "pending",
    "record", "seed", "select", "simulate", "steps", "to_json", "wins",
}
REGO_METHODS = {"eval_many"}
SPARSE_METHODS = {"n_players", "measured", "to_table"}
CALLABLE_METHODS = {"n_players", "batch_size", "evaluations", "clear_cache", "to_table"}
CLASS_METHODS = {
    "MerkleTree": MERKLE_METHODS, "Store": STORE_METHODS, "Duel": DUEL_METHODS, "RegoEvaluator": REGO_METHODS,
    "SparseGame": SPARSE_METHODS, "CallableGame": CALLABLE_METHODS,
    "Hypergraph": HYPERGRAPH_METHODS, "KHop": KHOP_METHODS,
    "CompiledGuard": COMPILED_GUARD_METHODS, "EventSet": EVENTSET_METHODS, "GuardMatcher": MATCHER_METHODS,
    "SpanFeed": SPANFEED_METHODS,
}


def _public(obj: Any) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_every_entry_point_is_covered() -> None:
    assert _public(_native) == FUNCTIONS | CLASSES | CONSTANTS, "update this test for new native entry points"
    assert set(CLASS_METHODS) == CLASSES
    for cls, methods in CLASS_METHODS.items():
        assert _public(getattr(_native, cls)) == methods, cls
    assert set(SPECS) == FUNCTIONS | (CLASSES - NO_CONSTRUCTOR) | {f"{c}.{m}" for c, ms in CLASS_METHODS.items() for m in ms}


def check(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``f``; return its result or the (allowed) exception it raised."""
    try:
        return f(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - this is the point of the test
        where = f"{getattr(f, '__qualname__', f)}{_short(args)}"
        assert type(e).__name__ != "PanicException", f"{where} panicked: {e}"
        assert not isinstance(e, InternalError), f"{where} hit a bug: {e}"
        pyo3_tuple_len = type(e) is ValueError and str(e).startswith("expected tuple of length")
        assert isinstance(e, ALLOWED) or pyo3_tuple_len, f"{where} raised {type(e).__module__}.{type(e).__name__}: {e}"
        if isinstance(e, MaestroError):
            assert str(e).strip(), f"{where}: {type(e).__name__} without a message"
        return e


def _short(args: tuple[Any, ...]) -> str:
    r = repr(args)
    return r if len(r) < 200 else r[:200] + "…"


# ------------------------------------------------------------------ fixtures: valid values


class Ctx:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.dir = tmp / "dir"
        self.dir.mkdir()
        (self.dir / "a.txt").write_bytes(b"alpha")
        (self.dir / "sub").mkdir()
        (self.dir / "sub" / "b.bin").write_bytes(os.urandom(100))
        self.file = self.dir / "a.txt"
        self.priv, self.pub, self.vkey = _native.generate_key("robust.example/log")
        self.env, _ = _native.build_manifest(str(self.dir), self.priv, "sha256")
        self.store = _native.Store(str(tmp / "store"))
        for i in range(9):
            self.store.log_append("k", f"entry {i}".encode())
        self.cp = self.store.log_checkpoint(self.priv)
        self.tree = _native.MerkleTree.from_leaves([b"a", b"b", b"c", b"d", b"e"], "sha256")
        self.leaf = self.tree.leaf_hashes()[1].tobytes()
        self.root = self.tree.root()
        self.proof = self.tree.inclusion_proof(1)
        self.cproof = self.tree.consistency_proof(2)
        self.d32 = b"\x07" * 32
        self.hg = _native.Hypergraph(3, np.array([0, 2, 4]), np.array([0, 1, 1, 2]), np.array([1.0, 2.0]))
        self.kh = self.hg.khop(np.array([0]), 2)
        self.entries = [("a.txt", 5, self.d32), ("b", 0, self.d32)]
        # special files
        self.fifo = tmp / "fifo"
        os.mkfifo(self.fifo)
        self.loop = tmp / "loop"
        self.loop.symlink_to(self.loop)
        self.dangling = tmp / "dangling"
        self.dangling.symlink_to(tmp / "nowhere")
        # dueling bandits and the registry
        self.duel = _native.Duel("rucb", 4, 1)
        self.matrix = np.array([[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7], [0.3, 0.4, 0.5, 0.6], [0.2, 0.3, 0.4, 0.5]])
        self.store.genome_put([("g1", "{}", "seed", "{}", [], 10, "t")])
        self.store.tournament_create("t1", "{}", self.duel.to_json())
        self._tournaments = 0
        # Rego
        self.rego_dir = tmp / "rego"
        self.rego_dir.mkdir()
        self.rego_text = "package p\nimport rego.v1\nallow if input.x > 1\n"
        (self.rego_dir / "p.rego").write_text(self.rego_text)
        (self.rego_dir / "p_test.rego").write_text(
            'package p\nimport rego.v1\ntest_a if allow with input as {"x": 2}\n'
        )
        self.rego_set = _native.rego_load([str(self.rego_dir)], [])
        self.decisions, _ = _native.rego_parse_decisions(
            '{"input": {"x": 2}, "expected": true, "query": "data.p.allow"}\n', None
        )
        self.rego_opts = json.dumps({"threads": 1, "timeout_ms": 500, "equivalence_samples": 4, "seed": 1,
                                     "operators": ["relational_op"], "max_mutants": 20})
        self.rego_eval = _native.RegoEvaluator(self.rego_set, None, 1000)
        # SpecLive guards
        self.guard_src = "guard g { match save -> no success within 2s }"
        self.guards = _native.compile_guards(self.guard_src, "<t>")
        self.cguard = self.guards[0]
        self.guard_ast = _native.parse_guards(self.guard_src, "<t>")[0]
        self.records = '[{"time": 1, "name": "save", "attributes": {"trace_id": "a"}}]'
        self.events = _native.EventSet.from_records(self.records, "<r>")
        self.matcher = _native.GuardMatcher(self.guards, 0, 1000)
        self.feed = _native.SpanFeed(_native.GuardMatcher(self.guards, 0, 10), 0, 1_000_000)
        self.closed_feed = _native.SpanFeed(_native.GuardMatcher(self.guards, 0, 10), 0, 1_000_000)
        self.closed_feed.close()
        try:
            from opentelemetry.sdk.trace import TracerProvider

            self.span: Any = TracerProvider().get_tracer("t").start_span("save")
            self.span.end()
        except ImportError:  # the otel extra is not installed
            self.span = None
        (tmp / "trace.jsonl").write_text("")
        self.trace_file = tmp / "trace.jsonl"
        # Shapley
        self.table = np.arange(8, dtype=np.float64)
        masks = np.array([[(m >> i) & 1 for i in range(3)] for m in range(8)], dtype=np.uint8)
        self.sparse = _native.SparseGame(masks, self.table.copy())
        self.masks = masks
        self.callable = _native.CallableGame(lambda b: b.sum(axis=1).astype(float), 3, 16)

    def fresh_tournament(self) -> str:
        self._tournaments += 1
        tid = f"fresh-{self._tournaments}"
        self.store.tournament_create(tid, "{}", self.duel.to_json())
        return tid


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory):
    """Valid values; the working directory is a temporary folder, since some
    malformed paths ("", b"\\xff") are relative and stores get created there."""
    tmp = tmp_path_factory.mktemp("robust")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        yield Ctx(tmp)
    finally:
        os.chdir(cwd)


# ------------------------------------------------------------------ malformed values per argument kind

JUNK: list[Any] = [None, True, 1.5, float("nan"), object(), [], {}, (), b"", "", "\ud800", 2**64, -1]
U64 = [-1, -(2**63), 2**63, 2**64 - 1, 2**64, 2**200, 1.5, "1", b"1", None, [], np.uint64(3), np.int64(-3)]
DIGEST = [b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 100_000, bytearray(32), "a" * 32, [0] * 32, None, 32]
BYTES = [b"", b"\xff" * 10, bytearray(b"x"), memoryview(b"x"), "str", 12, None, [1, 2], b"\x00" * (1 << 20)]
ALG = ["", "md5", "SHA256 ", "blake3\x00", "\ud800", None, 1, b"sha256", "x" * 10_000]
TEXT = [
    "", "\x00", "\ud800", "x" * 200_000, "a+b+c", "a+00000000+", "\u2014", "\n\n\n", None, 5, b"bytes",
    "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    "# name: \n-----BEGIN PRIVATE KEY-----\n",
]
PROOF = [[b""], [b"\x00" * 31], None, "abc", [None], [1, 2], [b"\x00" * 32] * 200, b"\x00" * 32, [bytearray(32)], [b"\x00" * 33]]
U64_ARRAY = [
    np.array([-1]), np.array([1.5]), np.array([[1]], dtype=np.uint64), [1, 2], np.array([2**63], dtype=np.uint64),
    np.array([2**64 - 1], dtype=np.uint64), np.array([], dtype=np.uint64), np.arange(10, dtype=np.uint64)[::3],
    np.array(["a"]), None,
]
F64_ARRAY = [
    np.array([1.0]), np.array([np.nan, 1.0]), np.array([-1.0, 0.0]), np.array([np.inf, 1.0]), np.zeros((2, 2)),
    np.array([], dtype=float), np.array([1, 2], dtype=np.int64), np.arange(6, dtype=float)[::2], None,
]
INDEX_ARRAY = U64_ARRAY + [
    np.array([0, 5, 1], dtype=np.int32), np.array([0, 2**40], dtype=np.int64), np.array([3, 0], dtype=np.int64),
    np.array([0, 1, 2], dtype=np.uint32), np.arange(10, dtype=np.int64)[::2],
]
ARRAY2 = [
    np.zeros((4, 64), dtype=np.uint8)[:, ::2], np.zeros((8, 32), dtype=np.uint8)[::2],
    np.asfortranarray(np.arange(96, dtype=np.uint8).reshape(3, 32)), np.zeros((3, 32), dtype=np.uint8)[::-1],
    np.zeros((2, 31), dtype=np.uint8), np.zeros((0, 0), dtype=np.uint8), np.zeros((0, 32), dtype=np.uint8),
    np.zeros(32, dtype=np.uint8), np.zeros((1, 1, 32), dtype=np.uint8), np.zeros((2, 32)), np.zeros((2, 32), dtype=object),
    np.zeros((2, 32), dtype=bool), np.uint8(3), [[0] * 32], None, b"\x00" * 32, np.zeros((100_000, 0), dtype=np.uint8),
]
LEAVES = [[b""], [], [bytearray(b"x")], ["str"], [None], None, b"abc", "abc", [b"x"] * 10_000, [[1, 2]]]
ENTRIES = [
    [("a", 1, b"x")], [("a", -1, b"\x00" * 32)], [("b", 0, b"\x00" * 32), ("a", 0, b"\x00" * 32)],
    [("a", 0, b"\x00" * 32), ("a", 0, b"\x00" * 32)], [("", 0, b"\x00" * 32)], [("../x", 0, b"\x00" * 32)],
    [("/abs", 0, b"\x00" * 32)], [("a\\b", 0, b"\x00" * 32)], [("a\x00", 0, b"\x00" * 32)], None, [1],
    [("a", 2**64, b"\x00" * 32)], [("\ud800", 0, b"\x00" * 32)], [],
]
F64_MATRIX = [
    np.zeros((3, 4)), np.full((3, 3), np.nan), np.full((3, 3), 2.0), np.full((3, 3), -1.0), np.zeros((0, 0)),
    np.zeros((4, 4))[::2, ::2], np.asfortranarray(np.full((3, 3), 0.5)), np.full((3, 3), 0.5, dtype=np.float32),
    np.full((3, 3, 3), 0.5), np.full(3, 0.5), np.full((3, 3), np.inf), np.full((2000, 2000), 0.5)[:1, :1], [[0.5]],
]
ROWS = [
    [("g", "{}", "op", "{}", ["missing-parent"], 1, "t")], [("", "", "", "", [], 0, "")], [("g", "{}", "op", "{}", [], -1, "t")],
    [("g", "{}", "op", "{}", None, 1, "t")], [("g",)], [], [("\ud800", "{}", "op", "{}", [], 1, "t")],
    [("g2", "{}", "op", "{}", ["g2"], 1, "t")],
]
F64 = [float("nan"), float("inf"), -1.0, 0.0, 1e308, 2**64, "0.5"]
BOOL = ["yes", 2, None, [], np.bool_(True)]
JSON_TEXT = ["{", "[", "null", "[]", "{}", '{"modules": 3}', "[1, 2]", '[{"path": "", "text": "", "is_test": 1}]',
             '{"x": ' * 10_000, "\ud800", '"str"', "1e999"]
RULES = [[""], ["nope"], "abc", [None], [1]]
REPLACE = [(0,), (99, "package q"), (0, "package p\nallow if {"), (-1, ""), ("a", "b"), (2**64, "x")]
CALLBACK = [1, "f", lambda: None, lambda a, b: 1 / 0]
F64_TABLE = [
    np.zeros(3), np.zeros(0), np.full(4, np.nan), np.full(4, np.inf), np.zeros(8, dtype=np.float32), np.zeros((2, 4)),
    np.zeros(16)[::2], np.zeros(2**27), [0.0, 1.0], None, np.zeros(1),
]
U8_MASKS = [
    np.zeros((8, 3), dtype=np.uint8) + 2, np.zeros((0, 3), dtype=np.uint8), np.zeros((8, 40), dtype=np.uint8),
    np.zeros((8, 6), dtype=np.uint8)[:, ::2], np.zeros(3, dtype=np.uint8), np.zeros((8, 3), dtype=np.int64), None,
]
I64_1D = [
    np.array([1.5]), np.array([[1]], dtype=np.int64), np.arange(4, dtype=np.int64)[::2], np.array([2**62], dtype=np.uint64),
    np.array([], dtype=np.int64), [1], None, np.array([-(2**63)], dtype=np.int64), np.array([2**63 - 1], dtype=np.int64),
]
ROWS_EV = [[(1, "save")], [("t", "save", {})], [(1, "save", {"x": object()})], [(1, 2, {})], [(-1, "save", {})],
           [(2**63, "save", {})], [(1, "save", {"x": [[1]]})], None, "rows", [None]]
GUARD_LIST = [[], [1], [None], "g", None]
ATTRS = [{"x": np.array([1.5, 2.0])}, {"x": (np.array([0]), [1])}, {"x": "str"}, {1: np.array([1])}, {"x": None}, 5]
GAMES = [np.zeros(3), np.full(8, np.nan), "game", None, 3]
EVALUATORS = [lambda b: "x", lambda b: [1.0], lambda b: np.full(len(b), np.nan), lambda b: None, 1, "f"]
ITEMS = [[("", b"x")], [("k", "str")], None, [1], [("k", b"x", 3)], [], [("\ud800", b"x")]]


def path_pool(c: Ctx) -> list[Any]:
    return [
        "", "/nonexistent/zzz", "a\x00b", "\ud800", "caf\udce9", b"/nonexistent", b"\xff\xfe", 7, None,
        str(c.fifo), str(c.loop), str(c.dangling), str(c.file), Path(c.file), "/proc/self/status", "/dev/null",
    ]


def dir_pool(c: Ctx) -> list[Any]:
    return ["", "/nonexistent/zzz", "a\x00b", "\ud800", b"\xff", 7, None, str(c.fifo), str(c.loop), str(c.dangling), str(c.file)]


def paths_pool(c: Ctx) -> list[Any]:
    return [[p] for p in path_pool(c)] + [str(c.file), None, [str(c.file), 3], b"abc"]


# Each entry: name -> (callable from ctx, valid args from ctx, kind of each argument)
SPECS: dict[str, tuple[Callable[[Ctx], Callable[..., Any]], Callable[[Ctx], list[Any]], list[str]]] = {
    "hash_bytes": (lambda c: _native.hash_bytes, lambda c: [b"data", "sha256"], ["bytes", "alg"]),
    "hash_file": (lambda c: _native.hash_file, lambda c: [str(c.file), "blake3"], ["path", "alg"]),
    "hash_files": (lambda c: _native.hash_files, lambda c: [[str(c.file)], "sha256"], ["paths", "alg"]),
    "leaf_hash": (lambda c: _native.leaf_hash, lambda c: [b"x", "sha256"], ["bytes", "alg"]),
    "node_hash": (lambda c: _native.node_hash, lambda c: [c.d32, c.d32, "sha256"], ["digest", "digest", "alg"]),
    "empty_root": (lambda c: _native.empty_root, lambda c: ["sha256"], ["alg"]),
    "verify_inclusion": (
        lambda c: _native.verify_inclusion,
        lambda c: [1, 5, c.leaf, c.proof, c.root, "sha256"],
        ["u64", "u64", "digest", "proof", "digest", "alg"],
    ),
    "verify_consistency": (
        lambda c: _native.verify_consistency,
        lambda c: [2, 5, c.tree.root(2), c.root, c.cproof, "sha256"],
        ["u64", "u64", "digest", "digest", "proof", "alg"],
    ),
    "generate_key": (lambda c: _native.generate_key, lambda c: ["a.b/c"], ["text"]),
    "public_key_of": (lambda c: _native.public_key_of, lambda c: [c.priv], ["text"]),
    "parse_public_key": (lambda c: _native.parse_public_key, lambda c: [c.pub], ["text"]),
    "build_manifest": (lambda c: _native.build_manifest, lambda c: [str(c.dir), c.priv, "blake3"], ["dir", "text", "alg"]),
    "scan_directory": (lambda c: _native.scan_directory, lambda c: [str(c.dir)], ["dir"]),
    "sign_entries": (lambda c: _native.sign_entries, lambda c: [c.entries, c.priv, "blake3"], ["entries", "text", "alg"]),
    "open_manifest": (lambda c: _native.open_manifest, lambda c: [c.env, c.pub], ["bytes", "text"]),
    "compare_manifest": (lambda c: _native.compare_manifest, lambda c: [c.env, c.pub, str(c.dir)], ["bytes", "text", "dir"]),
    "verify_checkpoint": (lambda c: _native.verify_checkpoint, lambda c: [c.cp, c.pub], ["text", "text"]),
    "parse_checkpoint": (lambda c: _native.parse_checkpoint, lambda c: [c.cp], ["text"]),
    "open_note": (lambda c: _native.open_note, lambda c: [c.cp, c.pub], ["text", "text"]),
    "MerkleTree": (lambda c: _native.MerkleTree, lambda c: ["sha256"], ["alg"]),
    "MerkleTree.from_leaf_hashes": (
        lambda c: _native.MerkleTree.from_leaf_hashes, lambda c: [np.zeros((3, 32), dtype=np.uint8), "sha256"], ["array2", "alg"]
    ),
    "MerkleTree.from_leaf_rows": (
        lambda c: _native.MerkleTree.from_leaf_rows, lambda c: [np.zeros((3, 5), dtype=np.uint8), "sha256"], ["array2", "alg"]
    ),
    "MerkleTree.from_leaves": (lambda c: _native.MerkleTree.from_leaves, lambda c: [[b"a"], "sha256"], ["leaves", "alg"]),
    "MerkleTree.append": (lambda c: _native.MerkleTree("sha256").append, lambda c: [b"x"], ["bytes"]),
    "MerkleTree.append_leaf_hash": (lambda c: _native.MerkleTree("sha256").append_leaf_hash, lambda c: [c.d32], ["digest"]),
    "MerkleTree.root": (lambda c: c.tree.root, lambda c: [3], ["u64"]),
    "MerkleTree.leaf_hashes": (lambda c: c.tree.leaf_hashes, lambda c: [], []),
    "MerkleTree.inclusion_proof": (lambda c: c.tree.inclusion_proof, lambda c: [1, 5], ["u64", "u64"]),
    "MerkleTree.inclusion_proofs": (
        lambda c: c.tree.inclusion_proofs, lambda c: [np.array([0, 4], dtype=np.uint64), 5], ["u64array", "u64"]
    ),
    "MerkleTree.consistency_proof": (lambda c: c.tree.consistency_proof, lambda c: [2, 5], ["u64", "u64"]),
    "MerkleTree.algorithm": (lambda c: (lambda: c.tree.algorithm), lambda c: [], []),
    "MerkleTree.size": (lambda c: (lambda: c.tree.size), lambda c: [], []),
    "Store": (lambda c: _native.Store, lambda c: [str(c.tmp / "store2")], ["dir"]),
    "Store.card": (lambda c: c.store.card, lambda c: ["dc-"], ["text"]),
    "Store.cards": (lambda c: c.store.cards, lambda c: ["k", 5], ["text", "u64"]),
    "Store.checkpoints": (lambda c: c.store.checkpoints, lambda c: [], []),
    "Store.log_append": (lambda c: c.store.log_append, lambda c: ["kind", b"body"], ["text", "bytes"]),
    "Store.log_append_many": (lambda c: c.store.log_append_many, lambda c: [[("k", b"b")]], ["items"]),
    "Store.log_checkpoint": (lambda c: c.store.log_checkpoint, lambda c: [c.priv], ["text"]),
    "Store.log_consistency": (lambda c: c.store.log_consistency, lambda c: [2, 5], ["u64", "u64"]),
    "Store.log_entry": (lambda c: c.store.log_entry, lambda c: [3], ["u64"]),
    "Store.log_find": (lambda c: c.store.log_find, lambda c: [c.d32], ["digest"]),
    "Store.log_inclusion": (lambda c: c.store.log_inclusion, lambda c: [1, 5], ["u64", "u64"]),
    "Store.log_root": (lambda c: c.store.log_root, lambda c: [4], ["u64"]),
    "Store.log_size": (lambda c: c.store.log_size, lambda c: [], []),
    "Store.log_verify": (lambda c: c.store.log_verify, lambda c: [], []),
    "Store.path": (lambda c: (lambda: c.store.path), lambda c: [], []),
    "Store.genome_put": (
        lambda c: c.store.genome_put, lambda c: [[("g3", "{}", "op", "{}", ["g1"], 5, "t")]], ["rows"]
    ),
    "Store.genome": (lambda c: c.store.genome, lambda c: ["g1"], ["text"]),
    "Store.genomes": (lambda c: c.store.genomes, lambda c: [10], ["u64"]),
    "Store.genome_count": (lambda c: c.store.genome_count, lambda c: [], []),
    "Store.genome_lineage": (lambda c: c.store.genome_lineage, lambda c: ["g1", False, 5], ["text", "bool", "u64"]),
    "Store.tournament_create": (
        lambda c: c.store.tournament_create, lambda c: ["t2", "{}", c.duel.to_json()], ["text", "text", "text"]
    ),
    "Store.tournament": (lambda c: c.store.tournament, lambda c: ["t1"], ["text"]),
    "Store.tournaments": (lambda c: c.store.tournaments, lambda c: [], []),
    "Store.duel_record": (
        lambda c: c.store.duel_record,
        lambda c: [c.fresh_tournament(), 0, 0, 1, "test", None, "{}", c.duel.to_json()],
        ["text", "u64", "u64", "u64", "text", "text", "text", "text"],
    ),
    "Store.tournament_save": (
        lambda c: c.store.tournament_save, lambda c: [c.fresh_tournament(), 0, c.duel.to_json(), None],
        ["text", "u64", "text", "text"],
    ),
    "Store.duels": (lambda c: c.store.duels, lambda c: ["t1"], ["text"]),
    "Duel": (lambda c: _native.Duel, lambda c: ["dts", 5, 3, None, None], ["text", "u64", "u64", "f64", "f64"]),
    "Duel.algorithm": (lambda c: (lambda: c.duel.algorithm), lambda c: [], []),
    "Duel.alpha": (lambda c: (lambda: c.duel.alpha), lambda c: [], []),
    "Duel.arms": (lambda c: (lambda: c.duel.arms), lambda c: [], []),
    "Duel.seed": (lambda c: (lambda: c.duel.seed), lambda c: [], []),
    "Duel.steps": (lambda c: (lambda: c.duel.steps), lambda c: [], []),
    "Duel.pending": (lambda c: (lambda: c.duel.pending), lambda c: [], []),
    "Duel.beats_probability": (lambda c: c.duel.beats_probability, lambda c: [0, 1], ["u64", "u64"]),
    "Duel.best": (lambda c: c.duel.best, lambda c: [], []),
    "Duel.confidence": (lambda c: c.duel.confidence, lambda c: [2], ["u64"]),
    "Duel.copy": (lambda c: c.duel.copy, lambda c: [], []),
    "Duel.from_json": (lambda c: _native.Duel.from_json, lambda c: [c.duel.to_json()], ["text"]),
    "Duel.to_json": (lambda c: c.duel.to_json, lambda c: [], []),
    "Duel.record": (lambda c: c.duel.record, lambda c: [0, 1], ["u64", "u64"]),
    "Duel.select": (lambda c: c.duel.select, lambda c: [], []),
    "Duel.wins": (lambda c: c.duel.wins, lambda c: [], []),
    "Duel.simulate": (
        lambda c: _native.Duel("ccb", 4, 2).simulate, lambda c: [c.matrix, 50, 1, 5], ["f64matrix", "u64", "u64", "u64"]
    ),
    "preference_regrets": (lambda c: _native.preference_regrets, lambda c: [c.matrix], ["f64matrix"]),
    "rego_load": (lambda c: _native.rego_load, lambda c: [[str(c.rego_dir)], []], ["paths", "paths"]),
    "rego_from_modules": (
        lambda c: _native.rego_from_modules,
        lambda c: [json.dumps([{"path": "p.rego", "text": c.rego_text, "is_test": False}]), "{}"],
        ["json", "json"],
    ),
    "rego_parse_decisions": (
        lambda c: _native.rego_parse_decisions, lambda c: ['{"input": {}, "expected": false}\n', "data.p.allow"],
        ["json", "text"],
    ),
    "rego_mutants": (lambda c: _native.rego_mutants, lambda c: [c.rego_set, None], ["json", "rules"]),
    "rego_mutate": (
        lambda c: _native.rego_mutate,
        lambda c: [c.rego_set, c.decisions, c.rego_opts, None, None],
        ["json", "json", "json", "store", "callback"],
    ),
    "rego_to_v1": (lambda c: _native.rego_to_v1, lambda c: ["p.rego", "package p\nallow { input.x > 1 }\n"],
                   ["text", "text"]),
    "RegoEvaluator": (lambda c: _native.RegoEvaluator, lambda c: [c.rego_set, None, 1000], ["json", "replace", "u64"]),
    "RegoEvaluator.eval_many": (
        lambda c: c.rego_eval.eval_many, lambda c: ["data.p.allow", ['{"x": 2}']], ["text", "rules"]
    ),
    "parse_guards": (lambda c: _native.parse_guards, lambda c: [c.guard_src, "<t>"], ["text", "text"]),
    "compile_guards": (lambda c: _native.compile_guards, lambda c: [c.guard_src, "<t>"], ["text", "text"]),
    "compile_guard_ast": (lambda c: _native.compile_guard_ast, lambda c: [c.guard_ast], ["json"]),
    "engine_version": (lambda c: _native.engine_version, lambda c: [], []),
    "CompiledGuard.canonical": (lambda c: c.cguard.canonical, lambda c: [], []),
    "CompiledGuard.contiguity": (lambda c: (lambda: c.cguard.contiguity), lambda c: [], []),
    "CompiledGuard.description": (lambda c: (lambda: c.cguard.description), lambda c: [], []),
    "CompiledGuard.digest": (lambda c: (lambda: c.cguard.digest), lambda c: [], []),
    "CompiledGuard.name": (lambda c: (lambda: c.cguard.name), lambda c: [], []),
    "CompiledGuard.per": (lambda c: (lambda: c.cguard.per), lambda c: [], []),
    "EventSet.event": (lambda c: c.events.event, lambda c: [0], ["u64"]),
    "EventSet.from_otlp_json": (lambda c: _native.EventSet.from_otlp_json, lambda c: ["", "<x>"], ["json", "text"]),
    "EventSet.from_otlp_protobuf": (lambda c: _native.EventSet.from_otlp_protobuf, lambda c: [b"", "<x>"], ["bytes", "text"]),
    "EventSet.from_records": (lambda c: _native.EventSet.from_records, lambda c: [c.records, "<r>"], ["json", "text"]),
    "EventSet.from_spans": (lambda c: _native.EventSet.from_spans, lambda c: [[]], ["events"]),
    "EventSet.origin": (lambda c: (lambda: c.events.origin), lambda c: [], []),
    "EventSet.read": (lambda c: _native.EventSet.read, lambda c: [str(c.trace_file)], ["path"]),
    "EventSet.records_json": (lambda c: c.events.records_json, lambda c: [None], ["u64array"]),
    "EventSet.select": (lambda c: c.events.select, lambda c: ["trace_id", "a", 0, 10], ["text", "text", "u64", "u64"]),
    "EventSet.times": (lambda c: c.events.times, lambda c: [], []),
    "GuardMatcher": (lambda c: _native.GuardMatcher, lambda c: [c.guards, 0, 1000], ["guards", "u64", "u64"]),
    "GuardMatcher.advance_watermark": (
        lambda c: _native.GuardMatcher(c.guards, 0, 10).advance_watermark, lambda c: [5], ["u64"]
    ),
    "GuardMatcher.drain": (lambda c: c.matcher.drain, lambda c: [], []),
    "GuardMatcher.drain_arrays": (lambda c: c.matcher.drain_arrays, lambda c: [], []),
    "GuardMatcher.drain_late": (lambda c: c.matcher.drain_late, lambda c: [], []),
    "GuardMatcher.feed_arrays": (
        lambda c: _native.GuardMatcher(c.guards, 0, 10).feed_arrays,
        lambda c: [np.array([10], dtype=np.int64), np.array([1], dtype=np.int64), np.array([0], dtype=np.int64),
                   ["save"], None],
        ["i64", "i64", "i64", "rules", "attrs"],
    ),
    "GuardMatcher.feed_events": (lambda c: _native.GuardMatcher(c.guards, 0, 10).feed_events, lambda c: [c.events], ["events"]),
    "GuardMatcher.feed_rows": (
        lambda c: _native.GuardMatcher(c.guards, 0, 10).feed_rows, lambda c: [[(5, "save", {"trace_id": "a"})]], ["evrows"]
    ),
    "GuardMatcher.feed_spans": (lambda c: _native.GuardMatcher(c.guards, 0, 10).feed_spans, lambda c: [[]], ["events"]),
    "GuardMatcher.finish": (lambda c: _native.GuardMatcher(c.guards, 0, 10).finish, lambda c: [], []),
    "GuardMatcher.guard_names": (lambda c: (lambda: c.matcher.guard_names), lambda c: [], []),
    "GuardMatcher.stats": (lambda c: c.matcher.stats, lambda c: [], []),
    "GuardMatcher.watermark": (lambda c: (lambda: c.matcher.watermark), lambda c: [], []),
    "SpanFeed": (
        lambda c: _native.SpanFeed, lambda c: [_native.GuardMatcher(c.guards, 0, 10), 0, 1_000_000], ["matcher", "u64", "u64"]
    ),
    "SpanFeed.attributes": (lambda c: (lambda: c.feed.attributes), lambda c: [], []),
    "SpanFeed.close": (lambda c: _native.SpanFeed(_native.GuardMatcher(c.guards, 0, 10), 0, 1_000_000).close, lambda c: [], []),
    "SpanFeed.closed": (lambda c: (lambda: c.feed.closed), lambda c: [], []),
    "SpanFeed.errors": (lambda c: c.feed.errors, lambda c: [], []),
    "SpanFeed.events_of": (lambda c: c.feed.events_of, lambda c: [c.span], ["events"]),
    "SpanFeed.flush": (lambda c: c.feed.flush, lambda c: [1.0], ["f64"]),
    "SpanFeed.push": (lambda c: c.feed.push, lambda c: [c.span], ["events"]),
    "SpanFeed.on_end": (lambda c: c.feed.on_end, lambda c: [c.span], ["events"]),
    "SpanFeed.queued": (lambda c: (lambda: c.feed.queued), lambda c: [], []),
    "SpanFeed.wait": (lambda c: c.closed_feed.wait, lambda c: [0.01], ["f64"]),
    "shapley_exact": (lambda c: _native.shapley_exact, lambda c: [c.table, 1], ["table", "u64"]),
    "shapley_interactions": (lambda c: _native.shapley_interactions, lambda c: [c.table, None], ["table", "u64"]),
    "shapley_sample": (
        lambda c: _native.shapley_sample,
        lambda c: [c.table, "permutation", 64, None, 0.95, 1, 0, 0, 1],
        ["game", "text", "u64", "f64", "f64", "u64", "u64", "u64", "u64"],
    ),
    "SparseGame": (lambda c: _native.SparseGame, lambda c: [c.masks, c.table], ["masks", "table"]),
    "SparseGame.n_players": (lambda c: (lambda: c.sparse.n_players), lambda c: [], []),
    "SparseGame.measured": (lambda c: (lambda: c.sparse.measured), lambda c: [], []),
    "SparseGame.to_table": (lambda c: c.sparse.to_table, lambda c: [], []),
    "CallableGame": (
        lambda c: _native.CallableGame, lambda c: [lambda b: b.sum(axis=1).astype(float), 3, 4], ["evaluate", "u64", "u64"]
    ),
    "CallableGame.n_players": (lambda c: (lambda: c.callable.n_players), lambda c: [], []),
    "CallableGame.batch_size": (lambda c: (lambda: c.callable.batch_size), lambda c: [], []),
    "CallableGame.evaluations": (lambda c: (lambda: c.callable.evaluations), lambda c: [], []),
    "CallableGame.clear_cache": (lambda c: c.callable.clear_cache, lambda c: [], []),
    "CallableGame.to_table": (lambda c: c.callable.to_table, lambda c: [], []),
    "select_tests": (
        lambda c: _native.select_tests, lambda c: [np.zeros((2, 3)), np.ones(3), 5.0, 1.0, False],
        ["cover", "f64array", "u64", "u64", "u64"],
    ),
    "Hypergraph": (
        lambda c: _native.Hypergraph, lambda c: [3, np.array([0, 2, 4]), np.array([0, 1, 1, 2]), np.array([1.0, 2.0])],
        ["u64", "index", "index", "f64array"],
    ),
    "Hypergraph.edge": (lambda c: c.hg.edge, lambda c: [1], ["u64"]),
    "Hypergraph.csr": (lambda c: c.hg.csr, lambda c: [], []),
    "Hypergraph.khop": (lambda c: c.hg.khop, lambda c: [np.array([0, 2]), 3], ["index", "u64"]),
    "Hypergraph.khop_each": (lambda c: c.hg.khop_each, lambda c: [np.array([0, 2]), 3], ["index", "u64"]),
    "Hypergraph.n_nodes": (lambda c: (lambda: c.hg.n_nodes), lambda c: [], []),
    "Hypergraph.n_edges": (lambda c: (lambda: c.hg.n_edges), lambda c: [], []),
    "KHop.dist": (lambda c: c.kh.dist, lambda c: [], []),
    "KHop.path": (lambda c: c.kh.path, lambda c: [2], ["u64"]),
    "KHop.rounds": (lambda c: (lambda: c.kh.rounds), lambda c: [], []),
    "Store.put_card": (
        lambda c: c.store.put_card,
        lambda c: ["dc-1", "k.k", "s", "2026-01-01T00:00:00Z", "{}", b"{}"],
        ["text", "text", "text", "text", "text", "bytes"],
    ),
}


def pool(kind: str, c: Ctx) -> list[Any]:
    table: dict[str, list[Any]] = {
        "u64": U64, "digest": DIGEST, "bytes": BYTES, "alg": ALG, "text": TEXT, "proof": PROOF,
        "u64array": U64_ARRAY, "array2": ARRAY2, "leaves": LEAVES, "entries": ENTRIES, "items": ITEMS,
        "f64matrix": F64_MATRIX, "rows": ROWS, "f64": F64, "bool": BOOL, "json": JSON_TEXT + TEXT,
        "rules": RULES, "replace": REPLACE, "callback": CALLBACK, "store": [1, "store", object()],
        "table": F64_TABLE, "masks": U8_MASKS, "game": GAMES, "evaluate": EVALUATORS,
        "i64": I64_1D, "evrows": ROWS_EV, "guards": GUARD_LIST, "attrs": ATTRS, "events": [1, "e", None, []],
        "matcher": [1, "m", None, object()],
        "f64array": F64_ARRAY, "index": INDEX_ARRAY,
        "cover": ARRAY2 + [np.zeros((2, 3)), np.full((1, 3), np.nan), np.zeros((2, 2))[:, ::2]],
    }
    if kind == "path":
        return path_pool(c)
    if kind == "dir":
        return dir_pool(c)
    if kind == "paths":
        return paths_pool(c)
    return table[kind] + JUNK


@pytest.mark.parametrize("name", sorted(SPECS))
def test_malformed_arguments(ctx: Ctx, name: str) -> None:
    get_f, get_args, kinds = SPECS[name]
    f = get_f(ctx)
    good = get_args(ctx)
    assert len(good) == len(kinds)
    r = check(f, *good)
    assert not isinstance(r, BaseException) or name.startswith(("open_", "Store.card")), (name, r)
    for pos, kind in enumerate(kinds):
        for bad in pool(kind, ctx):
            args = list(good)
            args[pos] = bad
            check(f, *args)
    # arity errors
    if kinds:
        check(f)
        check(f, *([None] * len(kinds)))
    check(f, *good, *([0] * 3))
    check(f, *good, no_such_keyword=1)


def test_len_and_properties(ctx: Ctx) -> None:
    t = _native.MerkleTree("blake3")
    assert len(t) == 0 and t.size == 0 and t.algorithm == "blake3"
    assert len(ctx.tree) == 5
    assert isinstance(ctx.store.path, (str, os.PathLike))


# ------------------------------------------------------------------ hypothesis: the parsers


def _mutations(valid: str, alphabet: str) -> st.SearchStrategy[str]:
    """A valid document with random edits (insert/delete/replace at random places)."""

    @st.composite
    def edit(draw: st.DrawFn) -> str:
        s = valid
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(s)))
            op = draw(st.sampled_from(["ins", "del", "rep", "cut"]))
            ch = draw(st.text(alphabet=alphabet, min_size=1, max_size=3))
            if op == "ins":
                s = s[:i] + ch + s[i:]
            elif op == "del":
                s = s[:i] + s[i + 1 :]
            elif op == "rep":
                s = s[:i] + ch + s[i + 1 :]
            else:
                s = s[:i]
        return s

    return edit()


NOTE_ALPHABET = "\n \u2014+/=-0123456789abcxyzABCXYZ.\t\x00\u00e9\ud800"


@settings(max_examples=300)
@given(data=st.data())
def test_checkpoint_parsers(ctx: Ctx, data: st.DataObject) -> None:
    text = data.draw(st.one_of(st.text(max_size=300), _mutations(ctx.cp, NOTE_ALPHABET)))
    key = data.draw(st.sampled_from([ctx.pub, ctx.vkey, ctx.pub.split("\n", 1)[1]]))
    check(_native.parse_checkpoint, text)
    r = check(_native.verify_checkpoint, text, key)
    if not isinstance(r, BaseException):
        # whatever was accepted is exactly what was signed
        assert text.split("\n\n")[0] == ctx.cp.split("\n\n")[0]
    check(_native.open_note, text, key)


@settings(max_examples=300)
@given(data=st.data())
def test_public_key_parsers(ctx: Ctx, data: st.DataObject) -> None:
    text = data.draw(
        st.one_of(
            st.text(max_size=200),
            _mutations(ctx.pub, "\n#: +/=-ABCMx0"),
            _mutations(ctx.vkey, "+/=0123456789abcdefAx\n \ud800"),
            _mutations(ctx.priv, "\n#: +/=-ABCMx0"),
        )
    )
    check(_native.parse_public_key, text)
    check(_native.public_key_of, text)
    check(_native.verify_checkpoint, ctx.cp, text)
    check(_native.open_manifest, ctx.env, text)
    check(_native.open_note, ctx.cp, text)


@settings(max_examples=300)
@given(data=st.data())
def test_envelope_parsers(ctx: Ctx, data: st.DataObject) -> None:
    env = data.draw(
        st.one_of(
            st.binary(max_size=300),
            _mutations(ctx.env.decode(), '{}[]":,0123456789abcAZ+/= \\\ud800').map(
                lambda s: s.encode("utf-8", "surrogatepass")
            ),
        )
    )
    check(_native.open_manifest, env, None)
    check(_native.open_manifest, env, ctx.pub)
    check(_native.compare_manifest, env, ctx.pub, str(ctx.dir))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _sign(payload: bytes, priv_pem: str) -> bytes:
    sk = serialization.load_pem_private_key(priv_pem.encode(), None)
    t = b"application/vnd.in-toto+json"
    sig = sk.sign(b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload))
    return json.dumps(
        {"payload": base64.b64encode(payload).decode(), "payloadType": t.decode(),
         "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}
    ).encode()


@settings(max_examples=300)
@given(data=st.data())
def test_signed_statement_parser(ctx: Ctx, data: st.DataObject) -> None:
    """Validly signed statements with one random part replaced reach the
    statement parser itself, past the signature check."""
    stmt = json.loads(base64.b64decode(json.loads(ctx.env)["payload"]))
    where = data.draw(st.sampled_from(_paths(stmt)))
    value = data.draw(json_values)
    if where:
        node = stmt
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = value
    else:
        stmt = value
    canonical = data.draw(st.booleans())
    payload = json.dumps(stmt, sort_keys=canonical, separators=(",", ":") if canonical else None).encode()
    env = _sign(payload, ctx.priv)
    r = check(_native.open_manifest, env, ctx.pub)
    check(_native.compare_manifest, env, ctx.pub, str(ctx.dir))
    if not isinstance(r, BaseException):
        assert r["size"] == len(r["entries"])


@settings(max_examples=300)
@given(
    i=st.integers(0, 2**64 - 1),
    n=st.integers(0, 2**64 - 1),
    leaf=st.binary(max_size=40),
    proof=st.lists(st.binary(min_size=30, max_size=34), max_size=70),
    root=st.binary(max_size=40),
    alg=st.sampled_from(["sha256", "blake3"]),
)
def test_verifiers_on_random_input(i: int, n: int, leaf: bytes, proof: list[bytes], root: bytes, alg: str) -> None:
    check(_native.verify_inclusion, i, n, leaf, proof, root, alg)
    check(_native.verify_consistency, i, n, leaf, root, proof, alg)
    check(_native.verify_consistency, min(i, n), max(i, n), leaf, root, proof, alg)


@settings(max_examples=100)
@given(
    idx=st.lists(st.integers(0, 2**64 - 1), max_size=5),
    size=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    old=st.integers(0, 2**64 - 1),
)
def test_tree_and_store_queries_on_random_numbers(ctx: Ctx, idx: list[int], size: int | None, old: int) -> None:
    t = ctx.tree
    check(t.inclusion_proofs, np.array(idx, dtype=np.uint64), size)
    check(t.root, size)
    check(t.consistency_proof, old, size)
    for i in idx:
        check(t.inclusion_proof, i, size)
        check(ctx.store.log_entry, i)
        check(ctx.store.log_inclusion, i, size or 0)
    check(ctx.store.log_consistency, old, size or 0)
    check(ctx.store.log_root, size)
    check(ctx.store.cards, None, size or 0)


_GETENV = (
    "import ctypes, maestro_core._native\n"
    "libc = ctypes.CDLL(None)\n"
    "libc.getenv.restype = ctypes.c_char_p\n"
    "print(libc.getenv(b'RUST_LIB_BACKTRACE'))\n"
)


@pytest.mark.parametrize(("preset", "seen"), [(None, "b'0'"), ("1", "b'1'")])
def test_library_backtraces_off_unless_asked(preset: str | None, seen: str) -> None:
    # regorus's anyhow errors capture a backtrace each when RUST_BACKTRACE is set;
    # importing the extension turns library backtraces off, but keeps a user's choice
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RUST_LIB_BACKTRACE"}
    env["RUST_BACKTRACE"] = "1"
    if preset is not None:
        env["RUST_LIB_BACKTRACE"] = preset
    out = subprocess.run([sys.executable, "-c", _GETENV], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == seen


_MI_PROBE = (
    "import ctypes, maestro_core\n"
    "libc = ctypes.CDLL(None)\n"
    "libc.getenv.restype = ctypes.c_char_p\n"
    "print(libc.getenv(b'MIMALLOC_ARENA_EAGER_COMMIT'))\n"
)


@pytest.mark.parametrize(("preset", "seen"), [(None, "b'0'"), ("2", "b'2'")])
def test_allocator_commits_on_demand_unless_asked(preset: str | None, seen: str) -> None:
    # the package sets mimalloc's arena commit to on-demand before the extension
    # loads (eager commit cost the first large run ~0.4 s), keeping a user's choice
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_ARENA_EAGER_COMMIT"}
    if preset is not None:
        env["MIMALLOC_ARENA_EAGER_COMMIT"] = preset
    out = subprocess.run([sys.executable, "-c", _MI_PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == seen
