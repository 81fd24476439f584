"""Type stubs of the native module ``maestro_core._native`` (Rust, PyO3).

Every function converts engine errors to ``maestro_core.errors`` exceptions;
heavy calls release the GIL.
"""

import os
from collections.abc import Iterable
from typing import Any, Final, Literal, final, overload
from collections.abc import Callable
from typing import Any, Final, final

import numpy as np
import numpy.typing as npt

__version__: Final[str]

_Bytes = bytes | bytearray | memoryview

# ---------------------------------------------------------------- hashing
def hash_bytes(data: _Bytes, algorithm: str = "blake3") -> bytes:
    """Digest of ``data`` (32 bytes). ``algorithm``: ``"blake3"`` or ``"sha256"``."""

def hash_file(path: str | os.PathLike[str], algorithm: str = "blake3") -> tuple[int, bytes]:
    """``(size, digest)`` of one file, streamed; raises ``FileChangedError`` if it changes meanwhile."""

def hash_files(
    paths: list[str] | list[os.PathLike[str]], algorithm: str = "blake3"
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint64]]:
    """``(digests (n, 32) uint8, sizes (n,) uint64)``, parallel across files."""

# ---------------------------------------------------------------- merkle
@final
class MerkleTree:
    """An RFC 9162 Merkle tree kept in memory (every perfect subtree stored)."""

    def __new__(cls, algorithm: str = "sha256") -> MerkleTree: ...
    @staticmethod
    def from_leaf_hashes(leaf_hashes: npt.NDArray[np.uint8], algorithm: str = "sha256") -> MerkleTree:
        """From a C-contiguous ``(n, 32)`` uint8 array of leaf hashes ``H(0x00 || d)``."""
    @staticmethod
    def from_leaves(leaves: Iterable[_Bytes], algorithm: str = "sha256") -> MerkleTree:
        """From leaf data (each hashed as ``H(0x00 || d)``, in parallel).

        ``bytes`` items are read in place, not copied; if any item is another
        bytes-like object (whose contents could change), every item is copied.
        The GIL is released during the build, except for a ``list`` (which
        another thread could change meanwhile): its items are read with the
        GIL held. Pass a ``tuple`` to let other threads run.
        """
    @staticmethod
    def from_leaf_rows(rows: npt.NDArray[np.uint8], algorithm: str = "sha256") -> MerkleTree:
        """From fixed-width leaf data: the rows of a C-contiguous 2-D uint8 array."""
    @property
    def algorithm(self) -> str: ...
    @property
    def size(self) -> int: ...
    def __len__(self) -> int: ...
    def append(self, data: bytes) -> int:
        """Append leaf data; returns its index."""
    def append_leaf_hash(self, leaf_hash: bytes) -> int:
        """Append a leaf hash (32 bytes); returns its index."""
    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default: all)."""
    def leaf_hashes(self) -> npt.NDArray[np.uint8]:
        """``(n, 32)`` uint8 array of the leaf hashes."""
    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.3.1 audit path of leaf ``index`` in the tree of ``size``."""
    @overload
    def inclusion_proofs(
        self, indices: npt.NDArray[np.uint64], size: int | None = None, *, as_array: Literal[False] = False
    ) -> list[list[bytes]]:
        """Audit paths for many leaves at once (parallel, GIL released).

        A list of proofs, or with ``as_array=True`` ``(hashes, offsets)``: an
        ``(m, 32)`` uint8 array of every proof back to back and ``(k + 1,)``
        uint64 offsets, proof ``i`` being ``hashes[offsets[i]:offsets[i + 1]]``.
        """
    @overload
    def inclusion_proofs(
        self, indices: npt.NDArray[np.uint64], size: int | None = None, *, as_array: Literal[True]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint64]]: ...
    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.4.1 proof that the tree of ``new`` extends the tree of ``old``."""

def leaf_hash(data: _Bytes, algorithm: str = "sha256") -> bytes: ...
def node_hash(left: _Bytes, right: _Bytes, algorithm: str = "sha256") -> bytes: ...
def empty_root(algorithm: str = "sha256") -> bytes: ...
def verify_inclusion(
    index: int, size: int, leaf_hash: _Bytes, proof: list[bytes], root: _Bytes, algorithm: str = "sha256"
) -> None:
    """Raises ``VerificationError`` (with the reason) unless the proof holds."""

def verify_consistency(
    size1: int, size2: int, root1: _Bytes, root2: _Bytes, proof: list[bytes], algorithm: str = "sha256"
) -> None:
    """Raises ``VerificationError`` (with the reason) unless the proof holds."""

# ---------------------------------------------------------------- keys, manifests, checkpoints
def generate_key(name: str) -> tuple[str, str, str]:
    """``(private PKCS#8 PEM, public SPKI PEM, signed-note verifier key)``."""

def public_key_of(private_pem: str) -> tuple[str, str, str, str]:
    """``(name, public PEM, verifier key, key id)`` of a private key."""

def parse_public_key(text: str) -> tuple[str | None, str, str]:
    """``(name or None, public PEM, key id)`` from a PEM or a verifier key."""

def build_manifest(
    directory: str | os.PathLike[str], private_pem: str, algorithm: str = "blake3"
) -> tuple[bytes, dict[str, Any]]:
    """Hash a folder and sign its manifest: ``(DSSE envelope bytes, manifest info)``."""

def scan_directory(directory: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Regular files below ``directory``: ``(relative path, full path)`` sorted by path bytes."""

def sign_entries(entries: list[tuple[str, int, bytes]], private_pem: str, algorithm: str = "blake3") -> bytes:
    """Sign a manifest of sorted, unique ``(path, size, digest)`` entries."""

def open_manifest(envelope: _Bytes, public_key: str | None = None) -> dict[str, Any]:
    """Parse (and verify when ``public_key`` is given) a manifest envelope."""

def compare_manifest(envelope: bytes, public_key: str, directory: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """Differences ``(kind, path, description)`` between a folder and a verified manifest."""

def verify_checkpoint(text: str, public_key: str) -> tuple[str, int, bytes]:
    """``(origin, size, root)`` of a checkpoint whose signature by ``public_key`` verifies."""

def open_note(text: str, public_key: str) -> str:
    """Verify a C2SP signed note (PEM keys need the name in a ``# name:`` line) and return its text."""

def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """``(origin, size, root)`` without checking signatures."""

# ---------------------------------------------------------------- store
@final
class Store:
    """The SQLite store (WAL): append-only log, checkpoints and Decision Cards."""

    def __new__(cls, home: str | os.PathLike[str]) -> Store: ...
    @property
    def path(self) -> str: ...
    def log_size(self) -> int: ...
    def log_append(self, kind: str, body: bytes) -> int: ...
    def log_append_many(self, items: list[tuple[str, bytes]]) -> list[int]: ...
    def log_entry(self, index: int) -> dict[str, Any]: ...
    def log_find(self, leaf_hash: bytes) -> int | None: ...
    def log_root(self, size: int | None = None) -> tuple[int, bytes]: ...
    def log_inclusion(self, index: int, size: int) -> list[bytes]: ...
    def log_consistency(self, old: int, new: int) -> list[bytes]: ...
    def log_checkpoint(self, private_pem: str) -> str: ...
    def checkpoints(self) -> list[tuple[int, str]]: ...
    def log_verify(self) -> int: ...
    def put_card(self, id: str, kind: str, subject: str, created: str, body: str, log_body: bytes) -> int: ...
    def card(self, id: str) -> dict[str, Any]: ...
    def cards(self, kind: str | None = None, limit: int = 50) -> list[dict[str, Any]]: ...
    # prompt genome registry (issue 7)
    def genome_put(self, rows: list[tuple[str, str, str, str, list[str], int, str]]) -> int:
        """Register genomes ``(id, body, operator, op_params, parents, cost_tokens, tokenizer)``; returns how many were new."""
    def genome(self, id: str) -> dict[str, Any]: ...
    def genomes(self, limit: int = 1000) -> list[dict[str, Any]]: ...
    def genome_count(self) -> int: ...
    def genome_lineage(
        self, id: str, descendants: bool = False, max_depth: int = 1_000_000
    ) -> tuple[list[tuple[str, int, str, int]], list[tuple[str, str, int]]]:
        """``(nodes, edges)``: ``[(id, depth, operator, cost_tokens)]`` and ``[(child, parent, pos)]``."""
    # tournaments (issue 7)
    def tournament_create(self, id: str, config: str, state: str) -> None: ...
    def tournament(self, id: str) -> dict[str, Any]: ...
    def tournaments(self) -> list[dict[str, Any]]: ...
    def duel_record(
        self, tournament: str, expected: int, winner: int, loser: int, source: str,
        vote_id: str | None, detail: str, state: str,
    ) -> int | None:
        """Record one duel and the new algorithm state in one transaction (``expected`` = duels so far)."""
    def tournament_save(self, tournament: str, expected: int, state: str, status: str | None = None) -> None: ...
    def duels(self, tournament: str) -> list[dict[str, Any]]: ...

# ---------------------------------------------------------------- dueling bandits (issue 7)
@final
class Duel:
    """A dueling-bandit algorithm (``rucb``, ``rmed1``, ``dts``, ``ccb``, ``uniform``): seedable, serialisable."""

    def __new__(
        cls, algorithm: str, arms: int, seed: int = 0, alpha: float | None = None, f_k: float | None = None
    ) -> Duel: ...
    @staticmethod
    def from_json(state: str) -> Duel: ...
    def to_json(self) -> str: ...
    def copy(self) -> Duel: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def arms(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def alpha(self) -> float: ...
    @property
    def pending(self) -> tuple[int, int] | None: ...
    def select(self) -> tuple[int, int]:
        """The next pair to duel."""
    def record(self, winner: int, loser: int) -> None: ...
    def best(self) -> int:
        """The current best arm."""
    def confidence(self, arm: int) -> float: ...
    def beats_probability(self, i: int, j: int) -> float: ...
    def wins(self) -> npt.NDArray[np.uint64]: ...
    def simulate(
        self, matrix: npt.NDArray[np.float64], steps: int, env_seed: int = 0, every: int = 1
    ) -> npt.NDArray[np.float64]:
        """Run ``steps`` duels against a preference matrix; cumulative regret sampled every ``every`` steps."""

def preference_regrets(matrix: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], int | None]:
    """Per-pair regret of a preference matrix and its Condorcet winner (or None)."""

# ---------------------------------------------------------------- rego_mut
def rego_load(paths: list[str], data: list[str]) -> str:
    """Load Rego policies and data like ``opa``; the policy set as JSON."""

def rego_from_modules(modules_json: str, data_json: str) -> str:
    """A policy set (JSON) from ``[{path, text, is_test}]`` and a data object."""

def rego_parse_decisions(text: str, default_query: str | None = None) -> tuple[str, str]:
    """``(decisions JSON, skipped JSON)`` from JSON lines or an OPA decision log."""

def rego_mutants(set_json: str, operators: list[str] | None = None) -> str:
    """The mutants of a policy set (JSON list), without running them."""

def rego_mutate(
    set_json: str,
    decisions_json: str,
    options_json: str,
    store: Store | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> str:
    """Run a mutation analysis; the report as JSON (verdicts reused/stored in ``store``)."""

def rego_to_v1(path: str, text: str) -> str:
    """Rewrite a Rego v0 module into v1 syntax."""

@final
class RegoEvaluator:
    """A compiled policy set evaluated many times (thread-safe)."""

    def __new__(
        cls, set_json: str, replace: tuple[int, str] | None = None, timeout_ms: int | None = None
    ) -> RegoEvaluator: ...
    def eval_many(self, query: str, inputs: list[str]) -> list[str | None]: ...

# ---------------------------------------------------------------- Shapley attribution (issue 6)
def shapley_exact(values: npt.NDArray[np.float64], threads: int | None = None) -> npt.NDArray[np.float64]:
    """Exact Shapley values of a value table of length ``2**n`` (bit i of the index = player i), n <= 25."""

def shapley_interactions(values: npt.NDArray[np.float64], threads: int | None = None) -> npt.NDArray[np.float64]:
    """Pairwise Shapley interaction indices (n x n; Shapley values on the diagonal)."""

def shapley_sample(
    game: SparseGame | CallableGame | npt.NDArray[np.float64],
    method: str,
    budget: int,
    ci_width: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    batch: int = 0,
    min_units: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Sampled Shapley values (permutation, antithetic, stratified, kernel) with standard errors and CIs."""

@final
class SparseGame:
    """Measured coalition values: ``masks`` (m, n) uint8 0/1 rows and their ``values``."""

    def __new__(cls, masks: npt.NDArray[np.uint8], values: npt.NDArray[np.float64]) -> SparseGame: ...
    @property
    def n_players(self) -> int: ...
    @property
    def measured(self) -> int: ...
    def to_table(self) -> npt.NDArray[np.float64]: ...

@final
class CallableGame:
    """A game ``evaluate(masks (b, n) bool) -> values (b,)`` called in batches, with a cache."""

    def __new__(cls, evaluate: Callable[[npt.NDArray[np.bool_]], Any], n: int, batch_size: int = 1024) -> CallableGame: ...
    @property
    def n_players(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def evaluations(self) -> int: ...
    def clear_cache(self) -> None: ...
    def to_table(self) -> npt.NDArray[np.float64]: ...


@final
class Hypergraph:
    """A weighted directed hypergraph over CSR incidences (rows = hyperedges).

    Index arrays are 1-D int32/int64/uint32 numpy arrays; ``weights`` is
    float64, finite and >= 0. C-contiguous uint32/int32 index arrays and
    float64 weights are read in place (the graph keeps a reference, no copy);
    int64 arrays are validated and converted once.
    """

    def __new__(
        cls,
        n_nodes: int,
        indptr: Any,
        indices: Any,
        weights: Any,
        head_indptr: Any | None = None,
        head_indices: Any | None = None,
    ) -> Hypergraph: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def n_edges(self) -> int: ...
    def edge(self, e: int) -> tuple[float, npt.NDArray[np.uint32], npt.NDArray[np.uint32]]: ...
    def csr(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.float64], npt.NDArray[Any] | None, npt.NDArray[Any] | None]:
        """The arrays the graph reads: the caller's own where lent, else copies."""
    def khop(self, sources: Any, k: int) -> KHop: ...
    def khop_each(self, sources: Any, k: int) -> npt.NDArray[np.float64]: ...


@final
class KHop:
    """Costs and cheapest paths of one k-hop run."""

    def dist(self) -> npt.NDArray[np.float64]:
        """The costs: the same read-only array on every call (no copy)."""
    @property
    def rounds(self) -> int: ...
    def path(self, node: int) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]] | None: ...


def select_tests(
    cover: Any,
    durations: Any,
    budget: float = ...,
    threshold: float = ...,
    safe: bool = False,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint64]]: ...

# ---------------------------------------------------------------- SpecLive guards (cep)
KEY_HASH_SEED: Final[str]

def engine_version() -> str:
    """Version of the Rust engine (recorded in violation bundles)."""

@final
class CompiledGuard:
    """A guard compiled to a linear NFA with bounded counters."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def per(self) -> str: ...
    @property
    def contiguity(self) -> str: ...
    @property
    def digest(self) -> str:
        """``blake3:<hex>`` of the canonical compiled form."""
    def canonical(self) -> str: ...

def compile_guards(source: str, origin: str = "<guards>") -> list[CompiledGuard]:
    """Parse and compile guard source (``GuardSyntaxError`` with ``origin:line:col`` and a caret)."""

def compile_guard_ast(ast_json: str) -> CompiledGuard:
    """Compile a guard AST given as JSON (the builder's output)."""

def parse_guards(source: str, origin: str = "<guards>") -> list[str]:
    """The AST of each guard, as JSON text (``let`` expanded)."""

@final
class EventSet:
    """Events read from OTLP/JSON, OTLP protobuf or records."""

    @staticmethod
    def read(path: str | os.PathLike[str]) -> EventSet: ...
    @staticmethod
    def from_otlp_json(text: str, origin: str = "<otlp-json>") -> EventSet: ...
    @staticmethod
    def from_otlp_protobuf(data: _Bytes, origin: str = "<otlp-protobuf>") -> EventSet: ...
    @staticmethod
    def from_records(text: str, origin: str = "<records>") -> EventSet: ...
    @staticmethod
    def from_spans(spans: list[Any]) -> EventSet:
        """From finished OpenTelemetry SDK spans (the SpanProcessor's mapping)."""
    @property
    def origin(self) -> str: ...
    def __len__(self) -> int: ...
    def records_json(self, indices: list[int] | None = None) -> str: ...
    def select(self, per: str, key: str, t0: int, t1: int) -> list[int]: ...
    def event(self, i: int) -> tuple[int, str, dict[str, Any]]: ...
    def times(self) -> list[int]: ...

@final
class GuardMatcher:
    """The streaming matcher (watermarks, lateness, per-key runs)."""

    def __new__(
        cls, guards: list[CompiledGuard], lateness_ns: int | None = ..., max_late_kept: int = 100000, threads: int = 0
    ) -> GuardMatcher:
        """``lateness_ns`` defaults to 0; ``None``: only ``advance_watermark`` moves the watermark.
        ``threads``: guards stepped in parallel (0: one per core, 1: the calling thread)."""
    @property
    def guard_names(self) -> list[str]: ...
    @property
    def watermark(self) -> int | None: ...
    def feed_arrays(
        self,
        times: npt.NDArray[np.int64],
        keys: npt.NDArray[np.int64],
        codes: npt.NDArray[np.int64],
        names: list[str],
        attrs: dict[str, Any] | None = None,
    ) -> None: ...
    def feed_events(self, events: EventSet) -> None: ...
    def feed_rows(self, rows: list[tuple[int, str, dict[str, Any]]]) -> None: ...
    def feed_spans(self, spans: list[Any]) -> None:
        """Feed finished OpenTelemetry SDK spans (converted in Rust)."""
    def advance_watermark(self, t: int) -> None: ...
    def finish(self) -> None: ...
    def drain(self) -> list[dict[str, Any]]: ...
    def drain_arrays(self) -> dict[str, Any]:
        """Violations as int64 arrays ``guard, kind, time, seq, key`` (+ ``str_keys`` or None)."""
    def drain_late(self) -> list[dict[str, Any]]: ...
    def stats(self) -> dict[str, Any]: ...

@final
class SpanFeed:
    """Live feed of finished OpenTelemetry SDK spans into a ``GuardMatcher``
    (used by ``maestro_core.otel.GuardSpanProcessor``): ``push`` copies the
    fields the guards read (one call per span); a Rust thread converts them,
    feeds the matcher and moves its watermark to ``now - lateness_ns`` every
    ``interval_ns``, without the GIL. Read results from the matcher."""

    def __new__(cls, matcher: GuardMatcher, lateness_ns: int, interval_ns: int) -> SpanFeed: ...
    def push(self, span: Any) -> bool:
        """Queue one finished span; False when the feed is closed."""
    def on_end(self, span: Any) -> None:
        """``push`` that never raises: an error is kept for ``errors()``."""
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued is matched; False on timeout or when closed."""
    def wait(self, timeout: float = 1.0) -> bool:
        """Wait (GIL released) until violations, late events or errors are ready, or the feed closed."""
    def close(self) -> None:
        """Match what is queued, finish the matcher, stop the thread (idempotent)."""
    def errors(self) -> list[str]: ...
    @property
    def queued(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def attributes(self) -> list[str]: ...
    def events_of(self, span: Any) -> list[tuple[int, str, dict[str, Any]]]:
        """The events ``push`` would queue for ``span``: what the guards see of it."""

