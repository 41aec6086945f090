r"""The learning-rate search: grids extended at an edge until the optimum is interior, then refined.

One batched :func:`search` serves every tuned comparison (Table 1's quadratics, the GPT and ResNet
sweeps, the review's arms, :func:`adamlinf.diagnose.race`). Lower scores are better; a non-finite score
(diverged) ranks last, and ties go to the smaller lr.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Half a decade, the ratio of the training chapters' grids.
HALF_DECADE = math.sqrt(10.0)


def lr_grid(lo: float, ratio: float, n: int) -> list[float]:
    """``n`` values ``lo * ratio**k``, ``k = 0, ..., n - 1``."""
    return [lo * ratio**k for k in range(n)]


def grids(lr, keys: Sequence[Hashable]) -> dict[Hashable, list[float]]:
    """A grid per key from a positive number, a list of them, or ``{key: number or list}``."""
    out = {}
    for key in keys:
        value = lr.get(key) if isinstance(lr, Mapping) else lr
        if value is None:
            raise ValueError(f"lr has no entry for {key!r}: give one per key {list(keys)}")
        grid = [value] if isinstance(value, (int, float)) else list(value)
        if not grid or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in grid):
            raise ValueError(f"lr for {key!r} must be a positive number or a list of them, got {value!r}")
        out[key] = [float(v) for v in grid]
    return out


def _argmin(scores: Mapping[float, float]) -> int:
    losses = np.array([scores[lr] for lr in sorted(scores)], dtype=float)
    return int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))


def best(scores: Mapping[float, float]) -> float:
    """The lr of the lowest score (the smallest such lr on ties; non-finite scores rank last)."""
    return sorted(scores)[_argmin(scores)]


def edge(scores: Mapping[float, float]) -> str | None:
    """``"low"`` (also when every run diverged) or ``"high"`` when the best lr is on that edge, else None."""
    i = _argmin(scores)
    if i == 0:
        return "low"
    return "high" if i == len(scores) - 1 else None


def _extend(lrs: list[float], side: str, ratio: float, n: int, digits: int | None) -> list[float]:
    if digits is None:
        if side == "low":
            return [lrs[0] / ratio**k for k in range(n, 0, -1)]
        return [lrs[-1] * ratio**k for k in range(1, n + 1)]

    # On the lattice of the grid value with the shortest decimal form (the first such), so that rounding
    # never drifts (0.03162 · √10 is 0.1, not 0.09999).
    anchor = min(lrs, key=lambda x: len(f"{x:.{digits}g}".split("e")[0].replace("0.", "").strip("0")))
    sign = -1 if side == "low" else 1
    k = round(math.log((lrs[0] if side == "low" else lrs[-1]) / anchor) / math.log(ratio))
    return sorted(float(f"{anchor * ratio ** (k + sign * j):.{digits}g}") for j in range(1, n + 1))


def _refine(lrs: list[float], scores: Mapping[float, float], factor: float) -> list[float]:
    i = _argmin(scores)
    new = []
    for nb in (lrs[i - 1], lrs[i + 1]):
        ratio = max(nb, lrs[i]) / min(nb, lrs[i])
        if ratio > factor * (1 + 1e-9):
            n = math.ceil(math.log(ratio) / math.log(factor) - 1e-9) - 1
            new += [min(nb, lrs[i]) * ratio ** (j / (n + 1)) for j in range(1, n + 1)]
    return sorted(new)


@dataclass
class Search:
    """The result of :func:`search`.

    ``scores`` ``{key: {lr: score}}``, one record per extension (``key``, ``side``, ``lr`` of the new
    edge, ``round``), the keys still ``on_edge``, and per key whether it was ``done``.
    """

    scores: dict[Hashable, dict[float, float]]
    extensions: list[dict] = field(default_factory=list)
    on_edge: list[Hashable] = field(default_factory=list)
    done: dict[Hashable, bool] = field(default_factory=dict)

    @property
    def best(self) -> dict[Hashable, float]:
        """The best lr per key (:func:`best`)."""
        return {k: best(s) for k, s in self.scores.items()}


def search(
    evaluate: Callable[[dict[Hashable, list[float]]], Mapping[Hashable, Mapping[float, float]]],
    grids: Mapping[Hashable, Sequence[float]],
    *,
    ratio: float = HALF_DECADE,
    n_extend: int = 1,
    digits: int | None = None,
    refine: float | None = None,
    max_extensions: int | None = None,
    max_rounds: int | None = None,
) -> Search:
    """Search the best lr of many keys at once, in rounds of one batched ``evaluate``.

    Per key and round, a best lr on an edge (all diverged: the low one) adds values past it, an interior
    one is refined log-evenly towards its neighbours; until no key asks for more.

    Args:
        evaluate: ``{key: [new lrs]} -> {key: {lr: score}}`` (only the keys with new values).
        grids: The starting grid per key.
        ratio: The factor between values added past an edge (> 1).
        n_extend: How many values one extension adds.
        digits: Round added values to this many significant digits on the lattice of the grid.
        refine: The largest ratio left between the best lr and its neighbours (None: no refinement).
        max_extensions: The most extensions per key (None: no bound).
        max_rounds: The most ``evaluate`` calls (None: no bound).
    """
    scores: dict[Hashable, dict[float, float]] = {k: {} for k in grids}
    pending = {k: sorted(float(v) for v in g) for k, g in grids.items()}
    added = dict.fromkeys(grids, 0)
    out = Search(scores)
    rounds = 0
    while (max_rounds is None or rounds < max_rounds) and any(pending.values()):
        todo = {k: v for k, v in pending.items() if v}
        got = evaluate(todo)
        rounds += 1
        for k in todo:
            scores[k].update(got[k])
        out.on_edge = []
        for k in grids:
            lrs = sorted(scores[k])
            side = edge(scores[k])
            new: list[float] = []
            if side is not None and (max_extensions is None or added[k] < max_extensions):
                new = _extend(lrs, side, ratio, n_extend, digits)
                added[k] += 1
                edge_lr = new[0] if side == "low" else new[-1]
                out.extensions.append({"key": k, "side": side, "lr": edge_lr, "round": rounds})
            elif side is not None:
                out.on_edge.append(k)
            elif refine is not None:
                new = _refine(lrs, scores[k], refine)
            pending[k] = [v for v in new if v not in scores[k]]
    out.done = {k: not pending[k] for k in grids}
    return out
