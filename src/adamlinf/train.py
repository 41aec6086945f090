"""The one training loop of the experiments (GPT-2, Section 4.2; ResNet18, Section 4.3), after nanoGPT.

Iteration ``t``: ``lr_at(t)``; [rotated Adam: module <- R w]; ``grad_accum = A`` micro steps of
``(task.loss(model, task.batch("train", t, m, rank, world)) / A).backward()`` (DDP syncs the last);
[rotated Adam: w.grad <- Rᵀ grad]; clip the global gradient norm; ``optimizer.step()``.

``out_dir`` holds ``metrics.jsonl``, ``metrics.csv`` and SHA-256-checked ``ckpt-<iter>.pt``, written every
``checkpoint_interval`` iterations or ``checkpoint_minutes``, at the end, on an error, SIGINT or SIGTERM;
a run resumes from its newest valid one, only into the same :func:`result_spec`. One trainer per
``out_dir``. DDP: ``torchrun --standalone --nproc_per_node N -m adamlinf.train --spec spec.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
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

from adamlinf import optim, results
from adamlinf.data import build_task
from adamlinf.models import build
from adamlinf.rotations import RotatedParametrization

OPTIMIZERS = tuple(optim.OPTIMIZERS)  # the registry's names (adamlinf.optim)
DTYPES = {name: getattr(torch, name) for name in ("float32", "float64", "bfloat16", "float16")}

#: ``TrainConfig`` fields that change neither the parameters nor the metrics (``device``, ``compile``:
#: rounding only): not part of a run's identity (``adamlinf.launch.spec_key``) nor checked on resume.
EXECUTION_FIELDS = frozenset(
    {"out_dir", "eval_interval", "log_interval", "checkpoint_interval", "checkpoint_minutes"}
    | {"keep_checkpoints", "progress", "resume", "stop_iter", "device", "compile"}
)
_CKPT_KEYS = "model optimizer rotation scaler rng iter elapsed config spec metrics".split()
_CKPT_NAME = re.compile(r"ckpt-(\d{8})\.pt")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used (empty, truncated, damaged, or not a checkpoint)."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped and an earlier one used."""


