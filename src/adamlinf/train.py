"""The one training loop of the experiments (GPT-2, Section 4.2; ResNet18, Section 4.3).

Explicit and flat, after nanoGPT's ``train.py`` {cite}`karpathy2022nanogpt`. One iteration ``t``
(one optimizer step) is::

    lr_t = schedule(t)                                   # linear warmup, then cosine (or constant)
    [rotated Adam: module <- R w]                        # RotatedParametrization.push
    for micro_step m in 0..A-1:                          # gradient accumulation
        batch = task.batch("train", t, m, rank, world)   # deterministic in (t, m, rank, world)
        (task.loss(model, batch) / A).backward()         # DDP all-reduces on the last micro step
    [rotated Adam: w.grad <- R^T grad]                   # RotatedParametrization.pull_grad
    clip the global gradient norm to grad_clip; optimizer.step()

so the step's gradient is the mean loss gradient over the global batch of ``world · A · B``
samples, whatever the split over ranks and micro steps. Weight decay is off, as in the paper
(see the reconstruction notes, ``book/reconstruction.md``). The optimizers (``TrainConfig.optimizer``):

============================  ===============================================================
``adam``                      ``optim.Adam`` (= torch.optim.Adam)
``rotated_adam``              Adam on ``w`` of ``RotatedParametrization(model, k, seed)``:
                              Adam on L∘R with the App. D.1 permute-and-rotate map R
``adasgd``                    Algorithm 2 (one scalar second moment)
``sgd``                       torch SGD with momentum (0.9 by default)
``blockwise_adam_tensor``     Algorithm 3 with one block per tensor (an extra)
``blockwise_adam_head``       Algorithm 3 with one block per attention head (Adam-mini style)
other names in the registry   e.g. ``signgd``, ``rmsprop`` (``optim.OPTIMIZERS``)
============================  ===============================================================

**Hot loop.** The loop never waits for the device: the loss and gradient norm of each iteration
stay device tensors and are copied to the host once every ``log_interval`` iterations (one sync;
every iteration still gets its row). On CUDA, batches are pinned, copied without blocking and
fetched one micro step ahead, and the model is compiled by default.

**Outputs** in ``out_dir``: ``metrics.jsonl`` (one JSON row per iteration, appended as the run goes),
``metrics.csv`` (the same table, written with each checkpoint) and checkpoints
``ckpt-<iteration>.pt`` (model, optimizer, rotation, grad scaler, next iteration, RNG states,
config, the spec that rebuilds model and task, metric rows), each with its SHA-256 in
``ckpt-<iteration>.pt.sha256``. A checkpoint is written every ``checkpoint_interval`` iterations,
every ``checkpoint_minutes`` of wall time, at the end, and when the loop is interrupted (an
exception or Ctrl-C outside the optimizer update); writes are atomic (a temporary file renamed)
and the newest ``keep_checkpoints`` are kept.

**Resume.** A run whose ``out_dir`` holds checkpoints resumes from the newest one whose checksum
and contents are valid (``resume=True``); a damaged one is named in a :class:`CheckpointWarning`,
renamed to ``*.damaged`` and the previous one is used. The run produces the same loss curve as an
uninterrupted one: batches are a function of the iteration and every piece of state is restored.
The checkpoint's spec must equal the run's in every result-relevant field (:func:`result_spec`:
the model, the data and the training fields outside :data:`EXECUTION_FIELDS`), otherwise the run
is refused with the differing fields.

**One trainer per run folder, and signals.** A second trainer on the same ``out_dir`` is refused,
naming the first one's pid (``<out_dir>/.train.lock``). SIGINT (Ctrl-C) and SIGTERM (a cluster
scheduler's stop) during a single-process run write a checkpoint at the next step boundary and stop
with one line ``[train] stopped by SIGTERM at iteration N ...`` (``KeyboardInterrupt``, or
``SystemExit(143)`` for SIGTERM); a second Ctrl-C stops at once. A write that fails (a full disk)
raises an ``OSError`` naming the file and the cause and leaves no temporary file. On resume,
``metrics.csv`` is rewritten from the checkpoint, so one cut short by a kill is repaired.

Several GPUs (or CPU processes): ``torchrun --standalone --nproc_per_node N -m adamlinf.train
--spec spec.json`` (``adamlinf.runs.run(spec, nproc_per_node=N)`` launches it); ``train``
initialises the process group from the environment (NCCL on CUDA, gloo on CPU), only rank 0
evaluates, logs and saves.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import numbers
import os
import random
import re
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from adamlinf import optim
from adamlinf.data import build_task
from adamlinf.models import build
from adamlinf.results import describe_os_error, exclusive, make_dirs, write_atomic, write_text_atomic
from adamlinf.rotations import RotatedParametrization

OPTIMIZERS = tuple(optim.OPTIMIZERS)  # the registry's names
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

#: ``TrainConfig`` fields that cannot change the trained parameters or the metrics of the iterations
#: a run logs: where and how often it writes (``out_dir``, ``log_interval``, the checkpoint cadence),
#: when it evaluates (``eval_interval``: evaluation is in eval mode, under ``no_grad``, on fixed
#: batches, and draws no random numbers), whether it shows a bar, and where it stops for now
#: (``stop_iter``). ``device`` and ``compile`` change floating-point rounding only (the same run on
#: another machine). They may differ between a checkpoint and the run resuming it, and they do not
#: count in a run's identity (``adamlinf.runs.spec_key``).
EXECUTION_FIELDS = frozenset(
    {
        "out_dir",
        "eval_interval",
        "log_interval",
        "checkpoint_interval",
        "checkpoint_minutes",
        "keep_checkpoints",
        "progress",
        "resume",
        "stop_iter",
        "device",
        "compile",
    }
)
#: Data-spec keys that do not change the data: where the prepared files lie.
DATA_EXECUTION_KEYS = frozenset({"root"})
_CKPT_KEYS = (
    "model",
    "optimizer",
    "rotation",
    "scaler",
    "rng",
    "iter",
    "elapsed",
    "config",
    "spec",
    "metrics",
)
_CKPT_NAME = re.compile(r"ckpt-(\d{8})\.pt")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used (empty, truncated, damaged, or not a checkpoint)."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped and an earlier one used."""


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------
def _int(name: str, value, minimum: int | None = None, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    integral = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral:
        raise ValueError(f"TrainConfig.{name} must be an int, got {value!r}")
    if minimum is not None and int(value) < minimum:
        raise ValueError(f"TrainConfig.{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _float(
    name: str,
    value,
    lo: float | None = None,
    hi: float | None = None,
    *,
    open_lo: bool = False,
    open_hi: bool = False,
    optional: bool = False,
) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"TrainConfig.{name} must be a number, got {value!r}")
    value = float(value)
    bad_lo = lo is not None and (value <= lo if open_lo else value < lo)
    bad_hi = hi is not None and (value >= hi if open_hi else value > hi)
    if not math.isfinite(value) or bad_lo or bad_hi:
        left = "-inf" if lo is None else lo
        right = "inf" if hi is None else hi
        interval = f"{'(' if open_lo else '['}{left}, {right}{')' if open_hi or hi is None else ']'}"
        raise ValueError(f"TrainConfig.{name} must be a finite number in {interval}, got {value!r}")
    return value


