"""Dueling-bandit engine through the Python API: quick regret checks, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from maestro_core.duel import ALGORITHMS, Duel, arithmetic_matrix, copeland_matrix, cyclic_matrix, preference_regrets
from maestro_core.errors import DuelError, InputError, StorageError


def mean_regret(alg: str, m: np.ndarray, steps: int, seeds: int) -> np.ndarray:
    """Mean cumulative regret at the four quarters of the horizon."""
    return np.mean([Duel(alg, len(m), seed=s).simulate(m, steps, env_seed=100 + s, every=steps // 4)
                    for s in range(seeds)], axis=0)


@pytest.mark.parametrize("alg", ["rucb", "rmed1", "dts", "ccb"])
@pytest.mark.parametrize("name", ["arithmetic", "cyclic"])
def test_sublinear_on_condorcet_matrices(alg: str, name: str) -> None:
    m = arithmetic_matrix(8) if name == "arithmetic" else cyclic_matrix(6)
    r = mean_regret(alg, m, 20_000, 3)
    # log-T regret: the last quarter costs far less than the first one;
    # uniform sampling (below) costs the same in every quarter.
    assert r[3] - r[2] < 0.35 * r[0], (alg, name, r)


def test_uniform_is_linear() -> None:
    r = mean_regret("uniform", arithmetic_matrix(8), 20_000, 2)
    assert 0.9 < (r[3] - r[2]) / r[0] < 1.1


@pytest.mark.parametrize("name", ["arithmetic", "cyclic"])
def test_dts_not_worse_than_rucb_on_condorcet(name: str) -> None:
    m = arithmetic_matrix(8) if name == "arithmetic" else cyclic_matrix(6)
    dts = mean_regret("dts", m, 10_000, 4)[-1]
    rucb = mean_regret("rucb", m, 10_000, 4)[-1]
    assert dts <= rucb, (dts, rucb)


@pytest.mark.parametrize("alg", ["ccb", "dts"])
def test_copeland_matrix_without_condorcet_winner(alg: str) -> None:
    m = copeland_matrix()
    reg, cw = preference_regrets(m)
    assert cw is None and reg[0] == 0 and (reg[1:] > 0).all()
    d = Duel(alg, 6, seed=1)
    r = d.simulate(m, 20_000, env_seed=2, every=5_000)
    assert r[3] - r[2] < 0.5 * r[0]
    assert d.best() == 0


def test_rucb_compares_the_winner_with_itself_once_sure() -> None:
    # RUCB line 10 (d = argmax_j u_jc, u_cc = 1/2): once every u_jc < 1/2
    # the candidate plays itself. A UCB over win counts never does.
    for alg in ("rucb", "dts"):
        d = Duel(alg, 4, seed=0)
        for j in (1, 2, 3):
            for _ in range(300):
                d.record(0, j)
        assert d.select() == (0, 0), alg
        assert d.best() == 0
        assert d.confidence(0) > 0.999


def test_select_is_idempotent_and_seeded() -> None:
    m = arithmetic_matrix(5)
    for alg in ALGORITHMS:
        a, b = Duel(alg, 5, seed=3), Duel(alg, 5, seed=3)
        a.simulate(m, 200, env_seed=1)
        b.simulate(m, 200, env_seed=1)
        assert a.to_json() == b.to_json()
        p = a.select()
        assert a.select() == p and a.pending == p
        c = Duel.from_json(a.to_json())
        assert c.select() == p
        assert np.array_equal(a.simulate(m, 300, env_seed=9), c.simulate(m, 300, env_seed=9))
    seqs = set()
    for seed in range(3):
        d = Duel("uniform", 10, seed=seed)
        seqs.add(tuple(d.simulate(arithmetic_matrix(10), 50, env_seed=0)))
    assert len(seqs) == 3


def test_wins_and_posterior() -> None:
    d = Duel("dts", 3, seed=0)
    d.record(1, 0)
    w = d.wins()
    assert w.dtype == np.uint64 and w.shape == (3, 3) and w[1, 0] == 1 and w.sum() == 1
    assert d.beats_probability(1, 0) == pytest.approx(0.75)
    assert d.beats_probability(0, 1) == pytest.approx(0.25)
    assert d.steps == 1


def test_bad_input() -> None:
    with pytest.raises(DuelError, match="unknown algorithm"):
        Duel("ucb", 3)
    with pytest.raises(DuelError, match="at least 2 arms"):
        Duel("dts", 1)
    with pytest.raises(DuelError, match="alpha"):
        Duel("rucb", 3, alpha=0.4)
    d = Duel("rucb", 3)
    with pytest.raises(DuelError, match="arm 7 is not one of the 3 arms"):
        d.record(7, 0)
    with pytest.raises(DuelError):
        d.confidence(3)
    with pytest.raises(StorageError):
        Duel.from_json('{"not": "a state"}')
    with pytest.raises(StorageError):
        Duel.from_json(d.to_json().replace('"arms":3', '"arms":5'))
    with pytest.raises(DuelError, match="not a probability|!= 1"):
        d.simulate(np.array([[0.5, 2.0, 0.5], [-1.0, 0.5, 0.5], [0.5, 0.5, 0.5]]), 10)
    with pytest.raises(InputError, match="square"):
        d.simulate(np.zeros((3, 2)), 10)
    with pytest.raises(DuelError, match="has 4 arms, the tournament 3"):
        Duel("dts", 3).simulate(arithmetic_matrix(4), 10)