def _int(name: str, value, minimum: int = 0, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise ValueError(f"TrainConfig.{name} must be an int, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"TrainConfig.{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _float(name: str, value, hi: float = math.inf, *, positive=False, optional=False) -> float | None:
    if value is None and optional:
        return None
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < 0 or value > hi or (positive and value == 0):
        bound = ("> 0" if positive else ">= 0") + (f" and <= {hi}" if hi < math.inf else "")
        raise ValueError(f"TrainConfig.{name} must be a finite number {bound}, got {value!r}")
    return float(value)


@dataclass
class TrainConfig:
    """Every knob of a run, checked when built (the optimizer checks its own hyperparameters).

    Schedule (nanoGPT's): ``lr·(t+1)/(warmup_iters+1)`` for ``t < warmup_iters``; then ``"cosine"``
    decays to ``min_lr`` (None: ``lr/10``) at ``lr_decay_iters`` (None: ``max_iters``); ``"constant"``.
    ``betas``, ``eps``, ``momentum``, ``torch_form``, ``optimizer_kwargs`` go to ``optim.create``;
    rotated Adam uses ``rotation_k`` and ``rotation_seed`` (App. D.1). ``batch_size``: per rank and
    micro step (None: the task's). ``grad_clip``: max global 2-norm (0/None: off). ``eval_interval``:
    0 evaluates at the start only (the end always). ``log_interval``: iterations per host sync (None:
    1 on CPU, 10 on CUDA). Checkpoints every ``checkpoint_interval`` iterations and ``checkpoint_minutes``
    (0: off), keeping ``keep_checkpoints``. ``dtype``: parameters (float32/64) or autocast (bfloat16,
    float16 with a scaler). ``compile`` (None: on CUDA). ``stop_iter``: stop there with a checkpoint.
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
        allowed = {"optimizer": OPTIMIZERS, "schedule": ("cosine", "constant"), "dtype": DTYPES}
        for name, choices in allowed.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise ValueError(f"TrainConfig.{name} must be one of {tuple(choices)}, got {value!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"TrainConfig.device must be a string such as 'cuda', got {self.device!r}")
        self.lr = _float("lr", self.lr, positive=True)
        self.min_lr = _float("min_lr", self.min_lr, self.lr, optional=True)
        self.grad_clip = _float("grad_clip", self.grad_clip, optional=True)
        self.checkpoint_minutes = _float("checkpoint_minutes", self.checkpoint_minutes)
        for name in ("max_iters", "grad_accum", "keep_checkpoints"):
            setattr(self, name, _int(name, getattr(self, name), 1))
        for name in "warmup_iters eval_interval checkpoint_interval rotation_k rotation_seed seed".split():
            setattr(self, name, _int(name, getattr(self, name)))
        for name in ("batch_size", "log_interval", "stop_iter", "lr_decay_iters"):
            setattr(self, name, _int(name, getattr(self, name), 1, optional=True))
        if self.lr_decay_iters is not None and self.lr_decay_iters <= self.warmup_iters:
            raise ValueError(f"TrainConfig.lr_decay_iters={self.lr_decay_iters} must exceed warmup_iters")
        for name in ("progress", "resume", "torch_form", "compile"):
            value, optional = getattr(self, name), name == "compile"  # compile: None is "on CUDA"
            if not (isinstance(value, bool) or (value is None and optional)):
                choices = "True or False or None" if optional else "True or False"
                raise ValueError(f"TrainConfig.{name} must be {choices}, got {value!r}")
        if not isinstance(self.optimizer_kwargs, dict):
            raise ValueError(f"TrainConfig.optimizer_kwargs must be a dict, got {self.optimizer_kwargs!r}")

    def to_dict(self) -> dict:
        """The fields as a JSON-friendly dict (``betas`` as a list)."""
        return {**dataclasses.asdict(self), "betas": list(self.betas)}


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Learning rate of iteration ``it`` (the schedule of :class:`TrainConfig`)."""
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


def result_spec(spec: dict) -> dict:
    """The part of a run spec that determines its results (no ``data.root``, :data:`EXECUTION_FIELDS`)."""
    data = {k: v for k, v in (spec.get("data") or {}).items() if k != "root"}
    config = {k: v for k, v in (spec.get("train") or {}).items() if k not in EXECUTION_FIELDS}
    return {"model": dict(spec.get("model") or {}), "data": data, "train": config}


def _spec_of(obj) -> dict | None:
    """The spec a model or task was built from (``adamlinf_spec``; a GPT's config; a task's ``spec``)."""
    spec = getattr(obj, "adamlinf_spec", None) or getattr(obj, "spec", None)
    if spec is None and dataclasses.is_dataclass(getattr(obj, "config", None)):
        spec = {"kind": "gpt", **dataclasses.asdict(obj.config)}
    return dict(spec) if isinstance(spec, dict) else None


def checkpoint_path(out_dir, it: int) -> Path:
    """``<out_dir>/ckpt-<it, 8 digits>.pt``: the checkpoint taken before iteration ``it``."""
    return Path(out_dir) / f"ckpt-{int(it):08d}.pt"


def list_checkpoints(out_dir) -> list[Path]:
    """The checkpoints in ``out_dir``, newest first."""
    found = [p for p in Path(out_dir).glob("ckpt-*.pt") if _CKPT_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def save_checkpoint(state: dict, out_dir, it: int, keep: int = 2) -> Path:
    """Write ``state`` atomically with its SHA-256 beside it; keep the newest ``keep`` checkpoints."""
    path = checkpoint_path(out_dir, it)

    def save(f):  # torch reports a failed write as its own RuntimeError: raise the OSError instead
        try:
            torch.save(state, f)
        except RuntimeError as exc:
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise

    results.write_atomic(path, save)
    line = f"{results.sha256_file(path)}  {path.name}\n".encode()
    results.write_atomic(path.with_name(path.name + ".sha256"), lambda f: f.write(line))
    for old in list_checkpoints(out_dir)[max(1, keep) :]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return path


def load_checkpoint(path) -> dict:
    """A checkpoint, after checking its SHA-256 and keys; else a :class:`CheckpointError` naming the file."""
    path = Path(path)
    sha = path.with_name(path.name + ".sha256")
    if not path.is_file() or path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is missing or empty")
    if not sha.is_file():
        raise CheckpointError(f"checkpoint {path} has no checksum file {sha.name} (its write did not finish)")
    if results.sha256_file(path) != (sha.read_text().split() or [""])[0]:
        raise CheckpointError(f"checkpoint {path} is damaged: its SHA-256 differs from the one in {sha.name}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unpickling failure: the message names the file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in _CKPT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(_CKPT_KEYS)
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of adamlinf.train (it lacks {missing})")
    return ckpt


def newest_checkpoint(out_dir, *, quarantine: bool = False) -> tuple[dict, Path] | None:
    """``(checkpoint, path)`` of the newest valid checkpoint, or None when there is none.

    Damaged ones are skipped with a :class:`CheckpointWarning` (renamed ``*.damaged`` with ``quarantine``).
    """
    damaged = []
    for path in list_checkpoints(out_dir):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            damaged.append((path, str(exc)))
            continue
        for bad, why in damaged:
            for f in (bad, bad.with_name(bad.name + ".sha256")) if quarantine else ():
                if f.exists():
                    f.rename(f.with_name(f.name + ".damaged"))
            warnings.warn(f"{why}; using the previous valid checkpoint {path}", CheckpointWarning, 3)
        return ckpt, path
    if damaged:
        whys = "; ".join(why for _, why in damaged)
        msg = f"no valid checkpoint in {out_dir}: {whys}; move the damaged files away to start afresh"
        raise CheckpointError(msg)
    return None


def out_dir_of(cfg: TrainConfig, create: bool = True) -> Path:
    """``cfg.out_dir``, created; a ``NotADirectoryError`` when it or a parent is a file."""
    out = Path(cfg.out_dir)
    bad = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if bad is not None:
        msg = f"TrainConfig.out_dir={cfg.out_dir!r}: {bad} is a file, not a folder; choose another out_dir"
        raise NotADirectoryError(msg)
    if create:  # a read-only folder or a symlink loop: one line naming the folder and the cause
        results.make_dirs(out)
    return out


def _dist_setup(device: str):
    """(ddp, rank, world, device, we_initialised) from torchrun's environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False, 0, 1, device, False
    rank = int(os.environ["RANK"])
    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        torch.cuda.set_device(device)
    init = not dist.is_initialized()
    if init:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True, rank, world, device, init


def _rng_state(device) -> dict:
    """The torch (and this GPU's) RNG states."""
    state = {"torch": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _resume(out: Path, cfg: TrainConfig, spec: dict, model, rotation, optimizer, scaler, device, master):
    """(start iteration, metric rows, elapsed seconds) from the newest valid checkpoint, if any."""
    if not cfg.resume and list_checkpoints(out):
        raise ValueError(f"{out} holds checkpoints of an earlier run and resume=False: use an empty out_dir")
    found = newest_checkpoint(out, quarantine=master) if cfg.resume else None
    if found is None:
        torch.manual_seed(cfg.seed)
        return 0, [], 0.0
    ckpt, path = found
    a, b, diff = result_spec(ckpt["spec"]), result_spec(spec), []
    for section in ("model", "data", "train"):  # one line per result-relevant field that differs
        for key in sorted(set(a[section]) | set(b[section])):
            old, new = a[section].get(key, "<absent>"), b[section].get(key, "<absent>")
            if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
                diff.append(f"{section}.{key}: {old!r} (checkpoint) -> {new!r} (now)")
    if diff:
        lines = "\n  ".join(diff)
        msg = f"{path} was written by a run with a different spec; refusing to mix them:\n  {lines}"
        raise ValueError(msg + "\nuse another out_dir (or restore the spec)")
    model.load_state_dict(ckpt["model"])
    if rotation is not None:
        rotation.load_state_dict(ckpt["rotation"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt["rng"]
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if isinstance(rng.get("cuda"), torch.Tensor) and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    return ckpt["iter"], list(ckpt["metrics"]), ckpt["elapsed"]


def _wrap(model: nn.Module, cfg: TrainConfig, ddp: bool, device):
    """(model for evaluation, model for training): compiled (default on CUDA), DDP-wrapped."""
    cuda = torch.device(device).type == "cuda"
    run_model = torch.compile(model) if (cuda if cfg.compile is None else cfg.compile) else model
    ids = [torch.device(device).index] if cuda else None
    return run_model, DistributedDataParallel(run_model, device_ids=ids) if ddp else run_model


def _batches(task, cfg: TrainConfig, start: int, stop: int, rank: int, world: int, device, dtype, ahead=None):
    """The micro batches of iterations ``start..stop-1`` on ``device``, ``ahead`` (None: on CUDA) by one."""
    cuda = torch.device(device).type == "cuda"

    def to_device(b):
        kw = {"dtype": dtype} if b.is_floating_point() else {}
        return (b.pin_memory() if cuda else b).to(device=device, non_blocking=True, **kw)

    ahead, waiting = cuda if ahead is None else ahead, []
    for it in range(start, stop):
        for micro in range(cfg.grad_accum):
            waiting.append(tuple(map(to_device, task.batch("train", it, micro, rank, world))))
            if len(waiting) > ahead:  # ahead: the next batch is on its way before this one is used
                yield waiting.pop(0)
    yield from waiting


def _accumulate(task, train_model, batches, cfg: TrainConfig, ddp, autocast, scaler, device) -> torch.Tensor:
    """Forward and backward over the micro steps (DDP syncs on the last); the mean loss, on the device."""
    loss = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum):
        with train_model.no_sync() if ddp and micro < cfg.grad_accum - 1 else contextlib.nullcontext():
            with autocast():
                micro_loss = task.loss(train_model, next(batches)) / cfg.grad_accum
            scaler.scale(micro_loss).backward()
        loss += micro_loss.detach().float()
    return loss


def _step(optimizer, scaler, params, cfg: TrainConfig, rotation, model) -> torch.Tensor:
    """Unscale, clip, step, zero the gradients; the gradient norm before clipping (on the device)."""
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


_FIRST = ("iter", "samples", "tokens", "lr", "train_loss", "grad_norm")
_LAST = ("iter_time", "mfu", "time")


class _StopSignals:
    """SIGINT/SIGTERM: a checkpoint at the next step boundary, then :meth:`stop`; a 2nd SIGINT stops now."""

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.received: int | None = None
        self.previous: dict = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM) if self.active else ():
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
    """Metric rows and checkpoints: iterations are buffered as device tensors until :meth:`flush`."""

    def __init__(self, out: Path, rows: list, cfg, master, device, geometry, start, elapsed, state):
        self.out, self.rows, self.cfg, self.master = out, rows, cfg, master
        self.stateful, self.spec, self.world = state  # stateful: the objects a checkpoint holds
        self.global_batch, self.tokens = geometry
        self.device, self.cuda = device, torch.device(device).type == "cuda"
        self.interval = cfg.log_interval or (10 if self.cuda else 1)
        self.t0, self.pending, self.evaluated = time.time() - elapsed, [], {}
        self.t_window = self.last_save = time.time()  # start of the buffered iterations; of the last save
        self.jsonl = None
        if master:  # metrics.jsonl holds exactly the rows of the state we start from
            results.write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
            self.jsonl = open(out / "metrics.jsonl", "a")
            if rows:  # a metrics.csv cut short (a kill during its write) is rebuilt from the checkpoint
                self.write_csv()
        show = cfg.progress and master
        self.bar = tqdm(total=cfg.max_iters, initial=start, disable=not show, desc=cfg.optimizer, unit="it")

    def evaluate(self, it: int, task, model, rotation, autocast) -> None:
        if self.master:
            if rotation is not None:
                rotation.push()  # the module holds R w
            with autocast():
                self.evaluated = {"iter": it, **task.evaluate(model, self.device)}
            self.stateful["model"].train()
        self.t_window = time.time()  # evaluation is not part of an iteration's time

    def record(self, it: int, lr: float, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        extra = self.evaluated if self.evaluated.get("iter") == it else {}
        self.pending.append((it, lr, loss, grad_norm, {k: v for k, v in extra.items() if k != "iter"}))

    def eval_due(self, it: int) -> bool:
        every = self.cfg.eval_interval
        return it % every == 0 if every else it == 0

    def end_step(self, n: int, stop: int, rng: dict) -> None:
        """Flush when due; then (rank 0) checkpoint every ``checkpoint_interval`` iterations or minutes."""
        c = self.cfg
        by_iter = bool(c.checkpoint_interval and n % c.checkpoint_interval == 0)
        if n % self.interval and n != stop and not self.eval_due(n) and not by_iter:
            return
        self.flush()
        by_time = bool(c.checkpoint_minutes and (time.time() - self.last_save) / 60 >= c.checkpoint_minutes)
        if self.master and n < stop and (by_iter or by_time):
            self.save(n, rng)

    def flush(self) -> None:
        """One host sync for the buffered iterations (and one all-reduce of their losses under DDP)."""
        if not self.pending:
            return
        losses = torch.stack([p[2] for p in self.pending])
        if self.world > 1:  # DDP (torchrun's WORLD_SIZE)
            dist.all_reduce(losses, op=dist.ReduceOp.SUM)
            losses /= self.world
        norms = torch.stack([p[3].float().to(losses.device) for p in self.pending])
        host = torch.stack([losses, norms], 1).tolist()  # the sync
        now = time.time()
        dt = (now - self.t_window) / len(self.pending)
        for (it, lr, _, _, extra), (loss, norm) in zip(self.pending, host, strict=True):
            row = {**extra, "lr": lr, "train_loss": loss, "grad_norm": norm, "iter_time": dt}
            model = self.stateful["model"]
            if self.cuda and self.tokens and hasattr(model, "estimate_mfu"):
                row["mfu"] = model.estimate_mfu(self.global_batch * self.tokens / self.world, dt)
            self.append(it, row, now)
        rate = self.global_batch * (self.tokens or 1) / max(dt, 1e-9)
        unit = "tok/s" if self.tokens else "samples/s"
        self.bar.set_postfix({"loss": f"{host[-1][0]:.4f}", unit: f"{rate:,.0f}"})
        self.bar.update(len(self.pending))
        self.pending, self.t_window = [], time.time()

    def append(self, it: int, row: dict, now: float) -> None:
        if self.master:
            row.update(iter=it, samples=it * self.global_batch, time=now - self.t0)
            if self.tokens:
                row["tokens"] = it * self.global_batch * self.tokens
            middle = sorted(row.keys() - {*_FIRST, *_LAST})  # the evaluation metrics
            order = [k for k in _FIRST if k in row] + middle + [k for k in _LAST if k in row]
            self.rows.append({k: row[k] for k in order})
            try:
                self.jsonl.write(json.dumps(self.rows[-1]) + "\n")
                self.jsonl.flush()
            except OSError as exc:  # a full disk: one line naming the file
                raise results.describe_os_error(exc, self.jsonl.name) from None

    def save(self, n: int, rng: dict) -> None:
        """Checkpoint the state before iteration ``n`` (``rng``: the torch RNG states at that point)."""
        state = {k: None if v is None else v.state_dict() for k, v in self.stateful.items()}
        rng = {"numpy": np.random.get_state(), "python": random.getstate(), **rng}
        state |= {"rng": rng, "iter": n, "elapsed": time.time() - self.t0}
        state |= {"config": self.cfg.to_dict(), "spec": self.spec, "metrics": self.rows, "world": self.world}
        save_checkpoint(state, self.out, n, self.cfg.keep_checkpoints)
        self.write_csv()
        self.last_save = self.t_window = time.time()  # the save is not part of an iteration's time

    def write_csv(self) -> None:
        results.write_text_atomic(self.out / "metrics.csv", pd.DataFrame(self.rows).to_csv(index=False))

    def close(self) -> None:
        self.bar.close()
        if self.jsonl is not None:
            self.jsonl.close()


def train(model: nn.Module, task, cfg: TrainConfig, *, spec: dict | None = None) -> pd.DataFrame:
    """Train ``model`` on a task of :mod:`adamlinf.data` (see the module docstring).

    ``spec`` is stored in checkpoints (for :func:`load_final`) and compared on resume. Returns the
    metrics on rank 0 (else empty): ``iter``, ``samples`` (``tokens``), ``lr``, ``train_loss`` (before
    the update), ``grad_norm`` (before clipping), evaluation metrics, ``iter_time``, ``mfu``, ``time``.
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    ddp, rank, world, device, we_init = _dist_setup(cfg.device)
    master = rank == 0
    out = out_dir_of(cfg, create=master)
    lock = results.exclusive(out / ".train.lock", f"trainer of {out}", wait=False) if master else None
    with lock or contextlib.nullcontext(), _StopSignals(master and not ddp) as signals:
        return _train(model, task, cfg, spec, ddp, rank, world, device, we_init, out, signals)


def _train(model, task, cfg, spec, ddp, rank, world, device, we_init, out, signals) -> pd.DataFrame:
    master = rank == 0
    spec = {"model": _spec_of(model), "data": _spec_of(task), **(spec or {}), "train": cfg.to_dict()}
    for name in ("batch_size", "grad_accum"):  # the batch settings agree with the task's
        ours, theirs = getattr(cfg, name), getattr(task, name, None)
        if None not in (ours, theirs) and ours != theirs:
            msg = f"TrainConfig.{name}={ours} differs from the task's {name}={theirs}: set both alike"
            raise ValueError(msg)
    batch_size = cfg.batch_size or getattr(task, "batch_size", None)
    if batch_size is None:
        raise ValueError("batch size unknown: set TrainConfig.batch_size or the task's batch_size")
    geometry = batch_size * cfg.grad_accum * world, getattr(task, "tokens_per_sample", None)
    device_type = torch.device(device).type
    param_dtype = torch.float64 if cfg.dtype == "float64" else torch.float32  # else autocast to cfg.dtype
    model.to(device=device, dtype=param_dtype)
    amp = DTYPES[cfg.dtype] if cfg.dtype in ("bfloat16", "float16") else None
    autocast = functools.partial(torch.autocast, device_type, dtype=amp) if amp else contextlib.nullcontext
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.dtype == "float16")
    rotation, params = None, [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "rotated_adam":  # the optimizer trains w of x = R w
        rotation = RotatedParametrization(model, k=cfg.rotation_k, seed=cfg.rotation_seed)
        params = rotation.parameters()
        if ddp:  # DDP syncs only the module's parameters; w (the optimizer's variable) must agree too
            dist.broadcast(rotation.w.data, src=0)
            rotation.push()
    kw = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, momentum=cfg.momentum, **cfg.optimizer_kwargs)
    if not cfg.torch_form:  # the paper's form: no bias correction, eps inside the root
        kw.update(bias_correction=False, eps=0.0, eps_root=cfg.eps)
    optimizer = optim.create(cfg.optimizer, params, model=model, **kw)  # model: the per-head partition
    start, rows, elapsed = _resume(out, cfg, spec, model, rotation, optimizer, scaler, device, master)
    eval_model, train_model = _wrap(model, cfg, ddp, device)
    stop = max(start, min(cfg.max_iters, cfg.max_iters if cfg.stop_iter is None else cfg.stop_iter))
    state = ({"model": model, "optimizer": optimizer, "scaler": scaler, "rotation": rotation}, spec, world)
    log = _Log(out, rows, cfg, master, device, geometry, start, elapsed, state)
    batches = _batches(task, cfg, start, stop, rank, world, device, param_dtype)
    done, rng, consistent = start, _rng_state(device), True
    model.train()
    try:
        for it in range(start, stop):
            if log.eval_due(it):
                log.evaluate(it, task, eval_model, rotation, autocast)
            lr = lr_at(it, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if rotation is not None:
                rotation.push()
            loss = _accumulate(task, train_model, batches, cfg, ddp, autocast, scaler, device)
            consistent = False  # the update changes the state that a checkpoint of iteration `done` holds
            log.record(it, lr, loss, _step(optimizer, scaler, params, cfg, rotation, model))
            done, rng, consistent = it + 1, _rng_state(device), True
            if signals.received is not None and done < stop:
                raise signals.stop()  # checkpointed below, at this step boundary
            log.end_step(done, stop, rng)
        final = stop == cfg.max_iters and not (rows and rows[-1]["iter"] >= stop)
        if final:  # the final evaluation, after the loop
            log.evaluate(stop, task, eval_model, rotation, autocast)
            log.append(stop, {k: v for k, v in log.evaluated.items() if k != "iter"}, time.time())
        if master and (start < stop or final):
            log.save(stop, _rng_state(device))
        if ddp:
            dist.barrier()
    except BaseException:
        where = "no new checkpoint (nothing trained since the last)"
        if master and consistent and not ddp and done > start:  # keep what was trained (Ctrl-C, an error)
            try:
                log.flush()
                log.save(done, rng)
                where = f"checkpoint {checkpoint_path(out, done)} written"
            except Exception as exc:  # the original error matters more; say why no checkpoint was kept
                warnings.warn(f"could not checkpoint iteration {done} in {out}: {exc}", CheckpointWarning, 2)
        if signals.received is not None:
            name = signal.Signals(signals.received).name
            stopped = f"[train] stopped by {name} at iteration {done} of {cfg.max_iters}: {where}; "
            print(stopped + "run the same command again to resume", file=sys.stderr, flush=True)
        raise
    finally:
        log.close()
        if we_init:
            dist.destroy_process_group()
    return pd.DataFrame(rows) if master else pd.DataFrame()


def build_run(spec: dict):
    """``(model, task, cfg, full spec)`` from a run spec ``{"model", "data", "train"}``.

    A GPT takes missing ``vocab_size`` (padded to a multiple of 64) and ``block_size`` from the task;
    the model is initialised under ``torch.manual_seed(train.seed)``.
    """
    if not isinstance(spec, dict) or not {"model", "data", "train"} <= set(spec):
        raise ValueError("a run spec is a dict with keys 'model', 'data' and 'train'")
    data_spec, model_spec, train_spec = dict(spec["data"]), dict(spec["model"]), dict(spec["train"])
    cfg = TrainConfig(**train_spec)  # a bad configuration fails before any data is read
    if train_spec.get("batch_size") is not None:
        data_spec.setdefault("batch_size", train_spec["batch_size"])
    if data_spec.get("kind") != "lm" and train_spec.get("grad_accum", 1) != 1:
        data_spec.setdefault("grad_accum", train_spec["grad_accum"])
    task = build_task(data_spec)
    if model_spec.get("kind") == "gpt":
        if "vocab_size" not in model_spec and hasattr(task, "vocab_size"):
            model_spec["vocab_size"] = -(-task.vocab_size // 64) * 64  # GPT-2's 50257 -> 50304
        if "block_size" not in model_spec and hasattr(task, "block_size"):
            model_spec["block_size"] = task.block_size
    torch.manual_seed(cfg.seed)
    model = build(model_spec)
    return model, task, cfg, {"model": model_spec, "data": data_spec, "train": cfg.to_dict()}


def load_final(out_dir, device: str = "cpu", allow_partial: bool = False):
    """``(model in eval mode, task, cfg, rotation or None)`` of a run's newest valid checkpoint.

    Rotated Adam: the model holds ``x = R w``. ``FileNotFoundError`` without a checkpoint; ``ValueError``
    for an unfinished run (unless ``allow_partial``) or one without model/data specs.
    """
    found = newest_checkpoint(out_dir)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {out_dir}: run the training first")
    ckpt, path = found
    cfg = TrainConfig(**ckpt["config"])
    if ckpt["iter"] < cfg.max_iters and not allow_partial:
        msg = f"{path} is at iteration {ckpt['iter']} of {cfg.max_iters}: the run has not finished"
        raise ValueError(msg + " (resume it, or pass allow_partial=True)")
    spec = ckpt["spec"]
    if not spec.get("model") or not spec.get("data"):
        msg = f"{path} has no model/data spec: train models from adamlinf.models.build and tasks from "
        raise ValueError(msg + "adamlinf.data.build_task (or use adamlinf.launch.run) to make it loadable")
    task = build_task(spec["data"])
    model = build(spec["model"]).to(dtype=torch.float64 if cfg.dtype == "float64" else torch.float32)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    rotation = None
    if ckpt.get("rotation") is not None:
        rotation = RotatedParametrization(model, k=cfg.rotation_k, seed=cfg.rotation_seed)
        rotation.load_state_dict(ckpt["rotation"])
    return model, task, cfg, rotation


def main(argv=None):
    """``python -m adamlinf.train --spec spec.json``: the entry point ``torchrun`` launches."""
    parser = argparse.ArgumentParser(prog="python -m adamlinf.train", description="Train from a run spec.")
    parser.add_argument("--spec", required=True, help="JSON file {model, data, train}")
    spec = json.loads(Path(parser.parse_args(argv).spec).read_text())
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
