r"""Measure your own model: the paper's geometry diagnostic for any PyTorch model {cite}`xie2025adam`.

At the current parameters, the advantage :math:`d\|H\|_2/\|H\|_{1,1}` of Adam's smoothness constant over
AdaSGD's (above 1 where Adam's bound is the smaller, Theorems 3.5 and 3.11) in the model's coordinates,
after a random rotation (Appendix D.1, which moves only :math:`\|H\|_{1,1}`) and per diagonal block
:math:`H_{(b),(b)}` of a partition. :func:`race` trains Adam, rotated Adam and AdaSGD from the same weights;
``python -m adamlinf.diagnose`` is the command line. The loss must be a fixed function
(:class:`adamlinf.hessian.HVP`); frozen parameters are left out.
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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
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
from .hessian import Operator, check_positive_int
from .results import write_text_atomic
from .rotations import PermuteRotate, RotatedParametrization, as_rotation

__all__ = ["Estimate", "Diagnosis", "diagnose", "race", "preset", "PRESETS", "RACERS", "main"]

LossFn = Callable[[nn.Module, Any], Tensor]

#: The optimizers of the race, in the order they are reported.
RACERS = ("adam", "rotated_adam", "adasgd")

#: The command line's built-in models (``torchvision:NAME`` and ``module:factory`` besides).
PRESETS = ("gpt-ci", "resnet-ci", "mlp-digits")

_BLOCK_COLUMNS = ["block", "d", "l11_per_dim", "lo", "hi", "spectral_norm", "advantage", "exact"]


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


def _estimate(est) -> Estimate:
    return Estimate(est.per_dim, est.per_dim_lo, est.per_dim_hi)


def _advantage(spectral: float, per_dim: Estimate) -> Estimate:
    """The advantage with the band of the (1,1)-norm (the spectral norm taken as exact)."""
    return Estimate(*(spectral / x if x > 0 else math.inf for x in (per_dim.value, per_dim.hi, per_dim.lo)))


@dataclass
class Diagnosis:
    r"""The result of :func:`diagnose`.

    ``rotated_*`` are for :math:`\mathcal R^\top H\mathcal R` (``None`` without a rotation);
    ``blocks`` has one row per block, ``race`` one per (optimizer, lr) of :func:`race`.
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

    def rows(self) -> list[tuple[str, Estimate, Estimate]]:
        """``(coordinates, l11_per_dim, advantage)`` for the original and the rotated coordinates."""
        rows = [("original", self.l11_per_dim, self.advantage)]
        if self.rotated_l11_per_dim is not None:
            rows.append(("rotated", self.rotated_l11_per_dim, self.rotated_advantage))
        return rows

    def to_frame(self) -> pd.DataFrame:
        """The summary: one row for the model's coordinates, one after the rotation."""
        rows = []
        for name, l11, adv in self.rows():
            row = {"coordinates": name, "d": self.d}
            row |= {"l11_per_dim": l11.value, "l11_per_dim_lo": l11.lo, "l11_per_dim_hi": l11.hi}
            row |= {"spectral_norm": self.spectral_norm}
            rows.append(row | {"advantage": adv.value, "advantage_lo": adv.lo, "advantage_hi": adv.hi})
        return pd.DataFrame(rows)

    def race_summary(self) -> pd.DataFrame | None:
        """The race at each optimizer's best learning rate (``None`` without a race)."""
        return None if self.race is None else self.race[self.race.best].reset_index(drop=True)

    def to_json(self, path: str | Path | None = None) -> str:
        """The diagnosis as JSON (tables as records, non-finite as null), written atomically to ``path``."""

        def clean(x):
            if isinstance(x, Estimate):
                x = asdict(x)
            elif isinstance(x, pd.DataFrame):
                x = x.to_dict(orient="records")
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            if isinstance(x, (np.floating, np.integer, np.bool_)):
                x = x.item()
            return None if isinstance(x, float) and not math.isfinite(x) else x

        text = json.dumps(clean({f.name: getattr(self, f.name) for f in fields(self)}), indent=2)
        if path is not None:
            write_text_atomic(path, text)
        return text

    def plot(self, ax=None, *, max_blocks: int = 40):
        r"""Bars of :math:`\|H_b\|_{1,1}/d_b` (with band) beside :math:`\|H_b\|_2` of the largest blocks."""
        import matplotlib.pyplot as plt

        b = self.blocks
        if len(b) > max_blocks:
            b = b.nlargest(max_blocks, "d").sort_index()
        fig, ax = plt.subplots(figsize=(7.0, 0.24 * len(b) + 1.3)) if ax is None else (ax.figure, ax)
        y, h = np.arange(len(b)), 0.4
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