def _bool(name: str, value, optional: bool = False) -> bool | None:
    if (value is None and optional) or isinstance(value, bool):
        return value
    raise ValueError(
        f"TrainConfig.{name} must be True or False{' or None' if optional else ''}, got {value!r}"
    )


@dataclass
class TrainConfig:
    """Every knob of a run; every field is checked (type, finiteness, range) when it is built.

    Schedule (nanoGPT's): ``lr·(t+1)/(warmup_iters+1)`` for ``t < warmup_iters``; then ``"cosine"``
    decays to ``min_lr`` (default ``lr/10``) at ``lr_decay_iters`` (default ``max_iters``) and stays
    there, ``"constant"`` keeps ``lr``. ``batch_size`` is per rank and micro step (default: the
    task's ``batch_size``); the global batch is ``world · grad_accum · batch_size``.

    Attributes:
        out_dir: run folder (metrics, checkpoints).
        optimizer: one of :data:`OPTIMIZERS`.
        lr: peak learning rate.
        min_lr: final learning rate of the cosine (None: ``lr/10``).
        warmup_iters: linear-warmup iterations.
        lr_decay_iters: end of the cosine (None: ``max_iters``).
        schedule: ``"cosine"`` or ``"constant"``.
        betas: (β₁, β₂), each in [0, 1).
        eps: ε ≥ 0.
        momentum: SGD momentum.
        rotation_k: rotated Adam's number of rotated blocks per coordinate (App. D.1).
        rotation_seed: seed of the rotation.
        max_iters: optimizer steps.
        grad_accum: micro steps per optimizer step.
        batch_size: per rank and micro step (None: the task's).
        grad_clip: max global gradient 2-norm (0 or None: off).
        eval_interval: evaluate every that many iterations (0: at the start and the end only); the
            end is always evaluated.
        log_interval: iterations between host syncs that copy the buffered losses to the metrics
            (None: 1 on CPU, 10 on CUDA).
        checkpoint_interval: checkpoint every that many iterations (0: off).
        checkpoint_minutes: checkpoint when that much wall time passed since the last one (0: off).
        keep_checkpoints: newest checkpoints kept (>= 1).
        seed: seed of the model initialisation (in :func:`build_run`) and of dropout.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: parameter precision (``"float32"``, ``"float64"``) or autocast precision
            (``"bfloat16"``, ``"float16"`` with a grad scaler) for float32 parameters.
        compile: ``torch.compile`` the model (None: on CUDA only).
        progress: show a progress bar.
        resume: resume from the newest valid checkpoint in ``out_dir``.
        stop_iter: stop (with a checkpoint) before iteration ``stop_iter`` as if interrupted; the
            schedule still targets ``max_iters``.
        torch_form: optimizer form (bias correction, eps outside the root = torch Adam, what the
            paper ran).
        optimizer_kwargs: extra keyword arguments of ``optim.create``.
    """

    out_dir: str
    optimizer: str = "adam"
    lr: float = 6e-4
    min_lr: float | None = None
    warmup_iters: int = 0
    lr_decay_iters: int | None = None
    schedule: str = "cosine"
    betas: tuple = (0.9, 0.95)
    eps: float = 1e-8
    momentum: float = 0.9
    rotation_k: int = 2
    rotation_seed: int = 0
    max_iters: int = 100
    grad_accum: int = 1
    batch_size: int | None = None
    grad_clip: float | None = 1.0
    eval_interval: int = 0
    log_interval: int | None = None
    checkpoint_interval: int = 1000
    checkpoint_minutes: float = 10.0
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool | None = None
    progress: bool = True
    resume: bool = True
    stop_iter: int | None = None
    torch_form: bool = True
    optimizer_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.out_dir, (str, os.PathLike)) or not str(self.out_dir):
            raise ValueError(f"TrainConfig.out_dir must be a path, got {self.out_dir!r}")
        self.out_dir = str(self.out_dir)
        for name, choices in (
            ("optimizer", OPTIMIZERS),
            ("schedule", ("cosine", "constant")),
            ("dtype", DTYPES),
        ):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in choices:
                raise ValueError(
                    f"TrainConfig.{name} must be one of {tuple(choices)}, got {getattr(self, name)!r}"
                )
        if not isinstance(self.device, str):
            raise ValueError(
                f"TrainConfig.device must be a string such as 'cpu' or 'cuda', got {self.device!r}"
            )
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"TrainConfig.betas must be a pair (beta1, beta2), got {self.betas!r}")
        self.betas = tuple(_float(f"betas[{i}]", b, 0.0, 1.0, open_hi=True) for i, b in enumerate(self.betas))
        self.lr = _float("lr", self.lr, 0.0, open_lo=True)
        self.min_lr = _float("min_lr", self.min_lr, 0.0, self.lr, optional=True)
        self.eps = _float("eps", self.eps, 0.0)
        self.momentum = _float("momentum", self.momentum, 0.0)
        self.grad_clip = _float("grad_clip", self.grad_clip, 0.0, optional=True)
        self.checkpoint_minutes = _float("checkpoint_minutes", self.checkpoint_minutes, 0.0)
        for name in ("max_iters", "grad_accum", "keep_checkpoints"):
            setattr(self, name, _int(name, getattr(self, name), 1))
        for name in (
            "warmup_iters",
            "eval_interval",
            "checkpoint_interval",
            "rotation_k",
            "rotation_seed",
            "seed",
        ):
            setattr(self, name, _int(name, getattr(self, name), 0))
        for name, minimum in (
            ("batch_size", 1),
            ("log_interval", 1),
            ("stop_iter", 1),
            ("lr_decay_iters", 1),
        ):
            setattr(self, name, _int(name, getattr(self, name), minimum, optional=True))
        if self.lr_decay_iters is not None and self.lr_decay_iters <= self.warmup_iters:
            raise ValueError(
                f"TrainConfig.lr_decay_iters={self.lr_decay_iters} must exceed "
                f"warmup_iters={self.warmup_iters}"
            )
        for name in ("progress", "resume", "torch_form"):
            _bool(name, getattr(self, name))
        _bool("compile", self.compile, optional=True)
        if not isinstance(self.optimizer_kwargs, dict):
            raise ValueError(f"TrainConfig.optimizer_kwargs must be a dict, got {self.optimizer_kwargs!r}")

    def to_dict(self) -> dict:
        """The fields as a JSON-friendly dict (``betas`` as a list)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Learning rate of iteration ``it`` (see :class:`TrainConfig`).

    Args:
        it: iteration.
        cfg: the run's configuration.

    Returns:
        The learning rate.
    """
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / (cfg.warmup_iters + 1)
    if cfg.schedule == "constant":
        return cfg.lr
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    decay = cfg.lr_decay_iters or cfg.max_iters
    if it >= decay:
        return min_lr
    ratio = (it - cfg.warmup_iters) / (decay - cfg.warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - min_lr)


