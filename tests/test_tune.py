"""The one learning-rate search (adamlinf.tune): edge extension, refinement, the lattice, and a
replay of the Figure 1 page's recorded ci tuning table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adamlinf import tune


def _next(scores, **kw):
    """The lrs :func:`tune.search` asks for after scoring ``scores`` (its second evaluate call)."""
    asked = []

    def evaluate(todo):
        asked.append(todo["a"])
        return {"a": {lr: scores.get(lr, math.inf) for lr in todo["a"]}}

    tune.search(evaluate, {"a": list(scores)}, max_rounds=2, **kw)
    return asked[1] if len(asked) > 1 else []


def test_extension_and_refinement_rules():
    raw = {"ratio": 2.0, "n_extend": 2}
    assert _next({1.0: math.inf, 2.0: math.inf}, **raw) == [0.25, 0.5]  # all diverged: go down
    assert _next({1.0: 1.0, 2.0: 2.0}, **raw) == [0.25, 0.5]  # best at the low edge
    assert _next({1.0: 3.0, 2.0: 2.0}, **raw) == [4.0, 8.0]  # best at the high edge
    assert _next({1.0: 1.0, 1.5: 1.0, 2.25: 3.0}, **raw) == [0.25, 0.5]  # a tie goes low
    new = _next({1.0: 3.0, 3.375: 1.0, 3.375**2: 3.0}, refine=1.5)
    np.testing.assert_allclose(new, [1.5, 2.25, 3.375 * 1.5, 3.375 * 2.25], rtol=1e-12)
    assert _next({1.0: 3.0, 1.5: 1.0, 2.25: 3.0}, refine=1.5) == []  # resolved
    # on the lattice of the shortest decimal value: 0.03162 * sqrt(10) is 0.1, not 0.09999
    assert _next({1e-3: 3.0, 3.162e-3: 2.0, 1e-2: 1.5, 3.162e-2: 1.0}, digits=4) == [0.1]
    assert tune.edge({1e-3: 2.0, 1e-2: 1.0, 1e-1: math.inf}) is None
    assert tune.best({1e-3: 1.0, 1e-2: 1.0, 1e-1: math.inf}) == 1e-3


@pytest.mark.parametrize("lr_star", [3.7e-5, 2e-2, 41.0])  # below, inside, above the start grid
def test_search_extends_and_refines(lr_star):
    def score(lr):  # U-shaped in log(lr), diverged above 30 lr*
        return math.inf if lr > 30 * lr_star else 1.0 + math.log(lr / lr_star) ** 2

    calls = []

    def evaluate(req):
        calls.append(req)
        return {k: {lr: score(lr) for lr in v} for k, v in req.items()}

    start = tune.lr_grid(1e-3, 3.375, 6)
    found = tune.search(evaluate, {"a": start}, ratio=3.375, n_extend=2, refine=1.5, max_rounds=20)
    assert found.done["a"] and len(calls) >= 2
    lrs = sorted(found.scores["a"])
    i = lrs.index(found.best["a"])
    assert 0 < i < len(lrs) - 1  # interior optimum
    assert lrs[i + 1] / lrs[i] <= 1.5 * (1 + 1e-9) and lrs[i] / lrs[i - 1] <= 1.5 * (1 + 1e-9)
    assert abs(math.log(lrs[i] / lr_star)) <= math.log(1.5) / 2 + 1e-9  # within half a grid step
    assert set(start) <= set(lrs)


def test_extension_budget_leaves_the_key_on_its_edge():
    found = tune.search(
        lambda req: {k: {lr: lr for lr in v} for k, v in req.items()},  # best at the lowest lr, always
        {"a": [1e-3, 3.162e-3, 1e-2]},
        digits=4,
        max_extensions=2,
    )
    assert sorted(found.scores["a"]) == [1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2]
    assert found.on_edge == ["a"] and [e["round"] for e in found.extensions] == [1, 2]


def test_grids_refuse_bad_learning_rates():
    assert tune.grids({"a": 1e-3, "b": [1e-3, 1e-2]}, ["a", "b"]) == {"a": [1e-3], "b": [1e-3, 1e-2]}
    with pytest.raises(ValueError, match="'b'"):
        tune.grids({"a": 1e-3}, ["a", "b"])
    with pytest.raises(ValueError, match="positive"):
        tune.grids([1e-3, 0.0], ["a"])