class _BlockOperator(Operator):
    r"""The diagonal block :math:`H_{(b),(b)}` of an operator: ``v_b -> (H [0, v_b, 0])_b``."""

    def __init__(self, base, index: Tensor):
        self.base = base
        index = index.to(base.device)
        contiguous = bool((index.diff() == 1).all())
        self.index = slice(int(index[0]), int(index[0]) + index.numel()) if contiguous else index
        self.d, self.dtype, self.device = index.numel(), base.dtype, base.device

    def _embed(self, V: Tensor) -> Tensor:
        full = torch.zeros((V.shape[0], self.base.d), dtype=self.dtype, device=self.device)
        full[:, self.index] = V.to(device=self.device, dtype=self.dtype)
        return full

    def matvec(self, v: Tensor) -> Tensor:
        return self.base.matvec(self._embed(torch.as_tensor(v)[None])[0])[self.index]

    def matmat(self, V: Tensor) -> Tensor:
        return self.base.matmat(self._embed(V))[:, self.index]


def _block_names(h, idx: Tensor) -> list[str]:
    """Each block's first tensor's name (``(+n tensors)`` when it holds more, ``[k]`` for repeats)."""
    tensor_of = h.tensor_index()
    labels = []
    for b in range(int(idx.max()) + 1):
        tensors = torch.unique(tensor_of[idx == b])
        label = h.names[int(tensors[0])]
        labels.append(label if len(tensors) == 1 else f"{label} (+{len(tensors) - 1} tensors)")
    count, seen = Counter(labels), Counter()
    names = []
    for label in labels:
        names.append(label if count[label] == 1 else f"{label}[{seen[label]}]")
        seen[label] += 1
    return names


def _blocks_table(h, idx: Tensor, n_probes: int, lanczos_iters, tol, seed, progress, estimator: dict):
    names = _block_names(h, idx)
    blocks = torch.argsort(idx, stable=True).split(torch.bincount(idx).tolist())
    rows = []
    for b, index in enumerate(tqdm(blocks, desc="blocks", disable=not progress, leave=False)):
        op = _BlockOperator(h, index)
        if op.d <= n_probes:  # exact from d_b products: cheaper than the probes
            H = op.matmat(torch.eye(op.d, dtype=op.dtype, device=op.device)).to("cpu", torch.float64)
            H = (H + H.T) / 2
            l11 = lo = hi = float(H.abs().sum()) / op.d
            s = float(torch.linalg.eigvalsh(H).abs().max())
        else:
            block_seed = int(np.random.SeedSequence([int(seed), 1 << 20, b]).generate_state(1)[0] >> 1)
            est = _hessian.l11_norm(op, n_probes, seed=block_seed, progress=False, **estimator)
            l11, lo, hi = est.per_dim, est.per_dim_lo, est.per_dim_hi
            s = _hessian.spectral_norm(op, tol=tol, lanczos_iters=lanczos_iters, seed=seed)
        rows.append((names[b], op.d, l11, lo, hi, s, s / l11 if l11 > 0 else math.inf, op.d <= n_probes))
    return pd.DataFrame(rows, columns=_BLOCK_COLUMNS)


def _block_index(partition, h) -> tuple[str, Tensor]:
    if partition == "tensor":
        return "tensor", h.tensor_index()
    partition = _partitions.from_name(partition)  # "heads" needs partitions.heads(model, n_head)
    return partition.name, partition.flat_index(h.params).cpu()


