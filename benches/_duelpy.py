"""Run duelpy (the peer) on a preference matrix, with the numpy-2 shim it needs.

duelpy 1.0.0 still names ``np.float`` (removed in numpy 1.24) in a type
annotation at import time; restoring the builtin aliases before the import
is the only change. Regret is computed from the pairs duelpy asks for, with
the same per-arm regrets as the engine (``_native.preference_regrets``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

for _n, _t in (("float", float), ("int", int), ("bool", bool)):
    if not hasattr(np, _n):
        setattr(np, _n, _t)

from duelpy.algorithms import CopelandConfidenceBound, DoubleThompsonSampling, RelativeUCB, Rmed1  # noqa: E402
from duelpy.feedback import MatrixFeedback  # noqa: E402
from duelpy.feedback.feedback_mechanism import FeedbackMechanism  # noqa: E402

from maestro_core.duel import preference_regrets  # noqa: E402

PEER = {"rucb": RelativeUCB, "rmed1": Rmed1, "dts": DoubleThompsonSampling, "ccb": CopelandConfidenceBound}


class _Recorder(FeedbackMechanism):  # type: ignore[misc]
    """Wraps MatrixFeedback, accumulating regret of each duel."""

    def __init__(self, matrix: np.ndarray, rs: np.random.RandomState, reg: np.ndarray) -> None:
        self.inner = MatrixFeedback(matrix, list(range(len(matrix))), random_state=rs)
        super().__init__(list(range(len(matrix))))
        self.reg = reg
        self.cum = 0.0
        self.curve: list[float] = []

    def duel(self, a: int, b: int) -> bool:
        self.cum += 0.5 * (self.reg[a] + self.reg[b])
        self.curve.append(self.cum)
        return bool(self.inner.duel(a, b))

    def get_num_arms(self) -> int:
        return self.inner.get_num_arms()


def run_peer(alg: str, matrix: np.ndarray, steps: int, seed: int) -> tuple[np.ndarray, float]:
    """Cumulative regret after each of ``steps`` duels, and seconds taken."""
    reg, _ = preference_regrets(matrix)
    rs = np.random.RandomState(seed)
    fb = _Recorder(matrix, rs, reg)
    kw: dict[str, Any] = {"random_state": np.random.RandomState(seed + 1)}
    # Some duelpy steps run many duels (RMED's initial phase and loops):
    # give it slack past ``steps`` and keep the first ``steps`` duels.
    k = len(matrix)
    algo = PEER[alg](fb, time_horizon=steps + k * k, **kw)
    t0 = time.perf_counter()
    try:
        while len(fb.curve) < steps and not algo.is_finished():
            algo.step()
    except Exception as e:  # duelpy's TimeBudgetExceededException
        if "Budget" not in type(e).__name__:
            raise
    dt = time.perf_counter() - t0
    dt *= min(1.0, steps / max(len(fb.curve), 1))
    return np.asarray(fb.curve[:steps]), dt
