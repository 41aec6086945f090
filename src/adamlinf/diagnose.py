r"""Measure your own model: the paper's geometry diagnostic for any PyTorch model.

The paper's central quantity {cite}`xie2025adam` compares two smoothness constants of the loss at
the current parameters: Adam's, :math:`\|H\|_{1,1}=\sum_{ij}|H_{ij}|` (smoothness with respect to
:math:`\ell_\infty`), and AdaSGD's, :math:`d\|H\|_2` (with respect to :math:`\ell_2`, scaled to the
same units). Their ratio

.. math:: \text{advantage} = \frac{d\,\|H\|_2}{\|H\|_{1,1}} = \frac{\|H\|_2}{\|H\|_{1,1}/d}

is the predicted edge of coordinate-wise adaptivity: above 1 the convergence bound of Adam is
smaller than that of AdaSGD (Theorems 3.5 and 3.11 with the coordinate and whole-model
partitions), below 1 it is larger. The same ratio after a random rotation of the parameter space
(the permute-and-rotate map of Appendix D.1) shows how much of the edge comes from the coordinates
the model is written in: AdaSGD does not see a rotation (Theorem 2.2) and :math:`\|H\|_2` does not
change, so only :math:`\|\mathcal R^\top H\mathcal R\|_{1,1}` moves.

=================================  ==================================================================
``diagnose(model, loss_fn, b)``    a :class:`Diagnosis`: ``d``, ``l11_per_dim`` (with its band),
                                   ``spectral_norm``, ``advantage`` (with band), the same after a
                                   rotation, one row per block of a partition, an optional race
``race(model, loss_fn, b, ...)``   Adam, rotated Adam and AdaSGD from the same weights on the same
                                   batches, each at its own learning rate(s): final losses
``preset(name)``                   ``(model, loss_fn, batches)`` of the command line's models
``python -m adamlinf.diagnose``    the command line: a summary table, ``diagnosis.json``,
                                   ``blocks.csv``, ``blocks.png``
=================================  ==================================================================

Everything is built from the library's pieces: the operator :class:`adamlinf.hessian.HVP`, the
Cauchy-probe estimator :func:`adamlinf.hessian.l11_norm` with its bootstrap band, the spectral norm
:func:`adamlinf.hessian.spectral_norm`, :class:`adamlinf.rotations.PermuteRotate`,
:mod:`adamlinf.partitions` and the optimizers of :mod:`adamlinf.optim`.

**The blocks.** For a partition :math:`\Phi` (one block per parameter tensor by default) each row
of :attr:`Diagnosis.blocks` describes the *diagonal block* :math:`H_b=H_{(b),(b)}`:
:math:`\|H_b\|_{1,1}/d_b` with its band and :math:`\|H_b\|_2`, and the block's own advantage
:math:`d_b\|H_b\|_2/\|H_b\|_{1,1}`, the edge of Adam over blockwise Adam with that block as one.
The operator of :math:`H_b` is the restriction of the HVP (a product with a vector supported on the
block, read on the block), so a block costs ``block_probes`` products for its (1,1)-norm and up
to ``block_lanczos_iters`` for its spectral norm, whatever its size; a block with at most
``block_probes`` coordinates is computed exactly from ``d_b`` products instead (its band is then a
point). The blocks cost :math:`B\times(\text{block\_probes}+\text{block\_lanczos\_iters})` products
in all, so partitions with many blocks (rows of a large model) are refused above ``max_blocks``.

**What the loss must be.** As for :class:`adamlinf.hessian.HVP`: a fixed, twice differentiable
function of the parameters, averaged over the list ``batches``. Active dropout and BatchNorm that
updates running statistics are refused (call ``model.eval()``); BatchNorm in eval mode, or without
running statistics, is a fixed function and allowed. Frozen parameters (``requires_grad=False``) are
left out: the Hessian is over the parameters an optimizer moves. Run it inside
``torch.autocast(device_type, dtype=torch.bfloat16)`` for the Hessian of the mixed-precision loss;
it works on any device the model is on.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from . import hessian as _hessian
from . import optim as _optim
from . import partitions as _partitions
from . import tune as _tune
from .hessian import _Operator, check_positive_int
from .rotations import PermuteRotate, RotatedParametrization

__all__ = ["Estimate", "Diagnosis", "diagnose", "race", "preset", "PRESETS", "RACERS", "main"]

LossFn = Callable[[nn.Module, Any], Tensor]

#: The optimizers of the race, in the order they are reported.
RACERS = ("adam", "rotated_adam", "adasgd")

#: The command line's built-in models (``torchvision:NAME`` and ``module:factory`` besides).
PRESETS = ("gpt-ci", "resnet-ci", "mlp-digits")


@dataclass(frozen=True)
class Estimate:
    """A number with its error band ``[lo, hi]`` (``lo == hi == value`` for an exact number)."""

    value: float
    lo: float
    hi: float

    def text(self, digits: int = 3) -> str:
        """``"1.23 [1.10, 1.40]"`` (or ``"1.23"`` without a band)."""
        v = f"{self.value:.{digits}g}"
        if self.lo == self.hi == self.value or math.isnan(self.lo):
            return v
        return f"{v} [{self.lo:.{digits}g}, {self.hi:.{digits}g}]"


def _advantage(spectral: float, per_dim: Estimate) -> Estimate:
    r""":math:`\|H\|_2/(\|H\|_{1,1}/d)` with the band of the (1,1)-norm (:math:`\|H\|_2` taken as exact)."""

    def ratio(x: float) -> float:
        return spectral / x if x > 0 else math.inf

    return Estimate(ratio(per_dim.value), ratio(per_dim.hi), ratio(per_dim.lo))


@dataclass
class Diagnosis:
    r"""The result of :func:`diagnose`.

    Attributes:
        d: Number of (trainable) parameters.
        l11_per_dim: :math:`\|H\|_{1,1}/d` with its band.
        spectral_norm: :math:`\|H\|_2` (``eigsh`` to relative ``tol``, or a Lanczos lower bound).
        advantage: :math:`d\|H\|_2/\|H\|_{1,1}` with its band: above 1 favours Adam over AdaSGD.
        rotated_l11_per_dim: :math:`\|\mathcal R^\top H\mathcal R\|_{1,1}/d` (``None`` without a
            rotation).
        rotated_advantage: :math:`d\|H\|_2/\|\mathcal R^\top H\mathcal R\|_{1,1}` (``None`` without).
        blocks: One row per block: ``block, d, l11_per_dim, lo, hi, spectral_norm, advantage,
            exact`` (empty without blocks).
        race: One row per (optimizer, lr) of the race: ``optimizer, lr, initial_loss,
            final_loss, best, interior`` (``None`` without a race).
        loss: The loss at the parameters diagnosed.
        n_probes: Cauchy probes of each whole-model (1,1)-norm.
        band_level: Coverage of the bands.
        partition: The partition's name.
        rotation: A description of the rotation (``None`` without).
        seed: Seed of probes, rotation and race.
        seconds: Wall time.
        n_products: Hessian-vector products taken.
        meta: Anything else (device, dtype, variant, ...).
    """

    d: int
    l11_per_dim: Estimate
    spectral_norm: float
    advantage: Estimate
    rotated_l11_per_dim: Estimate | None
    rotated_advantage: Estimate | None
    blocks: pd.DataFrame
    race: pd.DataFrame | None
    loss: float
    n_probes: int
    band_level: float
    partition: str
    rotation: str | None
    seed: int
    seconds: float
    n_products: int
    meta: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The summary: one row for the model's coordinates, one after the rotation."""
        rows = [("original", self.l11_per_dim, self.advantage)]
        if self.rotated_l11_per_dim is not None:
            rows.append(("rotated", self.rotated_l11_per_dim, self.rotated_advantage))
        return pd.DataFrame(
            [
                {
                    "coordinates": name,
                    "d": self.d,
                    "l11_per_dim": l11.value,
                    "l11_per_dim_lo": l11.lo,
                    "l11_per_dim_hi": l11.hi,
                    "spectral_norm": self.spectral_norm,
                    "advantage": adv.value,
                    "advantage_lo": adv.lo,
                    "advantage_hi": adv.hi,
                }
                for name, l11, adv in rows
            ]
        )

    def race_summary(self) -> pd.DataFrame | None:
        """The race at each optimizer's best learning rate (``None`` without a race)."""
        if self.race is None:
            return None
        return self.race[self.race.best].reset_index(drop=True)

    def to_dict(self) -> dict:
        """Everything as plain Python (tables as lists of records)."""

        def est(e):
            return None if e is None else asdict(e)

        return {
            "d": self.d,
            "l11_per_dim": est(self.l11_per_dim),
            "spectral_norm": self.spectral_norm,
            "advantage": est(self.advantage),
            "rotated_l11_per_dim": est(self.rotated_l11_per_dim),
            "rotated_advantage": est(self.rotated_advantage),
            "loss": self.loss,
            "n_probes": self.n_probes,
            "band_level": self.band_level,
            "partition": self.partition,
            "rotation": self.rotation,
            "seed": self.seed,
            "seconds": self.seconds,
            "n_products": self.n_products,
            "meta": self.meta,
            "blocks": self.blocks.to_dict(orient="records"),
            "race": None if self.race is None else self.race.to_dict(orient="records"),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The diagnosis as JSON text (non-finite numbers as ``null``); written to ``path`` if given."""

        def clean(x):
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            if isinstance(x, (np.floating, np.integer, np.bool_)):
                x = x.item()
            if isinstance(x, float) and not math.isfinite(x):
                return None
            return x

        text = json.dumps(clean(self.to_dict()), indent=2)
        if path is not None:
            path = Path(path)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)  # atomic
        return text

    def plot(self, ax=None, *, max_blocks: int = 40):
        r"""Bar chart of the blocks: :math:`\|H_b\|_{1,1}/d_b` (with its band) beside :math:`\|H_b\|_2`.

        A block whose first bar is below its second has the geometry Adam exploits (block
        advantage above 1). Log scale; at most ``max_blocks`` blocks (the largest).

        Args:
            ax: A matplotlib axis (default: a new figure).
            max_blocks: Blocks shown.

        Returns:
            The matplotlib figure.
        """
        import matplotlib.pyplot as plt

        b = self.blocks
        if len(b) > max_blocks:
            b = b.nlargest(max_blocks, "d").sort_index()
        if ax is None:
            fig, ax = plt.subplots(figsize=(7.0, 0.24 * len(b) + 1.3))
        else:
            fig = ax.figure
        y = np.arange(len(b))
        h = 0.4
        err = np.vstack([(b.l11_per_dim - b.lo).clip(lower=0), (b.hi - b.l11_per_dim).clip(lower=0)])
        ax.barh(y - h / 2, b.l11_per_dim, h, xerr=err, capsize=2, color="C0", label="‖H_b‖₁,₁ / d_b (band)")
        ax.barh(y + h / 2, b.spectral_norm, h, color="C1", label="‖H_b‖₂")
        ax.set_yticks(y, [str(n) for n in b.block])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("norm of the diagonal block")
        ax.legend(loc="lower right")
        fig.tight_layout()
        return fig


# --------------------------------------------------------------------------------------------
# the diagonal blocks of the Hessian
# --------------------------------------------------------------------------------------------
class _BlockOperator(_Operator):
    r"""The diagonal block :math:`H_{(b),(b)}` of an operator: ``v_b -> (H [0, v_b, 0])_b``."""

    def __init__(self, base, index: Tensor):
        self.base = base
        index = index.to(base.device)
        first, n = int(index[0]), index.numel()
        contiguous = int(index[-1]) - first + 1 == n and bool((index.diff() == 1).all()) if n > 1 else True
        self.index = slice(first, first + n) if contiguous else index
        self.d, self.dtype, self.device = n, base.dtype, base.device

    def _embed(self, V: Tensor) -> Tensor:
        full = torch.zeros((V.shape[0], self.base.d), dtype=self.dtype, device=self.device)
        full[:, self.index] = V.to(device=self.device, dtype=self.dtype)
        return full

    def matvec(self, v: Tensor) -> Tensor:
        """:math:`H_{(b),(b)}v`."""
        return self.base.matvec(self._embed(torch.as_tensor(v)[None])[0])[self.index]

    def matmat(self, V: Tensor) -> Tensor:
        """Row by row, through the base operator's ``matmat`` (batched where it is)."""
        return self.base.matmat(self._embed(V))[:, self.index]


def _seed_of(seed: int, block: int) -> int:
    """A probe seed for one block that depends only on ``(seed, block)``."""
    return int(np.random.SeedSequence([int(seed), 1 << 20, int(block)]).generate_state(1)[0] >> 1)


def _block_names(h, idx: Tensor) -> list[str]:
    """A readable name per block: its first tensor's name (``[k]`` when a tensor holds several)."""
    tensor_of = h.tensor_index()
    labels = []
    for b in range(int(idx.max()) + 1):
        tensors = torch.unique(tensor_of[idx == b])
        label = h.names[int(tensors[0])]
        labels.append(label if len(tensors) == 1 else f"{label} (+{len(tensors) - 1} tensors)")
    count: dict[str, int] = {}
    out = []
    for label in labels:
        k = count.get(label, 0)
        count[label] = k + 1
        out.append((label, k))
    return [label if count[label] == 1 else f"{label}[{k}]" for label, k in out]


def _blocks_table(
    h, idx: Tensor, *, n_probes: int, lanczos_iters: int | None, tol: float, seed: int, variant: str,
    band_level: float, progress: bool,
) -> pd.DataFrame:  # fmt: skip
    names = _block_names(h, idx)
    order = torch.argsort(idx, stable=True)
    sizes = torch.bincount(idx).tolist()
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = []
    for b in tqdm(range(len(sizes)), desc="blocks", disable=not progress, leave=False):
        op = _BlockOperator(h, order[starts[b] : starts[b] + sizes[b]])
        if op.d <= n_probes:  # exact from d_b products: cheaper than the probes
            eye = torch.eye(op.d, dtype=op.dtype, device=op.device)
            H = op.matmat(eye).to("cpu", torch.float64)
            H = (H + H.T) / 2
            l11 = float(H.abs().sum()) / op.d
            lo = hi = l11
            s = float(torch.linalg.eigvalsh(H).abs().max())
            exact = True
        else:
            est = _hessian.l11_norm(
                op, n_probes, seed=_seed_of(seed, b), variant=variant, partition=None, progress=False,
                band_level=band_level,
            )  # fmt: skip
            l11, lo, hi = est.per_dim, est.per_dim_lo, est.per_dim_hi
            s = _hessian.spectral_norm(op, tol=tol, lanczos_iters=lanczos_iters, seed=seed)
            exact = False
        rows.append(
            {"block": names[b], "d": op.d, "l11_per_dim": l11, "lo": lo, "hi": hi, "spectral_norm": s,
             "advantage": s / l11 if l11 > 0 else math.inf, "exact": exact}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _block_index(partition, model: nn.Module, h) -> tuple[str, Tensor]:
    if isinstance(partition, str):
        if partition == "tensor":
            return "tensor", h.tensor_index()
        if partition in ("heads", "head"):
            raise ValueError(
                "partition='heads' needs the model's head count: pass partitions.heads(model, n_head)"
            )
        partition = _partitions.from_name(partition)
    if isinstance(partition, _partitions.Partition):
        return partition.name, partition.flat_index(h.params).cpu()
    raise ValueError(
        "partition must be 'tensor', 'rows', 'coordinate', 'whole' or a partitions.Partition, "
        f"got {partition!r}"
    )


def _rotation_of(rotation, h, seed: int):
    if rotation is True:
        dtype = h.dtype if h.dtype in (torch.float32, torch.float64) else torch.float32
        return PermuteRotate(h.d, k=2, seed=seed, dtype=dtype, device=h.device)
    if rotation is False or rotation is None:
        return None
    if isinstance(rotation, RotatedParametrization):
        rotation = rotation.rotation
    if not (hasattr(rotation, "apply") and hasattr(rotation, "apply_T")):
        raise ValueError(
            "rotation must be True, False, a RotatedParametrization or an object with apply/apply_T, "
            f"got {rotation!r}"
        )
    n = getattr(rotation, "n", h.d)
    if n != h.d:
        raise ValueError(f"rotation acts on {n} coordinates, the model has d={h.d} trainable parameters")
    return rotation


# --------------------------------------------------------------------------------------------
# the diagnostic
# --------------------------------------------------------------------------------------------
def diagnose(
    model: nn.Module,
    loss_fn: LossFn,
    batches,
    *,
    n_probes: int = 50,
    partition="tensor",
    rotation=True,
    seed: int = 0,
    blocks: bool = True,
    block_probes: int | None = None,
    block_lanczos_iters: int | None = 20,
    lanczos_iters: int | None = None,
    tol: float = 1e-6,
    variant: str = "median",
    band_level: float = 0.9,
    max_blocks: int = 256,
    race_steps: int = 0,
    lr=None,
    race_kwargs: Mapping[str, Any] | None = None,
    method: str = "auto",
    micro_batch: int | None = None,
    progress: bool = True,
) -> Diagnosis:
    r"""The paper's geometry diagnostic of ``loss_fn`` at the model's current parameters.

    Estimates :math:`\|H\|_{1,1}/d` (Cauchy probes, Algorithm 4, with a bootstrap band),
    :math:`\|H\|_2` (Lanczos) and their ratio, the ``advantage`` :math:`d\|H\|_2/\|H\|_{1,1}`
    (> 1: the paper predicts Adam ahead of AdaSGD); the same after a rotation of the parameter
    space; one row per diagonal block of ``partition``; and, with ``race_steps``, a race of Adam,
    rotated Adam and AdaSGD (:func:`race`) whose final losses meet the prediction.

    Args:
        model: The model (its trainable parameters are the variables; frozen ones are left out).
        loss_fn: ``loss_fn(model, batch) -> scalar``.
        batches: A list of batches (or one batch); the loss is their average.
        n_probes: Cauchy probes of each whole-model (1,1)-norm (the paper's 50).
        partition: ``"tensor"`` (one block per parameter tensor), ``"rows"``, ``"coordinate"``,
            ``"whole"``, or a :class:`adamlinf.partitions.Partition` (e.g.
            ``partitions.heads(model, n_head)``).
        rotation: ``True`` (a :class:`~adamlinf.rotations.PermuteRotate` with ``k=2`` drawn from
            ``seed``), ``False``, or a rotation of your own (an object with ``apply``/``apply_T``
            over the ``d`` coordinates, or a :class:`~adamlinf.rotations.RotatedParametrization`,
            e.g. the one a rotated-Adam run trained with).
        seed: Seed of the probes, the rotation and the race.
        blocks: Compute the blocks table.
        block_probes: Cauchy probes per block (default ``n_probes``); blocks no larger are exact.
        block_lanczos_iters: Lanczos steps per block spectral norm (``None``: ``eigsh`` to ``tol``).
        lanczos_iters: Lanczos steps for :math:`\|H\|_2` (``None``: ``eigsh`` to ``tol``).
        tol: ``eigsh``'s relative tolerance.
        variant: Estimator variant, ``"median"`` (Algorithm 4) or ``"iqr"`` (the authors' code).
        band_level: Coverage of the bands.
        max_blocks: Refuse partitions with more blocks (they cost products per block).
        race_steps: With a positive number, run :func:`race` for that many steps.
        lr: The race's learning rate(s) (see :func:`race`); required with ``race_steps``.
        race_kwargs: More keyword arguments of :func:`race`.
        method: HVP method (see :class:`adamlinf.hessian.HVP`).
        micro_batch: Rows per micro-batch of an HVP (memory).
        progress: Progress bars (over the probes, the blocks, the race).

    Returns:
        The :class:`Diagnosis`.

    Raises:
        ValueError: A bad argument (named with its value), or a loss that is not a fixed function
            (active dropout, BatchNorm updating running statistics, randomness).
    """
    t0 = time.perf_counter()
    n_probes = check_positive_int("n_probes", n_probes)
    block_probes = n_probes if block_probes is None else check_positive_int("block_probes", block_probes)
    race_steps = int(race_steps)
    if race_steps < 0:
        raise ValueError(f"race_steps must be >= 0, got {race_steps}")
    if race_steps and lr is None:
        raise ValueError("race_steps needs lr= (a float, a list of floats, or a dict per optimizer)")
    h = _hessian.hvp(model, loss_fn, batches, method=method, frozen="exclude", micro_batch=micro_batch)
    rot = _rotation_of(rotation, h, seed)
    if blocks:
        part_name, idx = _block_index(partition, model, h)
        n_blocks = int(idx.max()) + 1
        if n_blocks > max_blocks:
            raise ValueError(
                f"partition {part_name!r} has {n_blocks} blocks > max_blocks={max_blocks}: each block costs "
                f"{block_probes} + Lanczos products; raise max_blocks, pick a coarser partition or "
                "blocks=False"
            )
    else:
        part_name = str(getattr(partition, "name", partition))
    common = dict(variant=variant, partition=None, progress=progress, band_level=band_level)
    est = _hessian.l11_norm(h, n_probes, seed=seed, **common)
    l11 = Estimate(est.per_dim, est.per_dim_lo, est.per_dim_hi)
    spectral = _hessian.spectral_norm(h, tol=tol, lanczos_iters=lanczos_iters, seed=seed)
    rl11 = radv = None
    if rot is not None:
        rest = _hessian.l11_norm(_hessian.rotated(h, rot), n_probes, seed=seed, **common)
        rl11 = Estimate(rest.per_dim, rest.per_dim_lo, rest.per_dim_hi)
        radv = _advantage(spectral, rl11)
    table = pd.DataFrame(
        columns=["block", "d", "l11_per_dim", "lo", "hi", "spectral_norm", "advantage", "exact"]
    )
    if blocks:
        table = _blocks_table(
            h, idx, n_probes=block_probes, lanczos_iters=block_lanczos_iters, tol=tol, seed=seed,
            variant=variant, band_level=band_level, progress=progress,
        )  # fmt: skip
    loss = h.loss()
    n_products = h.n_products
    race_table = None
    if race_steps:
        race_table = race(
            model, loss_fn, batches, race_steps, lr, seed=seed, progress=progress, **(race_kwargs or {})
        )
    return Diagnosis(
        d=h.d,
        l11_per_dim=l11,
        spectral_norm=spectral,
        advantage=_advantage(spectral, l11),
        rotated_l11_per_dim=rl11,
        rotated_advantage=radv,
        blocks=table,
        race=race_table,
        loss=loss,
        n_probes=est.n_probes,
        band_level=band_level,
        partition=part_name,
        rotation=None if rot is None else repr(rot),
        seed=int(seed),
        seconds=time.perf_counter() - t0,
        n_products=n_products,
        meta={
            "variant": variant,
            "device": str(h.device),
            "dtype": str(h.dtype).replace("torch.", ""),
            "autocast": str(
                torch.get_autocast_dtype(h.device.type) if torch.is_autocast_enabled(h.device.type) else None
            ).replace("torch.", ""),
            "spectral": "eigsh" if lanczos_iters is None else f"lanczos({lanczos_iters})",
            "block_probes": block_probes,
            "block_spectral": "eigsh" if block_lanczos_iters is None else f"lanczos({block_lanczos_iters})",
            "n_batches": len(h.batches),
        },
    )


# --------------------------------------------------------------------------------------------
# the race
# --------------------------------------------------------------------------------------------
def _mean_loss(model: nn.Module, loss_fn: LossFn, batches: list) -> float:
    with torch.no_grad():
        value = float(sum(float(loss_fn(model, b)) for b in batches) / len(batches))
    return value if math.isfinite(value) else math.inf


def _train_copy(model, loss_fn, batches, name, lr, steps, seed, betas, eps):
    m = copy.deepcopy(model)
    params = [p for p in m.parameters() if p.requires_grad]
    rp = None
    if name == "rotated_adam":
        rp = RotatedParametrization(m, seed=seed)
        opt = _optim.Adam(rp.parameters(), lr=lr, betas=betas, eps=eps)
    elif name == "adam":
        opt = _optim.Adam(params, lr=lr, betas=betas, eps=eps)
    elif name == "adasgd":
        opt = _optim.AdaSGD(params, lr=lr, betas=betas, eps=eps)
    else:
        raise ValueError(f"optimizer must be one of {RACERS}, got {name!r}")
    for t in range(steps):
        if rp is not None:
            rp.push()
        loss = loss_fn(m, batches[t % len(batches)])
        if not torch.isfinite(loss):
            break
        loss.backward()
        if rp is not None:
            rp.pull_grad()
            m.zero_grad(set_to_none=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if rp is not None:
        rp.push()
    return m, rp


def race(
    model: nn.Module,
    loss_fn: LossFn,
    batches,
    steps: int,
    lr,
    *,
    optimizers: Sequence[str] = RACERS,
    seed: int = 0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    keep_models: bool = False,
    progress: bool = True,
):
    r"""Train copies of ``model`` with Adam, rotated Adam and AdaSGD from the same weights.

    Each copy takes ``steps`` steps on ``batches`` cycled (step ``t`` on ``batches[t % len]``) at a
    constant learning rate; the final loss is the mean over ``batches`` (the loss :func:`diagnose`
    measures). Rotated Adam is :class:`adamlinf.optim.Adam` on :math:`L\circ\mathcal R`
    (:class:`~adamlinf.rotations.RotatedParametrization`, ``PermuteRotate`` with ``k=2`` from
    ``seed``, started at the same point). With a list of learning rates per optimizer each one
    is run, the best final loss is marked ``best``, and ``interior`` says whether it lies strictly
    inside the grid (a fair comparison needs interior optima; a grid of fewer than three values is
    never interior). A diverged run has final loss ``inf``.

    Args:
        model: The model (left unchanged).
        loss_fn: ``loss_fn(model, batch) -> scalar``.
        batches: A list of batches (or one batch).
        steps: Optimizer steps.
        lr: A positive float (every optimizer), a list of floats (a grid for every optimizer), or
            a dict ``{optimizer: float or list}``.
        optimizers: Which of ``"adam"``, ``"rotated_adam"``, ``"adasgd"``.
        seed: Seed of the rotation.
        betas: Adam's and AdaSGD's betas.
        eps: Their epsilon.
        keep_models: Also return ``{optimizer: (trained model, RotatedParametrization or None)}``
            at each best learning rate.
        progress: A progress bar over the runs.

    Returns:
        A table ``optimizer, lr, steps, initial_loss, final_loss, best, interior`` (and the
        models with ``keep_models``).
    """
    steps = check_positive_int("steps", steps)
    batches = batches if isinstance(batches, list) else [batches]
    if not batches:
        raise ValueError("batches is an empty list")
    grids = _tune.grids(lr, optimizers)
    initial = _mean_loss(model, loss_fn, batches)
    rows, models = [], {}

    def evaluate(todo: dict[str, list[float]]) -> dict[str, dict[float, float]]:
        runs = [(name, v) for name, grid in todo.items() for v in grid]
        for name, v in tqdm(runs, desc="race", disable=not progress, leave=False):
            m, rp = _train_copy(model, loss_fn, batches, name, v, steps, seed, betas, eps)
            final = _mean_loss(m, loss_fn, batches)
            rows.append(
                {"optimizer": name, "lr": v, "steps": steps, "initial_loss": initial, "final_loss": final}
            )
            if keep_models:
                best = min((r["final_loss"] for r in rows if r["optimizer"] == name), default=math.inf)
                if final <= best or name not in models:
                    models[name] = (m, rp)
        return {name: {r["lr"]: r["final_loss"] for r in rows if r["optimizer"] == name} for name in todo}

    found = _tune.search(evaluate, grids, max_extensions=0, max_rounds=1)
    table = pd.DataFrame(rows)
    table["best"] = [found.best[o] == v for o, v in zip(table.optimizer, table.lr, strict=True)]
    interior = [len(grids[o]) >= 3 and o not in found.on_edge for o in table.optimizer]
    table["interior"] = table.best & np.array(interior, dtype=bool)
    return (table, models) if keep_models else table


# --------------------------------------------------------------------------------------------
# the command line's models
# --------------------------------------------------------------------------------------------
def _gpt_ci(seed: int, *, n_layer=4, n_head=4, n_embd=64, block_size=64, n_seq=4):
    from .data.text import pydoc_corpus
    from .models.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=256, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    model = GPT(cfg).set_attention("math").eval()
    tokens = torch.from_numpy(np.frombuffer(pydoc_corpus().encode(), dtype=np.uint8).astype(np.int64))
    start = torch.randint(
        0, tokens.numel() - block_size - 1, (n_seq,), generator=torch.Generator().manual_seed(seed)
    )
    x = torch.stack([tokens[s : s + block_size] for s in start])
    y = torch.stack([tokens[s + 1 : s + block_size + 1] for s in start])
    return model, _gpt_loss, [(x, y)]


def _gpt_loss(m: nn.Module, b) -> Tensor:
    return m(b[0], b[1])[1]


def _cross_entropy(m: nn.Module, b) -> Tensor:
    return nn.functional.cross_entropy(m(b[0]), b[1])


def _resnet_ci(seed: int, *, width=8, image_size=16, batch=32):
    from .data.images import build_task
    from .models.resnet import resnet18_cifar

    task = build_task(source="digits", image_size=image_size, batch_size=batch, augment=False, seed=seed)
    model = resnet18_cifar(width=width, blocks=(1, 1, 1, 1), seed=seed).eval()
    return model, _cross_entropy, [task.batch("train", 0, 0)]


def _mlp_digits(seed: int, *, hidden=64, n=256):
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = torch.randperm(len(digits.target), generator=torch.Generator().manual_seed(seed))[:n]
    x = torch.as_tensor(digits.data, dtype=torch.float32)[idx] / 16.0
    y = torch.as_tensor(digits.target, dtype=torch.long)[idx]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))
    return model, _cross_entropy, [(x, y)]


def _torchvision(seed: int, *, arch="resnet18", image_size=32, n=16, last_layer_only=False):
    import torchvision

    from .data.images import load_digits_images

    torch.manual_seed(seed)
    model = torchvision.models.get_model(arch, weights=None, num_classes=10).eval()  # never downloaded
    if last_layer_only:  # the Hessian over the last layer: the rest frozen
        for p in list(model.parameters())[:-2]:
            p.requires_grad_(False)
    data = load_digits_images(image_size)
    idx = torch.randperm(len(data["train_y"]), generator=torch.Generator().manual_seed(seed))[:n]
    x = (data["train_x"][idx].float() / 255.0 - 0.5) / 0.5
    return model, _cross_entropy, [(x, data["train_y"][idx])]


_BUILDERS = {"gpt-ci": _gpt_ci, "resnet-ci": _resnet_ci, "mlp-digits": _mlp_digits}
_TINY = {
    "gpt-ci": dict(n_layer=1, n_head=2, n_embd=16, block_size=16, n_seq=2),
    "resnet-ci": dict(width=2, image_size=8, batch=4),
    "mlp-digits": dict(hidden=8, n=32),
    "torchvision": dict(image_size=16, n=2, last_layer_only=True),
}


def preset(name: str, *, tiny: bool = False, seed: int = 0, **options):
    """``(model, loss_fn, batches)`` of a command-line model.

    * ``"gpt-ci"``: the book's ``ci`` GPT (options ``n_layer=4, n_head=4, n_embd=64,
      block_size=64``; byte vocabulary, math attention) at its initialisation, on ``n_seq=4``
      sequences of Python's documentation (offline);
    * ``"resnet-ci"``: the book's ResNet stand-in (``width=8``, one block per stage, batch-statistics
      BatchNorm) on ``batch=32`` scikit-learn digits at ``image_size=16``;
    * ``"mlp-digits"``: a 64-``hidden``-10 tanh MLP (``hidden=64``) on ``n=256`` scikit-learn digits;
    * ``"torchvision:NAME"``: ``torchvision.models.get_model(NAME, weights=None, num_classes=10)``
      (random weights, never downloaded) in eval mode (BatchNorm on its running statistics) on
      ``n=16`` digits upscaled to ``image_size=32`` x 3 channels; ``last_layer_only=True`` freezes
      every parameter but the last layer's;
    * ``"module:factory"``: ``factory(**options)`` imported from ``module`` (the current folder is
      searched first), returning ``(model, loss_fn, batches)``.

    Args:
        name: The model.
        tiny: Much smaller models and batches (tests, smoke runs); torchvision models keep their
            size and train only their last layer.
        seed: Seed of the weights and the batch.
        **options: The builder's options above.

    Returns:
        ``(model, loss_fn, batches)``.
    """
    kind = "torchvision" if name.startswith("torchvision:") else name
    opts = {**(_TINY.get(kind, {}) if tiny else {}), **options}
    if name in _BUILDERS:
        return _BUILDERS[name](seed, **opts)
    if kind == "torchvision":
        return _torchvision(seed, arch=name.split(":", 1)[1], **opts)
    if ":" in name:
        module, factory = name.split(":", 1)
        sys.path.insert(0, str(Path.cwd()))
        try:
            out = getattr(importlib.import_module(module), factory)(**options)
        finally:
            sys.path.pop(0)
        if not (isinstance(out, tuple) and len(out) == 3):
            raise ValueError(f"{name}() must return (model, loss_fn, batches), got {type(out).__name__}")
        return out
    raise ValueError(
        f"unknown model {name!r}; choose from {list(PRESETS)}, 'torchvision:NAME' or 'module:factory'"
    )


def summary_table(diag: Diagnosis) -> str:
    """The command line's summary: the two rows of :meth:`Diagnosis.to_frame` and the race."""
    lines = [
        f"d = {diag.d:,} parameters, loss {diag.loss:.4g}, {diag.n_probes} Cauchy probes, "
        f"{diag.band_level:.0%} bands, {diag.n_products} Hessian-vector products, {diag.seconds:.1f} s"
    ]
    lines.append(f"{'coordinates':<12} {'‖H‖₁,₁/d':>28} {'‖H‖₂':>10} {'advantage d‖H‖₂/‖H‖₁,₁':>28}")
    for name, l11, adv in [("original", diag.l11_per_dim, diag.advantage)] + (
        [("rotated", diag.rotated_l11_per_dim, diag.rotated_advantage)] if diag.rotated_advantage else []
    ):
        lines.append(f"{name:<12} {l11.text():>28} {diag.spectral_norm:>10.4g} {adv.text():>28}")
    lines.append("advantage > 1: the paper's bounds favour Adam over AdaSGD (coordinate-wise adaptivity).")
    if diag.race is not None:
        lines.append("race (final loss at each optimizer's best lr):")
        for r in diag.race_summary().itertuples():
            lines.append(f"  {r.optimizer:<13} lr {r.lr:<9.3g} {r.initial_loss:.4g} -> {r.final_loss:.4g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m adamlinf.diagnose --model NAME [--probes N] [--out DIR] ...``."""
    ap = argparse.ArgumentParser(prog="python -m adamlinf.diagnose", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model", required=True, help="gpt-ci | resnet-ci | mlp-digits | torchvision:NAME | module:factory"
    )
    ap.add_argument("--probes", type=int, default=50, help="Cauchy probes (default 50)")
    ap.add_argument("--block-probes", type=int, default=None, help="probes per block (default --probes)")
    ap.add_argument("--lanczos", type=int, default=None, help="Lanczos steps for ‖H‖₂ (default: eigsh)")
    ap.add_argument("--block-lanczos", type=int, default=20, help="Lanczos steps per block spectral norm")
    ap.add_argument("--partition", default="tensor", help="tensor | rows | coordinate | whole")
    ap.add_argument("--no-blocks", action="store_true", help="skip the blocks table")
    ap.add_argument("--no-rotation", action="store_true", help="skip the rotated estimate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--race-steps", type=int, default=0, help="race Adam, rotated Adam, AdaSGD for N steps")
    ap.add_argument("--lr", type=float, nargs="+", default=None, help="the race's learning rate grid")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", action="store_true", help="much smaller models (smoke tests)")
    ap.add_argument("--out", default="diagnosis", help="output folder (default ./diagnosis)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    model, loss_fn, batches = preset(a.model, tiny=a.tiny, seed=a.seed)
    if a.device != "cpu":
        model = model.to(a.device)
        batches = [
            tuple(t.to(a.device) for t in b) if isinstance(b, (tuple, list)) else b.to(a.device)
            for b in batches
        ]
    diag = diagnose(
        model, loss_fn, batches, n_probes=a.probes, partition=a.partition, rotation=not a.no_rotation,
        seed=a.seed, blocks=not a.no_blocks, block_probes=a.block_probes, block_lanczos_iters=a.block_lanczos,
        lanczos_iters=a.lanczos,
        race_steps=a.race_steps, lr=a.lr, progress=not a.quiet,
    )  # fmt: skip
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    diag.to_json(out / "diagnosis.json")
    diag.blocks.to_csv(out / "blocks.csv", index=False)
    if len(diag.blocks):
        diag.plot().savefig(out / "blocks.png", dpi=120)
    print(summary_table(diag))
    if len(diag.blocks):
        print(diag.blocks.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(
        f"wrote {out / 'diagnosis.json'}, {out / 'blocks.csv'}"
        + (f", {out / 'blocks.png'}" if len(diag.blocks) else "")
    )
    return 0


class _CallableModule(types.ModuleType):
    """``adamlinf.diagnose(...)`` works whether the name holds this module or the function."""

    def __call__(self, *args, **kwargs) -> Diagnosis:
        return diagnose(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