def _rotation_of(rotation, h, seed: int):
    if rotation is True:
        dtype = h.dtype if h.dtype in (torch.float32, torch.float64) else torch.float32
        return PermuteRotate(h.d, k=2, seed=seed, dtype=dtype, device=h.device)
    if rotation is False or rotation is None:
        return None
    if isinstance(rotation, RotatedParametrization):
        rotation = rotation.rotation
    rotation = as_rotation(rotation)  # a square tensor, or anything with apply/apply_T
    if getattr(rotation, "n", h.d) != h.d:
        raise ValueError(
            f"rotation acts on {rotation.n} coordinates, the model has d={h.d} trainable parameters"
        )
    return rotation


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
    method: str = "auto",
    micro_batch: int | None = None,
    progress: bool = True,
) -> Diagnosis:
    """The geometry diagnostic of ``loss_fn`` (averaged over ``batches``) at the model's parameters.

    Args:
        model: The model (its trainable parameters are the variables).
        loss_fn: ``loss_fn(model, batch) -> scalar``.
        batches: A list of batches (or one batch).
        n_probes: Cauchy probes per whole-model (1,1)-norm (Algorithm 4).
        partition: ``"tensor"``, ``"rows"``, ... or a ``Partition`` (``partitions.heads(model, n_head)``).
        rotation: ``True`` (``PermuteRotate(d, k=2, seed)``), ``False``, a rotation or a parametrization.
        seed: Seed of the probes, the rotation and the race.
        blocks: Compute the blocks table (refused above ``max_blocks`` blocks).
        block_probes: Probes per block (default ``n_probes``); blocks no larger are exact.
        block_lanczos_iters: Lanczos steps per block spectral norm (``None``: ``eigsh``).
        lanczos_iters: Lanczos steps for the spectral norm (``None``: ``eigsh`` to ``tol``).
        tol: ``eigsh``'s relative tolerance.
        variant: ``"median"`` (Algorithm 4) or ``"iqr"`` (the authors' code).
        band_level: Coverage of the bands.
        max_blocks: The most blocks a partition may have.
        race_steps: With a positive number, :func:`race` for that many steps at ``lr``.
        lr: The race's learning rate(s).
        method: HVP method (:class:`adamlinf.hessian.HVP`).
        micro_batch: Rows per micro-batch of an HVP.
        progress: Progress bars.
    """
    t0 = time.perf_counter()
    block_probes = n_probes if block_probes is None else check_positive_int("block_probes", block_probes)
    race_steps = int(race_steps)
    if race_steps < 0:
        raise ValueError(f"race_steps must be >= 0, got {race_steps}")
    if race_steps and lr is None:
        raise ValueError("race_steps needs lr= (a float, a list of floats, or a dict per optimizer)")
    h = _hessian.hvp(model, loss_fn, batches, method=method, frozen="exclude", micro_batch=micro_batch)
    rot = _rotation_of(rotation, h, seed)
    part_name = str(getattr(partition, "name", partition))
    if blocks:
        part_name, idx = _block_index(partition, h)
        if (n_blocks := int(idx.max()) + 1) > max_blocks:
            raise ValueError(
                f"partition {part_name!r} has {n_blocks} blocks > max_blocks={max_blocks} (each costs "
                f"{block_probes} + Lanczos products): raise max_blocks, a coarser partition or blocks=False"
            )
    common = dict(variant=variant, partition=None, band_level=band_level)
    est = _hessian.l11_norm(h, n_probes, seed=seed, progress=progress, **common)
    l11 = _estimate(est)
    spectral = _hessian.spectral_norm(h, tol=tol, lanczos_iters=lanczos_iters, seed=seed)
    rl11 = None
    if rot is not None:
        rotated = _hessian.rotated(h, rot)
        rl11 = _estimate(_hessian.l11_norm(rotated, n_probes, seed=seed, progress=progress, **common))
    table = pd.DataFrame(columns=_BLOCK_COLUMNS)
    if blocks:
        table = _blocks_table(h, idx, block_probes, block_lanczos_iters, tol, seed, progress, common)
    loss, n_products = h.loss(), h.n_products
    race_table = None
    if race_steps:
        race_table = race(model, loss_fn, batches, race_steps, lr, seed=seed, progress=progress)
    kind = h.device.type
    autocast = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    return Diagnosis(
        d=h.d,
        l11_per_dim=l11,
        spectral_norm=spectral,
        advantage=_advantage(spectral, l11),
        rotated_l11_per_dim=rl11,
        rotated_advantage=None if rl11 is None else _advantage(spectral, rl11),
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
            "autocast": str(autocast).replace("torch.", ""),
            "spectral": "eigsh" if lanczos_iters is None else f"lanczos({lanczos_iters})",
            "block_probes": block_probes,
            "block_spectral": "eigsh" if block_lanczos_iters is None else f"lanczos({block_lanczos_iters})",
            "n_batches": len(h.batches),
        },
    )


