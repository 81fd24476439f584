"""The prompt-tournament demo: evolve variants of a verbose retrieval prompt,
find the best with Double Thompson Sampling, compare with uniform pairwise
sampling under the same stopping rule, and promote with a Decision Card.

The judge is :class:`~maestro_core.retrieval.RetrievalJudge` (BM25 over the
bundled question set); the eval score is the MRR over the whole set.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from .duel import StopRule, Tournament
from .prompts import TOKENIZER, Genome, Registry, evolve, render_lineage
from .retrieval import RetrievalEval, RetrievalJudge

__all__ = ["INCUMBENT", "run_prompt_demo"]

INCUMBENT = Genome(
    "You are a helpful search assistant. Please find the passage that really answers the question below, "
    "and make sure the answer is relevant, accurate and detailed.\n\n"
    "Question: {query}\n\n"
    "Search the documents carefully. Prefer passages that answer the question directly. "
    "Think about which document would contain the answer.",
    {"query": None, "top_k": 5},
    "bm25",
    None,
    ("demo", "retrieval"),
)

MIN_EVAL_DELTA = 0.01
MIN_COST_CUT = 0.08


def run_prompt_demo(output: str | os.PathLike[str], home: str | os.PathLike[str] | None = None, seed: int = 7,
                    arms: int = 12, population: int = 80, delta: float = 0.05, max_duels: int = 5000,
                    algorithm: str = "dts") -> dict[str, Any]:
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    reg = Registry(home if home is not None else out / "store")
    ev = RetrievalEval()
    ids = evolve(reg, [INCUMBENT], population, seed=seed)
    r = random.Random(seed)
    chosen = [INCUMBENT.id] + r.sample(ids[1:], min(arms - 1, len(ids) - 1))
    stop = StopRule(delta=delta, max_duels=max_duels)
    runs = {}
    for alg in (algorithm, "uniform"):
        t = Tournament.create(reg, chosen, alg, seed=seed, incumbent=INCUMBENT.id)
        res = t.run(RetrievalJudge(ev, seed=seed), stop)
        t.verify()
        runs[alg] = (t, res)
    t, res = runs[algorithm]
    scores = {a: ev.score(reg.get(a).genome) for a in chosen}
    card = t.promote(scores, min_eval_delta=MIN_EVAL_DELTA, min_cost_cut=MIN_COST_CUT, min_confidence=1 - delta)
    win, inc = reg.get(res.best), reg.get(INCUMBENT.id)
    g = reg.lineage(win.id)
    pics = [render_lineage(g, out / "lineage.dot"), render_lineage(g, out / "lineage.svg")]
    try:
        pics.append(render_lineage(g, out / "lineage.png"))
    except Exception:  # PNG needs dot or matplotlib; DOT and SVG are always written
        pass
    uni = runs["uniform"][1]
    summary = {
        "arms": len(chosen),
        "population": len(ids),
        "algorithm": algorithm,
        "winner": win.id,
        "incumbent": inc.id,
        "eval_incumbent": round(scores[inc.id], 4),
        "eval_winner": round(scores[win.id], 4),
        "eval_delta": round(scores[win.id] - scores[inc.id], 4),
        "cost_incumbent": inc.cost_tokens,
        "cost_winner": win.cost_tokens,
        "cost_cut": round(1 - win.cost_tokens / inc.cost_tokens, 4),
        "tokenizer": TOKENIZER,
        "duels": res.judged,
        "stopped": res.stopped,
        "confidence": round(res.confidence, 4),
        "uniform_duels": uni.judged,
        "uniform_stopped": uni.stopped,
        "uniform_winner": uni.best,
        "best_eval_in_tournament": round(max(scores.values()), 4),
        "decision": card.decision,
        "card": card.id,
        "tournament": t.id,
        "target_met": bool(scores[win.id] - scores[inc.id] >= MIN_EVAL_DELTA
                           and 1 - win.cost_tokens / inc.cost_tokens >= MIN_COST_CUT and res.judged < uni.judged),
        "lineage": [str(p) for p in pics],
        "winner_template": win.genome.template,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
