"""Brute-force Shapley values and interaction indices, straight from the
definitions, in pure Python (no numpy, no maestro_core). The test oracle.

``values[k]`` is ``v(S)`` for the players whose bits are set in ``k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from math import factorial


def players(values: Sequence[float]) -> int:
    n = len(values).bit_length() - 1
    assert len(values) == 1 << n
    return n


def shapley_by_subsets(values: Sequence[float]) -> list[float]:
    """φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S∪{i}) − v(S))."""
    n = players(values)
    out = []
    for i in range(n):
        total = 0.0
        for s in range(1 << n):
            if s >> i & 1:
                continue
            k = bin(s).count("1")
            total += factorial(k) * factorial(n - k - 1) / factorial(n) * (values[s | 1 << i] - values[s])
        out.append(total)
    return out


def shapley_by_orders(values: Sequence[float]) -> list[float]:
    """φ_i = average over all n! orders of i's marginal contribution (n ≤ 8)."""
    n = players(values)
    out = [0.0] * n
    count = 0
    for order in permutations(range(n)):
        s = 0
        for p in order:
            out[p] += values[s | 1 << p] - values[s]
            s |= 1 << p
        count += 1
    return [x / count for x in out]


def interaction(values: Sequence[float], i: int, j: int) -> float:
    """Shapley interaction index of the pair {i, j} (Grabisch & Roubens 1999):
    Σ_{S ⊆ N∖{i,j}} |S|!(n−|S|−2)!/(n−1)! · Δ_ij v(S)."""
    n = players(values)
    total = 0.0
    for s in range(1 << n):
        if s >> i & 1 or s >> j & 1:
            continue
        k = bin(s).count("1")
        d = values[s | 1 << i | 1 << j] - values[s | 1 << i] - values[s | 1 << j] + values[s]
        total += factorial(k) * factorial(n - k - 2) / factorial(n - 1) * d
    return total