def _mean_loss(model: nn.Module, loss_fn: LossFn, batches: list) -> float:
    with torch.no_grad():
        value = float(sum(float(loss_fn(model, b)) for b in batches) / len(batches))
    return value if math.isfinite(value) else math.inf


def train_steps(
    model: nn.Module, opt, loss_at: Callable[[int], Tensor], steps: int, *, rp=None, before_step=None
) -> bool:
    r"""``steps`` optimizer steps on ``loss_at(t)``; ``False`` at the first non-finite loss (no step taken).

    With ``rp`` (:class:`~adamlinf.rotations.RotatedParametrization`) it trains :math:`L\circ R`, the last
    iterate pushed at the end. ``before_step(t)`` runs first in step ``t`` (e.g. a learning-rate schedule).
    """
    for t in range(steps):
        if before_step is not None:
            before_step(t)
        if rp is not None:
            rp.push()
        loss = loss_at(t)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        if rp is not None:
            rp.pull_grad()
            model.zero_grad(set_to_none=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if rp is not None:
        rp.push()
    return True


def _train_copy(model, loss_fn, batches, name, lr, steps, seed, betas, eps):
    m = copy.deepcopy(model)
    rp = RotatedParametrization(m, seed=seed) if _optim.OPTIMIZERS[name].rotates else None
    params = [p for p in m.parameters() if p.requires_grad] if rp is None else rp.parameters()
    opt = _optim.create(name, params, lr=lr, betas=betas, eps=eps)
    train_steps(m, opt, lambda t: loss_fn(m, batches[t % len(batches)]), steps, rp=rp)
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
    r"""Adam, rotated Adam and AdaSGD from the same weights, ``steps`` steps on ``batches`` cycled.

    Rotated Adam is Adam on :math:`L\circ\mathcal R` (``PermuteRotate(k=2)`` from ``seed``). ``lr``: a
    constant float, a grid for every optimizer or ``{optimizer: float or list}``. Returns the table
    ``optimizer, lr, steps, initial_loss, final_loss, best, interior`` (final mean loss, ``inf`` when
    diverged; ``interior``: best strictly inside a grid of three or more), with ``keep_models`` also
    ``{optimizer: (model, rp or None)}`` at each best lr.
    """
    steps = check_positive_int("steps", steps)
    batches = batches if isinstance(batches, list) else [batches]
    if not batches:
        raise ValueError("batches is an empty list")
    if unknown := [name for name in optimizers if name not in RACERS]:
        raise ValueError(f"optimizer must be one of {RACERS}, got {unknown[0]!r}")
    grids = _tune.grids(lr, optimizers)
    initial = _mean_loss(model, loss_fn, batches)
    rows, models = [], {}

    def evaluate(todo: dict[str, list[float]]) -> dict[str, dict[float, float]]:
        runs = [(name, v) for name, grid in todo.items() for v in grid]
        for name, v in tqdm(runs, desc="race", disable=not progress, leave=False):
            m, rp = _train_copy(model, loss_fn, batches, name, v, steps, seed, betas, eps)
            final = _mean_loss(m, loss_fn, batches)
            row = {"optimizer": name, "lr": v, "steps": steps, "initial_loss": initial, "final_loss": final}
            rows.append(row)
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


def _gpt_ci(seed: int, *, n_layer=4, n_head=4, n_embd=64, block_size=64, n_seq=4):
    from .data.text import pydoc_corpus
    from .models.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=256, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    model = GPT(cfg).set_attention("math").eval()
    tokens = torch.from_numpy(np.frombuffer(pydoc_corpus().encode(), dtype=np.uint8).astype(np.int64))
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, tokens.numel() - block_size - 1, (n_seq,), generator=g)
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


#: name -> (builder, its ``tiny`` options).
_BUILDERS = {
    "gpt-ci": (_gpt_ci, dict(n_layer=1, n_head=2, n_embd=16, block_size=16, n_seq=2)),
    "resnet-ci": (_resnet_ci, dict(width=2, image_size=8, batch=4)),
    "mlp-digits": (_mlp_digits, dict(hidden=8, n=32)),
    "torchvision": (_torchvision, dict(image_size=16, n=2, last_layer_only=True)),
}


