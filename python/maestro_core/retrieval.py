"""A real evaluator for prompt tournaments: BM25 retrieval over a bundled question set.

Each prompt genome is used as the *query instruction* of a retriever: the
query sent to the ranker is ``genome.render(<input>=question)``. Okapi BM25
(Robertson et al.; ``k1 = 1.5``, ``b = 0.75``, Lucene's IDF
``ln(1 + (N − n + 0.5)/(n + 0.5))``) ranks the bundled passages, and a
question scores the reciprocal rank of its relevant passage. A genome's eval
score is the mean reciprocal rank (MRR) over the whole set.

:class:`RetrievalJudge` decides a duel the way a pairwise human or LLM judge
would, from one question at a time: it draws a question from its own seeded
stream and prefers the genome whose ranking puts the relevant passage
higher; on an exact tie the cheaper prompt (fewer tokens) wins, then a coin
flip. Nothing about the genomes is planted: preferences come only from the
ranker's output.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .duel import Verdict
from .errors import InputError
from .prompts import Genome, GenomeRecord

__all__ = ["Dataset", "load_dataset", "BM25", "RetrievalEval", "RetrievalJudge", "tokenize"]

STOPWORDS = frozenset(
    "a an and are as at be by do does for from has have how in is it its of on or that the their them they this "
    "to was were what when where which who why with".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric words without English stop words."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


@dataclass(frozen=True)
class Dataset:
    name: str
    passages: list[tuple[str, str]]
    questions: list[tuple[str, str, frozenset[str]]]


def load_dataset(path: str | Path | None = None) -> Dataset:
    """The bundled set (``maestro_core/data/retrieval_qa.json``) or a file of the same shape."""
    try:
        text = Path(path).read_text() if path else \
            resources.files("maestro_core").joinpath("data/retrieval_qa.json").read_text()
        d = json.loads(text)
        passages = [(p["id"], p["text"]) for p in d["passages"]]
        questions = [(q["id"], q["text"], frozenset(q["relevant"])) for q in d["questions"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"retrieval dataset {path or 'bundled'}: unreadable ({e})") from None
    ids = {p for p, _ in passages}
    for qid, _, rel in questions:
        if not rel or not rel <= ids:
            raise InputError(f"retrieval dataset: question {qid} names no known relevant passage")
    return Dataset(d.get("name", "dataset"), passages, questions)


class BM25:
    """Okapi BM25 over a fixed list of passages."""

    def __init__(self, docs: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tf = [Counter(tokenize(d)) for d in docs]
        self.len = np.array([sum(c.values()) for c in self.tf], dtype=np.float64)
        self.avg = float(self.len.mean()) if len(docs) else 0.0
        df: Counter[str] = Counter()
        for c in self.tf:
            df.update(c.keys())
        n = len(docs)
        self.idf = {w: math.log(1 + (n - m + 0.5) / (m + 0.5)) for w, m in df.items()}

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        s = np.zeros(len(self.tf))
        norm = self.k1 * (1 - self.b + self.b * self.len / self.avg)
        for w, qf in Counter(tokenize(query)).items():
            idf = self.idf.get(w)
            if idf is None:
                continue
            f = np.array([c.get(w, 0) for c in self.tf], dtype=np.float64)
            s += qf * idf * f * (self.k1 + 1) / (f + norm)
        return s


class RetrievalEval:
    """Reciprocal ranks of a genome's queries (cached per genome)."""

    def __init__(self, dataset: Dataset | None = None, ranker: BM25 | None = None) -> None:
        self.data = dataset or load_dataset()
        self.ranker = ranker or BM25([t for _, t in self.data.passages])
        self.pids = [p for p, _ in self.data.passages]
        self._cache: dict[str, npt.NDArray[np.float64]] = {}

    def reciprocal_ranks(self, genome: Genome) -> npt.NDArray[np.float64]:
        key = genome.id
        if key not in self._cache:
            inputs = genome.inputs()
            if len(inputs) != 1:
                raise InputError(f"genome {key[:15]}: a retrieval prompt needs exactly one input, has {inputs}")
            rr = np.zeros(len(self.data.questions))
            for qi, (_, text, rel) in enumerate(self.data.questions):
                s = self.ranker.scores(genome.render(**{inputs[0]: text}))
                order = sorted(range(len(s)), key=lambda i: (-s[i], i))
                rank = next(r for r, i in enumerate(order, 1) if self.pids[i] in rel)
                rr[qi] = 1.0 / rank
            self._cache[key] = rr
        return self._cache[key]

    def score(self, genome: Genome) -> float:
        """Mean reciprocal rank over the question set."""
        return float(self.reciprocal_ranks(genome).mean())


class RetrievalJudge:
    """Pairwise judge: one seeded random question per duel (see module doc)."""

    def __init__(self, evaluator: RetrievalEval | None = None, seed: int = 0, name: str = "bm25") -> None:
        self.eval = evaluator or RetrievalEval()
        self.rng = random.Random(seed)
        self.name = name
        self.calls = 0

    def __call__(self, a: GenomeRecord, b: GenomeRecord) -> Verdict:
        self.calls += 1
        q = self.rng.randrange(len(self.eval.data.questions))
        ra, rb = self.eval.reciprocal_ranks(a.genome)[q], self.eval.reciprocal_ranks(b.genome)[q]
        if ra != rb:
            w, why = (0 if ra > rb else 1), "rank"
        elif a.cost_tokens != b.cost_tokens:
            w, why = (0 if a.cost_tokens < b.cost_tokens else 1), "cost"
        else:
            w, why = self.rng.randrange(2), "coin"
        detail: dict[str, Any] = {"question": self.eval.data.questions[q][0], "rr_a": round(float(ra), 4),
                                  "rr_b": round(float(rb), 4), "by": why}
        return Verdict(w, detail)
