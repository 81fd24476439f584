"""Shared by the Rego benches: the corpus, and the OPA paths (in-process and
one subprocess per mutant) that the engine is compared with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from rego_corpus import CorpusPolicy, corpus  # noqa: E402

from maestro_core import policy  # noqa: E402

__all__ = ["CorpusPolicy", "corpus", "opa_eval", "opa_outcomes", "opa_subprocess_outcomes", "canon", "agree",
           "mutated_modules", "verdict_disagreements"]

_UNDEF = {"undefined": True}


def _path(query: str) -> str:
    return query[len("data."):] if query.startswith("data.") else query


def opa_outcomes(modules: list[tuple[str, str]], data: dict[str, Any], decisions: list[policy.Decision]) -> list[Any]:
    """Evaluate decisions with the real OPA, in-process; one fresh engine."""
    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

    out: list[Any] = []
    with OpaEngine() as eng:
        try:
            for path, text in modules:
                eng.add_policy(path, text)
            if data:
                eng.add_data(data)
        except OpaError as e:
            return [{"error": f"{e.code}: {e.message}"[:300]}] * len(decisions)
        for d in decisions:
            try:
                out.append(eng.eval_document(_path(d.query), d.input))
            except OpaUndefinedError:
                out.append(_UNDEF)
            except OpaError as e:
                out.append({"error": f"{e.code}: {e.message}"[:300]})
    return out


_CHILD = r"""
import json, sys
from opa_bindings import OpaEngine, OpaError, OpaUndefinedError
job = json.load(sys.stdin)
out = []
with OpaEngine() as eng:
    try:
        for p, t in job["modules"]:
            eng.add_policy(p, t)
        if job["data"]:
            eng.add_data(job["data"])
        for q, i in job["decisions"]:
            try:
                out.append(eng.eval_document(q, i))
            except OpaUndefinedError:
                out.append({"undefined": True})
            except OpaError as e:
                out.append({"error": e.code})
    except OpaError as e:
        out = [{"error": e.code}] * len(job["decisions"])
json.dump(out, sys.stdout)
"""


def opa_subprocess_outcomes(modules: list[tuple[str, str]], data: dict[str, Any],
                            decisions: list[policy.Decision]) -> list[Any]:
    """The same, in a fresh Python process per call (as `opa eval` per mutant)."""
    job = {"modules": modules, "data": data, "decisions": [[_path(d.query), d.input] for d in decisions]}
    r = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(job), capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def opa_eval(cp: CorpusPolicy) -> tuple[list[Any], str | None]:
    """OPA outcomes of a corpus policy's decisions (v0 modules rewritten to v1)."""
    ps = policy.load(cp.paths, cp.data)
    note = None
    if ps.rego_v0:
        note = "v0 module rewritten to v1 for OPA 1.x (if / contains)"
        ps = ps.to_v1()
    return opa_outcomes([(m.path, m.text) for m in ps.modules], ps.data, cp.decisions), note


def canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def agree(a: Any, b: Any) -> bool:
    """Equal, or equal up to the order of set elements rendered as arrays."""
    if canon(a) == canon(b):
        return True
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return sorted(map(canon, a)) == sorted(map(canon, b))
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(agree(a[k], b[k]) for k in a)
    return False


def mutated_modules(ps: policy.PolicySet, m: dict[str, Any]) -> list[tuple[str, str]]:
    """The set's modules with mutant ``m`` (as ``_native.rego_mutants`` gives it) applied."""
    mods = []
    for i, mod in enumerate(ps.modules):
        t = mod.text
        if i == m["module"]:
            t = t[: m["start"]] + m["replacement"] + t[m["end"]:]
        mods.append((mod.path, t))
    return mods


def verdict_disagreements(name: str, ps: policy.PolicySet, decisions: list[policy.Decision],
                          mutants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mutants on which ours and OPA disagree about detection.

    Ours: ``policy.mutate`` with the decisions (equivalence check off); a
    mutant is detected when killed, stillborn, timed out or in error. OPA: a
    fresh engine per mutant; detected when it does not load or any decision's
    outcome differs from the original's."""
    r = policy.mutate(ps, decisions, equivalence_samples=0, incremental=False, record_card=False)
    ours = {m.id: m for m in r.mutants}
    base = opa_outcomes([(m.path, m.text) for m in ps.modules], ps.data, decisions)
    out = []
    for m in mutants:
        outs = opa_outcomes(mutated_modules(ps, m), ps.data, decisions)
        opa_detected = any(not agree(a, b) for a, b in zip(base, outs))
        o = ours[m["id"]]
        our_detected = o.status in ("killed", "timeout", "error", "stillborn")
        if opa_detected != our_detected:
            err = next((x["error"] for x in outs if isinstance(x, dict) and "error" in x), None)
            out.append({"policy": name, "id": m["id"], "operator": m["operator"], "line": m["line"],
                        "original": m["original"], "replacement": m["replacement"], "ours": o.status,
                        "ours_detail": o.detail[:300], "opa": "detected" if opa_detected else "not detected",
                        "opa_error": err[:300] if err else None})
    return out