def preset(name: str, *, tiny: bool = False, seed: int = 0, **options):
    """``(model, loss_fn, batches)`` of a command-line model (``tiny``: much smaller, for smoke tests).

    ``"gpt-ci"``, ``"resnet-ci"``: the book's ci models; ``"mlp-digits"``; ``"torchvision:NAME"``
    (random weights, never downloaded); ``"module:factory"``: ``factory(**options)`` imported from
    ``module`` (the current folder first). ``options``: the builders' keyword arguments.
    """
    kind, _, arg = name.partition(":")
    if kind in _BUILDERS and (kind == "torchvision") == bool(arg):
        build, tiny_options = _BUILDERS[kind]
        opts = {**(tiny_options if tiny else {}), **options}
        return build(seed, **({"arch": arg} if arg else {}), **opts)
    if arg:
        sys.path.insert(0, str(Path.cwd()))
        try:
            out = getattr(importlib.import_module(kind), arg)(**options)
        finally:
            sys.path.pop(0)
        if not (isinstance(out, tuple) and len(out) == 3):
            raise ValueError(f"{name}() must return (model, loss_fn, batches), got {type(out).__name__}")
        return out
    raise ValueError(
        f"unknown model {name!r}; choose from {list(PRESETS)}, 'torchvision:NAME' or 'module:factory'"
    )


def summary_table(diag: Diagnosis) -> str:
    """The command line's summary: the rows of :meth:`Diagnosis.to_frame` and the race."""
    lines = [
        f"d = {diag.d:,} parameters, loss {diag.loss:.4g}, {diag.n_probes} Cauchy probes, "
        f"{diag.band_level:.0%} bands, {diag.n_products} Hessian-vector products, {diag.seconds:.1f} s",
        f"{'coordinates':<12} {'‖H‖₁,₁/d':>28} {'‖H‖₂':>10} {'advantage d‖H‖₂/‖H‖₁,₁':>28}",
    ]
    for name, l11, adv in diag.rows():
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
    add = ap.add_argument
    add("--model", required=True, help="gpt-ci | resnet-ci | mlp-digits | torchvision:NAME | module:factory")
    add("--probes", type=int, default=50, help="Cauchy probes (default 50)")
    add("--block-probes", type=int, default=None, help="probes per block (default --probes)")
    add("--lanczos", type=int, default=None, help="Lanczos steps for ‖H‖₂ (default: eigsh)")
    add("--block-lanczos", type=int, default=20, help="Lanczos steps per block spectral norm")
    add("--partition", default="tensor", help="tensor | rows | coordinate | whole")
    add("--no-blocks", action="store_true", help="skip the blocks table")
    add("--no-rotation", action="store_true", help="skip the rotated estimate")
    add("--seed", type=int, default=0)
    add("--race-steps", type=int, default=0, help="race Adam, rotated Adam, AdaSGD for N steps")
    add("--lr", type=float, nargs="+", default=None, help="the race's learning rate grid")
    add("--device", default="cpu")
    add("--tiny", action="store_true", help="much smaller models (smoke tests)")
    add("--out", default="diagnosis", help="output folder (default ./diagnosis)")
    add("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    model, loss_fn, batches = preset(a.model, tiny=a.tiny, seed=a.seed)
    if a.device != "cpu":
        model = model.to(a.device)
        batches = [
            tuple(t.to(a.device) for t in b) if isinstance(b, (tuple, list)) else b.to(a.device)
            for b in batches
        ]
    diag = diagnose(
        model,
        loss_fn,
        batches,
        n_probes=a.probes,
        partition=a.partition,
        rotation=not a.no_rotation,
        seed=a.seed,
        blocks=not a.no_blocks,
        block_probes=a.block_probes,
        block_lanczos_iters=a.block_lanczos,
        lanczos_iters=a.lanczos,
        race_steps=a.race_steps,
        lr=a.lr,
        progress=not a.quiet,
    )
    out = Path(a.out)
    diag.to_json(out / "diagnosis.json")  # creates the folder
    diag.blocks.to_csv(out / "blocks.csv", index=False)
    written = [out / "diagnosis.json", out / "blocks.csv"]
    print(summary_table(diag))
    if len(diag.blocks):
        diag.plot().savefig(out / "blocks.png", dpi=120)
        written.append(out / "blocks.png")
        print(diag.blocks.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("wrote " + ", ".join(map(str, written)))
    return 0


class _CallableModule(types.ModuleType):
    """``adamlinf.diagnose(...)`` works whether the name holds this module or the function."""

    def __call__(self, *args, **kwargs) -> Diagnosis:
        return diagnose(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