def make_optimizer(cfg: TrainConfig, model: nn.Module, params: list) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` over ``params``, from the registry :data:`adamlinf.optim.OPTIMIZERS`.

    Args:
        cfg: the run's configuration.
        model: the model (its ``config.n_head`` for the per-head partition).
        params: the trainable tensors.

    Returns:
        The optimizer.
    """
    kw = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, momentum=cfg.momentum, **cfg.optimizer_kwargs)
    if not cfg.torch_form:  # the paper's form: no bias correction, eps inside the root
        kw.update(bias_correction=False, eps=0.0, eps_root=cfg.eps)
    return optim.create(cfg.optimizer, params, model=model, **kw)


# ------------------------------------------------------------------------------------------------
# specs
# ------------------------------------------------------------------------------------------------
def result_spec(spec: dict) -> dict:
    """The part of a run spec that determines its results.

    Args:
        spec: ``{"model": ..., "data": ..., "train": ...}``.

    Returns:
        The model spec, the data spec without :data:`DATA_EXECUTION_KEYS` and the training fields
        without :data:`EXECUTION_FIELDS`.
    """
    return {
        "model": dict(spec.get("model") or {}),
        "data": {k: v for k, v in (spec.get("data") or {}).items() if k not in DATA_EXECUTION_KEYS},
        "train": {k: v for k, v in (spec.get("train") or {}).items() if k not in EXECUTION_FIELDS},
    }


def spec_diff(saved: dict, now: dict) -> list[str]:
    """The result-relevant fields in which two run specs differ.

    Args:
        saved: the spec a checkpoint was written with.
        now: the spec of the run.

    Returns:
        One line per differing field, ``"data.seed: 0 (checkpoint) -> 1 (now)"``.
    """
    a, b = result_spec(saved), result_spec(now)
    lines = []
    for section in ("model", "data", "train"):
        for key in sorted(set(a[section]) | set(b[section])):
            old, new = a[section].get(key, "<absent>"), b[section].get(key, "<absent>")
            if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
                lines.append(f"{section}.{key}: {old!r} (checkpoint) -> {new!r} (now)")
    return lines


def _spec_of_model(model) -> dict | None:
    spec = getattr(model, "adamlinf_spec", None)
    if spec is None and hasattr(model, "config") and dataclasses.is_dataclass(model.config):
        spec = {"kind": "gpt", **dataclasses.asdict(model.config)}
    return dict(spec) if spec is not None else None


def _spec_of_task(task) -> dict | None:
    spec = getattr(task, "adamlinf_spec", None) or getattr(task, "spec", None)
    return dict(spec) if isinstance(spec, dict) else None


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------
def checkpoint_path(out_dir, it: int) -> Path:
    """``<out_dir>/ckpt-<it, 8 digits>.pt``: the checkpoint taken before iteration ``it``."""
    return Path(out_dir) / f"ckpt-{int(it):08d}.pt"


def list_checkpoints(out_dir) -> list[Path]:
    """The checkpoints in ``out_dir``, newest (highest iteration) first."""
    found = [p for p in Path(out_dir).glob("ckpt-*.pt") if _CKPT_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


class _Recording:
    """A binary file that remembers the ``OSError`` of a failed write.

    ``torch.save`` turns a failed write (a full disk) into ``RuntimeError: enforce fail at
    inline_container.cc``; the recorded error says what happened.
    """

    def __init__(self, f) -> None:
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


def _write_atomic(path: Path, write) -> None:
    """:func:`adamlinf.results.write_atomic`, with the real ``OSError`` behind torch's writer errors.

    torch's zip writer turns a failed write (a full disk) into its own ``RuntimeError``; the
    :class:`_Recording` file keeps the ``OSError`` so that the message names the path and the cause.
    """

    def recorded(raw):
        f = _Recording(raw)
        try:
            write(f)
        except Exception:
            if f.error is not None:
                raise f.error from None
            raise

    write_atomic(path, recorded)


def save_checkpoint(state: dict, out_dir, it: int, keep: int = 2) -> Path:
    """Write ``state`` to :func:`checkpoint_path` atomically, its SHA-256 beside it, keep the newest ``keep``.

    Args:
        state: the checkpoint dict.
        out_dir: the run folder.
        it: the iteration the checkpoint resumes at.
        keep: checkpoints kept (older ones are deleted with their checksums).

    Returns:
        The checkpoint's path.
    """
    path = checkpoint_path(out_dir, it)
    _write_atomic(path, lambda f: torch.save(state, f))
    digest = _sha256(path)
    _write_atomic(
        path.with_name(path.name + ".sha256"), lambda f: f.write(f"{digest}  {path.name}\n".encode())
    )
    for old in list_checkpoints(out_dir)[max(1, keep) :]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return path


def load_checkpoint(path) -> dict:
    """Load a checkpoint after checking its SHA-256 and its contents.

    Args:
        path: a ``ckpt-*.pt`` file.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: the file is missing, empty, has no or another checksum, cannot be
            unpickled, or lacks the keys the trainer writes; the message names the file.
    """
    path = Path(path)
    sha = path.with_name(path.name + ".sha256")
    if not path.is_file() or path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is missing or empty")
    if not sha.is_file():
        raise CheckpointError(f"checkpoint {path} has no checksum file {sha.name} (its write did not finish)")
    expected = (sha.read_text().split() or [""])[0]
    actual = _sha256(path)
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {path} is damaged: its SHA-256 {actual[:16]}... differs from the "
            f"one recorded in {sha.name} ({expected[:16]}...)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unpickling failure: the message names the file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in _CKPT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(_CKPT_KEYS)
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of adamlinf.train (it lacks {missing})")
    return ckpt


def newest_checkpoint(out_dir, *, quarantine: bool = False) -> tuple[dict, Path] | None:
    """The newest valid checkpoint of ``out_dir`` (see :func:`load_checkpoint`).

    Args:
        out_dir: the run folder.
        quarantine: rename damaged checkpoints newer than the one used to ``*.damaged`` (so they
            are neither loaded nor counted again; their data is kept for inspection).

    Returns:
        ``(checkpoint, path)``, or None when the folder holds no checkpoint.

    Raises:
        CheckpointError: every checkpoint is damaged (the message lists them).
    """
    damaged = []
    for path in list_checkpoints(out_dir):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            damaged.append((path, str(exc)))
            continue
        for bad, why in damaged:
            if quarantine:
                for f in (bad, bad.with_name(bad.name + ".sha256")):
                    if f.exists():
                        f.rename(f.with_name(f.name + ".damaged"))
            warnings.warn(
                f"{why}; using the previous valid checkpoint {path}", CheckpointWarning, stacklevel=3
            )
        return ckpt, path
    if damaged:
        raise CheckpointError(
            "no valid checkpoint in {}: {}; move the damaged files away to start afresh".format(
                out_dir, "; ".join(why for _, why in damaged)
            )
        )
    return None


def out_dir_of(cfg: TrainConfig, create: bool = True) -> Path:
    """``cfg.out_dir`` as a created folder.

    Args:
        cfg: the run's configuration.
        create: create the folder.

    Returns:
        The folder.

    Raises:
        NotADirectoryError: ``out_dir`` or one of its parents is a file.
    """
    out = Path(cfg.out_dir)
    bad = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if bad is not None:
        raise NotADirectoryError(
            f"TrainConfig.out_dir={cfg.out_dir!r}: {bad} is a file, not a folder; choose another out_dir"
        )
    if create:
        make_dirs(out)  # a read-only folder or a symlink loop: one line naming the folder and the cause
    return out


# ------------------------------------------------------------------------------------------------
# setup helpers
# ------------------------------------------------------------------------------------------------
def _dist_setup(device: str):
    """(ddp, rank, world, device, we_initialised) from torchrun's environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False, 0, 1, device, False
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    init = not dist.is_initialized()
    if init:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True, rank, world, device, init


def _rng_state(device, torch_only: bool = False) -> dict:
    """CPU, NumPy and Python RNG states, plus the CUDA RNG state of ``device`` when it is a GPU.

    Only this process's own GPU is touched: ``torch.cuda.get_rng_state_all()`` would create a CUDA
    context on every visible GPU from every rank (and on a CPU run on a GPU machine).
    ``torch_only``: the torch states alone (1 µs; what an iteration can change, through dropout),
    the snapshot the loop takes at every iteration for a checkpoint on interruption (NumPy's and
    Python's states, 90 µs to copy, are not drawn from by the loop and are read when saving).
    """
    state = {"torch": torch.get_rng_state()}
    if not torch_only:
        state.update(numpy=np.random.get_state(), python=random.getstate())
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if isinstance(state.get("cuda"), torch.Tensor) and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _geometry(task, cfg: TrainConfig, world: int) -> tuple[int, int | None]:
    """(global batch, tokens per sample), after checking the batch settings against the task."""
    task_bs = getattr(task, "batch_size", None)
    if cfg.batch_size is not None and task_bs is not None and cfg.batch_size != task_bs:
        raise ValueError(
            f"TrainConfig.batch_size={cfg.batch_size} differs from the task's "
            f"batch_size={task_bs}; set it in the data spec"
        )
    task_accum = getattr(task, "grad_accum", None)
    if task_accum is not None and task_accum != cfg.grad_accum:
        raise ValueError(
            f"TrainConfig.grad_accum={cfg.grad_accum} differs from the task's "
            f"grad_accum={task_accum}; set both alike"
        )
    batch_size = cfg.batch_size or task_bs
    if batch_size is None:
        raise ValueError("batch size unknown: set TrainConfig.batch_size or the task's batch_size")
    return batch_size * cfg.grad_accum * world, getattr(task, "tokens_per_sample", None)


def _precision(model: nn.Module, cfg: TrainConfig, device):
    """Parameters in float32/float64 on ``device``; (autocast context factory, grad scaler, dtype)."""
    device_type = torch.device(device).type
    param_dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    model.to(device=device, dtype=param_dtype)
    amp = DTYPES[cfg.dtype] if cfg.dtype in ("bfloat16", "float16") else None
    autocast = functools.partial(torch.autocast, device_type, dtype=amp) if amp else contextlib.nullcontext
    return autocast, torch.amp.GradScaler(device_type, enabled=cfg.dtype == "float16"), param_dtype


def _trainable(model: nn.Module, cfg: TrainConfig, ddp: bool):
    """(rotation or None, the optimizer's tensors): rotated Adam trains ``w`` of ``x = R w``."""
    if cfg.optimizer != "rotated_adam":
        return None, [p for p in model.parameters() if p.requires_grad]
    rotation = RotatedParametrization(model, k=cfg.rotation_k, seed=cfg.rotation_seed)
    if ddp:  # DDP syncs only the module's parameters; w (the optimizer's variable) must agree too
        dist.broadcast(rotation.w.data, src=0)
        rotation.push()
    return rotation, rotation.parameters()


def _resume(
    out: Path, cfg: TrainConfig, spec: dict, model, rotation, optimizer, scaler, device, master: bool
):
    """(start iteration, metric rows, elapsed seconds) from the newest valid checkpoint, if any."""
    if not cfg.resume:
        if list_checkpoints(out):
            raise ValueError(
                f"{out} holds checkpoints of an earlier run and resume=False: use an empty out_dir"
            )
        torch.manual_seed(cfg.seed)
        return 0, [], 0.0
    found = newest_checkpoint(out, quarantine=master)
    if found is None:
        torch.manual_seed(cfg.seed)
        return 0, [], 0.0
    ckpt, path = found
    diff = spec_diff(ckpt["spec"], spec)
    if diff:
        raise ValueError(
            f"{path} was written by a run with a different spec; refusing to mix them:\n  "
            + "\n  ".join(diff)
            + "\nuse another out_dir (or restore the spec)"
        )
    model.load_state_dict(ckpt["model"])
    if rotation is not None:
        rotation.load_state_dict(ckpt["rotation"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    _set_rng_state(ckpt["rng"], device)
    return ckpt["iter"], list(ckpt["metrics"]), ckpt["elapsed"]


def _wrap(model: nn.Module, cfg: TrainConfig, ddp: bool, device):
    """(model for evaluation, model for training): compiled (default on CUDA), DDP-wrapped."""
    cuda = torch.device(device).type == "cuda"
    run_model = torch.compile(model) if (cuda if cfg.compile is None else cfg.compile) else model
    if not ddp:
        return run_model, run_model
    return run_model, DistributedDataParallel(
        run_model, device_ids=[torch.device(device).index] if cuda else None
    )


def _batches(task, cfg: TrainConfig, start: int, stop: int, rank: int, world: int, device, dtype, ahead=None):
    """The training batches of iterations ``start..stop-1``, micro step by micro step, on ``device``.

    With ``ahead`` (default: on CUDA) each batch is fetched one micro step ahead, so that the host
    prepares batch k+1 while the device computes on batch k; on CUDA batches are pinned and copied
    without blocking.
    """
    cuda = torch.device(device).type == "cuda"
    ahead = cuda if ahead is None else ahead

    def to_device(batch):
        return tuple(
            (b.pin_memory() if cuda else b).to(
                device=device, non_blocking=True, **({"dtype": dtype} if b.is_floating_point() else {})
            )
            for b in batch
        )

    keys = ((it, micro) for it in range(start, stop) for micro in range(cfg.grad_accum))
    if not ahead:
        for it, micro in keys:
            yield to_device(task.batch("train", it, micro, rank, world))
        return
    waiting = None
    for it, micro in keys:
        batch = to_device(task.batch("train", it, micro, rank, world))
        if waiting is not None:
            yield waiting
        waiting = batch
    if waiting is not None:
        yield waiting


def _step(optimizer, scaler, params, cfg: TrainConfig, rotation, model) -> torch.Tensor:
    """Unscale, clip, step, zero the gradients; returns the gradient norm before clipping (on the device)."""
    if rotation is not None:
        rotation.pull_grad()
    scaler.unscale_(optimizer)
    if cfg.grad_clip:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    else:
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if rotation is not None:
        model.zero_grad(set_to_none=True)
    return grad_norm


def _eval_due(it: int, cfg: TrainConfig) -> bool:
    return bool(cfg.eval_interval and it % cfg.eval_interval == 0) or (it == 0 and cfg.eval_interval == 0)


_ORDER = ("iter", "samples", "tokens", "lr", "train_loss", "grad_norm")


def _column_order(item):
    key = item[0]
    if key in _ORDER:
        return (0, _ORDER.index(key), key)
    if key in ("iter_time", "mfu", "time"):
        return (2, ("iter_time", "mfu", "time").index(key), key)
    return (1, 0, key)


def _counts(it: int, global_batch: int, tokens_per_sample: int | None) -> dict:
    c = {"iter": it, "samples": it * global_batch}
    if tokens_per_sample:
        c["tokens"] = it * global_batch * tokens_per_sample
    return c


def _set_lr(optimizer, it: int, cfg: TrainConfig) -> float:
    """Set the scheduled learning rate of iteration ``it`` in every parameter group; returns it."""
    lr = lr_at(it, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _accumulate(
    task, train_model, batches, cfg: TrainConfig, ddp: bool, autocast, scaler, device
) -> torch.Tensor:
    """Forward and backward over the ``grad_accum`` micro steps; returns the mean loss (a device tensor).

    Under DDP the gradients are all-reduced on the last micro step only.
    """
    loss = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum):
        sync = train_model.no_sync() if ddp and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
        with sync:
            with autocast():
                micro_loss = task.loss(train_model, next(batches)) / cfg.grad_accum
            scaler.scale(micro_loss).backward()
        loss += micro_loss.detach().float()
    return loss


class _Checkpoints:
    """Periodic checkpoints of a run: by iteration, by wall time, on demand."""

    def __init__(
        self,
        out: Path,
        cfg: TrainConfig,
        spec: dict,
        world: int,
        device,
        model,
        optimizer,
        scaler,
        rotation,
        log,
    ) -> None:
        self.out, self.cfg, self.spec, self.world, self.device, self.log = out, cfg, spec, world, device, log
        self.model, self.optimizer, self.scaler, self.rotation = model, optimizer, scaler, rotation
        self.last = time.time()

    def due(self, n: int) -> bool:
        c = self.cfg
        by_iter = bool(c.checkpoint_interval and n % c.checkpoint_interval == 0)
        return by_iter or bool(c.checkpoint_minutes and time.time() - self.last >= 60 * c.checkpoint_minutes)

    def save(self, n: int, rng: dict) -> None:
        """Checkpoint the state before iteration ``n`` (``rng``: the RNG states at that point)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rotation": self.rotation.state_dict() if self.rotation is not None else None,
            "rng": {**_rng_state(self.device), **rng},
            "iter": n,
            "elapsed": time.time() - self.log.t0,
            "config": self.cfg.to_dict(),
            "spec": self.spec,
            "metrics": self.log.rows,
            "world": self.world,
        }
        save_checkpoint(state, self.out, n, self.cfg.keep_checkpoints)
        write_metrics(self.out, self.log.rows)
        self.last = self.log.t_window = time.time()  # the save is not part of an iteration's time


def write_metrics(out: Path | str, rows: list) -> None:
    """``<out>/metrics.csv`` from the metric rows, written atomically (a cut-short write keeps the last)."""
    write_text_atomic(Path(out) / "metrics.csv", pd.DataFrame(rows).to_csv(index=False))


class _StopSignals:
    """SIGINT and SIGTERM during training: noted, acted on at the next step boundary.

    The loop checkpoints the state of the last finished step there and stops (KeyboardInterrupt
    for SIGINT, ``SystemExit(143)`` for SIGTERM). A second SIGINT stops at once (with a checkpoint
    only when the state is consistent). Installed in the main thread of a single-process run only.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.received: int | None = None
        self.previous: dict = {}

    def __enter__(self):
        if self.active:
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _note(self, signum, frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def stop(self) -> BaseException:
        name = signal.Signals(self.received).name
        return KeyboardInterrupt(name) if self.received == signal.SIGINT else SystemExit(128 + self.received)


class _Log:
    """Metric rows: iterations are buffered with their device tensors and written at :meth:`flush`."""

    def __init__(
        self,
        out: Path,
        rows: list,
        cfg: TrainConfig,
        master: bool,
        device,
        geometry,
        start: int,
        elapsed: float,
        model,
    ) -> None:
        self.rows, self.cfg, self.master, self.model = rows, cfg, master, model
        self.global_batch, self.tokens = geometry
        self.cuda = torch.device(device).type == "cuda"
        self.interval = cfg.log_interval or (10 if self.cuda else 1)
        self.t0, self.pending, self.evaluated = time.time() - elapsed, [], {}
        self.t_window = time.time()  # start of the iterations buffered now
        self.jsonl = None
        if master:  # metrics.jsonl holds exactly the rows of the state we start from
            write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
            self.jsonl = open(out / "metrics.jsonl", "a")
        self.bar = tqdm(
            total=cfg.max_iters,
            initial=start,
            disable=not (cfg.progress and master),
            desc=cfg.optimizer,
            unit="it",
            dynamic_ncols=True,
        )

    def evaluate(self, it: int, task, model, rotation, autocast, device) -> None:
        if self.master:
            if rotation is not None:
                rotation.push()  # the module holds R w
            with autocast():
                self.evaluated = {"iter": it, **task.evaluate(model, device)}
            self.model.train()
        self.t_window = time.time()  # evaluation is not part of an iteration's time

    def record(self, it: int, lr: float, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        extra = self.evaluated if self.evaluated.get("iter") == it else {}
        self.pending.append((it, lr, loss, grad_norm, {k: v for k, v in extra.items() if k != "iter"}))

    def flush_due(self, n: int, stop: int) -> bool:
        c = self.cfg
        return (
            n % self.interval == 0
            or n == stop
            or _eval_due(n, c)
            or bool(c.checkpoint_interval and n % c.checkpoint_interval == 0)
        )

    def flush(self, ddp: bool, world: int) -> None:
        """One host sync for the buffered iterations (and one all-reduce of their losses under DDP)."""
        if not self.pending:
            return
        losses = torch.stack([p[2] for p in self.pending])
        if ddp:
            dist.all_reduce(losses, op=dist.ReduceOp.SUM)
            losses /= world
        norms = torch.stack([p[3].float().to(losses.device) for p in self.pending])
        host = torch.stack([losses, norms], 1).tolist()  # the sync
        now = time.time()
        dt = (now - self.t_window) / len(self.pending)
        for (it, lr, _, _, extra), (loss, norm) in zip(self.pending, host, strict=True):
            row = {**extra, "lr": lr, "train_loss": loss, "grad_norm": norm, "iter_time": dt}
            if self.cuda and self.tokens and hasattr(self.model, "estimate_mfu"):
                row["mfu"] = self.model.estimate_mfu(self.global_batch * self.tokens / world, dt)
            self.append(it, row, now)
        rate = self.global_batch * (self.tokens or 1) / max(dt, 1e-9)
        self.bar.set_postfix(
            loss=f"{host[-1][0]:.4f}", **{("tok/s" if self.tokens else "samples/s"): f"{rate:,.0f}"}
        )
        self.bar.update(len(self.pending))
        self.pending, self.t_window = [], time.time()

    def append(self, it: int, row: dict, now: float) -> None:
        if self.master:
            row.update(_counts(it, self.global_batch, self.tokens), time=now - self.t0)
            self.rows.append(dict(sorted(row.items(), key=_column_order)))
            try:
                self.jsonl.write(json.dumps(self.rows[-1]) + "\n")
                self.jsonl.flush()
            except OSError as exc:  # a full disk: one line naming the file
                raise describe_os_error(exc, self.jsonl.name) from None

    def close(self) -> None:
        self.bar.close()
        if self.jsonl is not None:
            self.jsonl.close()


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
def train(model: nn.Module, task, cfg: TrainConfig, *, spec: dict | None = None) -> pd.DataFrame:
    """Train ``model`` on ``task`` with ``cfg`` (see the module docstring).

    Args:
        model: the model (moved to ``cfg.device`` and the parameter dtype).
        task: a task of :mod:`adamlinf.data` (``batch``, ``loss``, ``evaluate``, ``batch_size``).
        cfg: the run's configuration.
        spec: the run's ``{"model", "data", "train"}`` spec, stored in checkpoints for
            :func:`load_final` and compared on resume (derived from the model and task when they
            came from ``models.build`` / ``data.build_task``).

    Returns:
        The metrics table on rank 0 (other ranks: an empty table). Columns: ``iter`` (optimizer
        steps taken before the row's parameters), ``samples`` (and ``tokens`` for language tasks)
        seen by then, ``lr``, ``train_loss`` (mean loss of iteration ``iter``'s global batch,
        before its update), ``grad_norm`` (before clipping), the task's evaluation metrics
        (``val_loss``, ...; on evaluation rows), ``iter_time`` (s), ``mfu`` (CUDA) and ``time``
        (wall seconds since the run started, across resumes).

    Raises:
        ValueError: a bad configuration, or a checkpoint of another spec in ``out_dir``.
        CheckpointError: every checkpoint in ``out_dir`` is damaged.
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    ddp, rank, world, device, we_init = _dist_setup(cfg.device)
    master = rank == 0
    out = out_dir_of(cfg, create=master)
    lock = exclusive(out / ".train.lock", f"trainer of {out}", wait=False) if master else None
    with lock or contextlib.nullcontext(), _StopSignals(master and not ddp) as signals:
        return _train(model, task, cfg, spec, ddp, rank, world, device, we_init, out, signals)


def _train(model, task, cfg, spec, ddp, rank, world, device, we_init, out, signals) -> pd.DataFrame:
    master = rank == 0
    spec = {
        "model": _spec_of_model(model),
        "data": _spec_of_task(task),
        **(spec or {}),
        "train": cfg.to_dict(),
    }
    geometry = _geometry(task, cfg, world)
    autocast, scaler, param_dtype = _precision(model, cfg, device)
    rotation, params = _trainable(model, cfg, ddp)
    optimizer = make_optimizer(cfg, model, params)
    start, rows, elapsed = _resume(out, cfg, spec, model, rotation, optimizer, scaler, device, master)
    if master and rows:  # a metrics.csv cut short (a kill during its write) is rebuilt from the checkpoint
        write_metrics(out, rows)
    eval_model, train_model = _wrap(model, cfg, ddp, device)
    stop = max(start, min(cfg.max_iters, cfg.max_iters if cfg.stop_iter is None else cfg.stop_iter))
    log = _Log(out, rows, cfg, master, device, geometry, start, elapsed, model)
    ckpt = _Checkpoints(out, cfg, spec, world, device, model, optimizer, scaler, rotation, log)
    batches = _batches(task, cfg, start, stop, rank, world, device, param_dtype)
    done, rng, consistent = start, _rng_state(device, torch_only=True), True
    model.train()
    try:
        for it in range(start, stop):
            if _eval_due(it, cfg):
                log.evaluate(it, task, eval_model, rotation, autocast, device)
            lr = _set_lr(optimizer, it, cfg)
            if rotation is not None:
                rotation.push()
            loss = _accumulate(task, train_model, batches, cfg, ddp, autocast, scaler, device)
            consistent = False  # the update changes the state that a checkpoint of iteration `done` holds
            log.record(it, lr, loss, _step(optimizer, scaler, params, cfg, rotation, model))
            done, rng, consistent = it + 1, _rng_state(device, torch_only=True), True
            if signals.received is not None and done < stop:
                raise signals.stop()  # checkpointed below, at this step boundary
            if log.flush_due(done, stop):
                log.flush(ddp, world)
                if master and done < stop and ckpt.due(done):
                    ckpt.save(done, rng)
        final = stop == cfg.max_iters and not (rows and rows[-1]["iter"] >= stop)
        if final:  # the final evaluation, after the loop
            log.evaluate(stop, task, eval_model, rotation, autocast, device)
            log.append(stop, {k: v for k, v in log.evaluated.items() if k != "iter"}, time.time())
        if master and (start < stop or final):
            ckpt.save(stop, _rng_state(device, torch_only=True))
        if ddp:
            dist.barrier()
    except BaseException:
        kept = None
        if master and consistent and not ddp and done > start:  # keep what was trained (Ctrl-C, an error)
            try:
                log.flush(False, 1)
                ckpt.save(done, rng)
                kept = checkpoint_path(out, done)
            except Exception as exc:  # the original error matters more; say why no checkpoint was kept
                warnings.warn(f"could not checkpoint iteration {done} in {out}: {exc}", CheckpointWarning, 2)
        if signals.received is not None:
            name = signal.Signals(signals.received).name
            where = (
                f"checkpoint {kept} written" if kept else "no new checkpoint (nothing trained since the last)"
            )
            print(
                f"[train] stopped by {name} at iteration {done} of {cfg.max_iters}: {where}; "
                "run the same command again to resume",
                file=sys.stderr,
                flush=True,
            )
        raise
    finally:
        log.close()
        if we_init:
            dist.destroy_process_group()
    return pd.DataFrame(rows) if master else pd.DataFrame()


# ------------------------------------------------------------------------------------------------
# specs: build_run and load_final
# ------------------------------------------------------------------------------------------------
def _padded_vocab(v: int, multiple: int = 64) -> int:
    return ((v + multiple - 1) // multiple) * multiple


def build_run(spec: dict):
    """``(model, task, cfg, spec)`` from a run spec ``{"model": {...}, "data": {...}, "train": {...}}``.

    The task is built first (a missing data set fails here, before any model is built). For a GPT
    without ``vocab_size``/``block_size`` they come from the task (vocabulary padded to a multiple of
    64, as GPT-2's 50257 → 50304). ``train.batch_size`` fills a missing ``data.batch_size``, and a
    non-default ``train.grad_accum`` a missing ``data.grad_accum`` for tasks other than ``"lm"``
    (image tasks order their data by it). The model is initialised under
    ``torch.manual_seed(train.seed)``.

    Args:
        spec: the run spec.

    Returns:
        ``(model, task, cfg, full spec)``.

    Raises:
        ValueError: a malformed spec or configuration.
    """
    if not isinstance(spec, dict) or not {"model", "data", "train"} <= set(spec):
        raise ValueError("a run spec is a dict with keys 'model', 'data' and 'train'")
    data_spec, model_spec, train_spec = dict(spec["data"]), dict(spec["model"]), dict(spec["train"])
    cfg = TrainConfig(**train_spec)  # a bad configuration fails before any data is read
    if train_spec.get("batch_size") is not None:
        data_spec.setdefault("batch_size", train_spec["batch_size"])
    if data_spec.get("kind") != "lm" and train_spec.get("grad_accum", 1) != 1:
        data_spec.setdefault("grad_accum", train_spec["grad_accum"])  # image tasks order data by it
    task = build_task(data_spec)
    if model_spec.get("kind") == "gpt":
        if "vocab_size" not in model_spec and hasattr(task, "vocab_size"):
            model_spec["vocab_size"] = _padded_vocab(task.vocab_size)
        if "block_size" not in model_spec and hasattr(task, "block_size"):
            model_spec["block_size"] = task.block_size
    torch.manual_seed(cfg.seed)
    model = build(model_spec)
    return model, task, cfg, {"model": model_spec, "data": data_spec, "train": cfg.to_dict()}


def load_final(out_dir, device: str = "cpu", allow_partial: bool = False):
    """The final state of a run from its newest valid checkpoint.

    Args:
        out_dir: the run folder.
        device: where to put the model.
        allow_partial: accept a run that has not reached ``max_iters``.

    Returns:
        ``(model, task, cfg, rotation_or_None)``: the model (in eval mode) holds the final
        parameters (for rotated Adam ``x = R w``; ``rotation`` is the restored
        :class:`~adamlinf.rotations.RotatedParametrization`, whose ``rotation`` attribute is the
        map R for the Hessian of L∘R).

    Raises:
        FileNotFoundError: no checkpoint.
        ValueError: the run has not finished, or it has no model/data spec.
    """
    found = newest_checkpoint(out_dir)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {out_dir}: run the training first")
    ckpt, path = found
    cfg = TrainConfig(**ckpt["config"])
    if ckpt["iter"] < cfg.max_iters and not allow_partial:
        raise ValueError(
            f"{path} is at iteration {ckpt['iter']} of {cfg.max_iters}: the run has not "
            "finished (resume it, or pass allow_partial=True)"
        )
    spec = ckpt["spec"]
    if not spec.get("model") or not spec.get("data"):
        raise ValueError(
            f"{path} has no model/data spec: train models from adamlinf.models.build and "
            "tasks from adamlinf.data.build_task (or use adamlinf.runs.run) to make it loadable"
        )
    task = build_task(spec["data"])
    model = build(spec["model"])
    model.to(dtype=torch.float64 if cfg.dtype == "float64" else torch.float32)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    rotation = None
    if ckpt.get("rotation") is not None:
        rotation = RotatedParametrization(model, k=cfg.rotation_k, seed=cfg.rotation_seed)
        rotation.load_state_dict(ckpt["rotation"])
    return model, task, cfg, rotation


def main(argv=None):
    """``python -m adamlinf.train --spec spec.json``: the entry point ``torchrun`` launches."""
    parser = argparse.ArgumentParser(
        prog="python -m adamlinf.train",
        description="Train from a run spec (JSON); use under torchrun for DDP.",
    )
    parser.add_argument("--spec", required=True, help="JSON file {model, data, train}")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    try:
        model, task, cfg, full = build_run(spec)
    except FileNotFoundError as exc:  # includes DataNotFoundError: print the preparation hint
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        train(model, task, cfg, spec=full)
    except KeyboardInterrupt:  # the trainer printed where it stopped and what it kept
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
