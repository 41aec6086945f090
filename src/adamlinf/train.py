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
(PAPER_MATH.md §5). The optimizers (``TrainConfig.optimizer``):

============================  ===============================================================
``adam``                      ``optim.create("adam", torch_form=True)`` (= torch.optim.Adam)
``rotated_adam``              Adam on ``w`` of ``RotatedParametrization(model, k, seed)``:
                              Adam on L∘R with the App. D.1 permute-and-rotate map R
``adasgd``                    Algorithm 2 (one scalar second moment)
``sgd``                       torch SGD with momentum (0.9 by default)
``blockwise_adam_tensor``     Algorithm 3 with one block per tensor (an extra)
``blockwise_adam_head``       Algorithm 3 with one block per attention head (Adam-mini style)
other names of optim.create   e.g. ``signgd``, ``rmsprop``
============================  ===============================================================

Outputs in ``out_dir``: ``metrics.jsonl`` (one JSON row per logged iteration, appended as the run
goes), ``metrics.csv`` (the same table), ``ckpt.pt`` (model, optimizer, rotation, grad scaler,
next iteration, RNG states, config, the specs that rebuild model and task, metric rows). A run
whose ``out_dir`` holds a checkpoint resumes from it (``resume=True``) and produces the same loss
curve as an uninterrupted run: batches are a function of the iteration, and every piece of state
is restored.

Several GPUs (or CPU processes): ``torchrun --standalone --nproc_per_node N -m adamlinf.train
--spec spec.json`` (``run(spec, nproc_per_node=N)`` launches it); ``train`` initialises the process
group from the environment (NCCL on CUDA, gloo on CPU), only rank 0 evaluates, logs and saves.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn

OPTIMIZERS = ("adam", "rotated_adam", "adasgd", "sgd", "blockwise_adam_tensor",
              "blockwise_adam_head", "signgd", "rmsprop")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}
# fields that must agree between a checkpoint and the config resuming from it
_RESUME_KEYS = ("optimizer", "lr", "min_lr", "warmup_iters", "lr_decay_iters", "schedule", "betas",
                "eps", "momentum", "rotation_k", "rotation_seed", "max_iters", "grad_accum",
                "batch_size", "grad_clip", "seed", "dtype", "torch_form", "optimizer_kwargs")


@dataclass
class TrainConfig:
    """Every knob of a run.

    Schedule (nanoGPT's): ``lr·(t+1)/(warmup_iters+1)`` for ``t < warmup_iters``; then ``"cosine"``
    decays to ``min_lr`` (default ``lr/10``) at ``lr_decay_iters`` (default ``max_iters``) and stays
    there, ``"constant"`` keeps ``lr``. ``batch_size`` is per rank and micro step (default: the
    task's ``batch_size``); the global batch is ``world · grad_accum · batch_size``.
    ``grad_clip``: max global gradient 2-norm (0 or None: off). ``eval_interval``: evaluate every
    that many iterations (0: only at the start and the end); the end is always evaluated.
    ``checkpoint_interval``: save every that many iterations (0: only at the end / on stop).
    ``dtype``: parameter precision (``"float32"``, ``"float64"``) or autocast precision
    (``"bfloat16"``, ``"float16"`` with a grad scaler) for float32 parameters. ``stop_iter``: stop
    (with a checkpoint) before iteration ``stop_iter`` as if interrupted; the schedule still targets
    ``max_iters``. ``torch_form``: optimizer form (bias correction, eps outside the root = torch
    Adam, what the paper ran). ``optimizer_kwargs``: extra keyword arguments for ``optim.create``.
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
    log_interval: int = 1
    checkpoint_interval: int = 0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False
    progress: bool = True
    resume: bool = True
    stop_iter: int | None = None
    torch_form: bool = True
    optimizer_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.out_dir = str(self.out_dir)
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2:
            raise ValueError(f"betas must be a pair, got {self.betas}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for name in ("max_iters", "grad_accum", "log_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_iters", "eval_interval", "checkpoint_interval"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr_decay_iters is not None and self.lr_decay_iters <= self.warmup_iters:
            raise ValueError("lr_decay_iters must exceed warmup_iters")
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 or None: off), got {self.grad_clip}")
        if self.stop_iter is not None and self.stop_iter < 0:
            raise ValueError(f"stop_iter must be >= 0, got {self.stop_iter}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr], got {self.min_lr}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Learning rate of iteration ``it`` (see :class:`TrainConfig`)."""
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
    """The optimizer ``cfg.optimizer`` over ``params`` via :func:`adamlinf.optim.create`."""
    from adamlinf import optim, partitions
    kw = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, momentum=cfg.momentum,
              torch_form=cfg.torch_form, **cfg.optimizer_kwargs)
    name = cfg.optimizer
    if name == "rotated_adam":
        return optim.create("adam", params, **kw)
    if name == "blockwise_adam_tensor":
        return optim.create("blockwise_adam", params, partition=partitions.tensor(), **kw)
    if name == "blockwise_adam_head":
        n_head = getattr(getattr(model, "config", None), "n_head", None)
        if n_head is None:
            raise ValueError("blockwise_adam_head needs a model with config.n_head (a GPT)")
        return optim.create("blockwise_adam", params, partition=partitions.heads(model, n_head), **kw)
    return optim.create(name, params, **kw)


# ------------------------------------------------------------------------------------------------
# distributed helpers
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


def _spec_of_model(model) -> dict | None:
    spec = getattr(model, "adamlinf_spec", None)
    if spec is None and hasattr(model, "config") and dataclasses.is_dataclass(model.config):
        spec = {"kind": "gpt", **dataclasses.asdict(model.config)}
    return dict(spec) if spec is not None else None


def _spec_of_task(task) -> dict | None:
    spec = getattr(task, "adamlinf_spec", None) or getattr(task, "spec", None)
    return dict(spec) if isinstance(spec, dict) else None


def _rng_state(device) -> dict:
    """CPU, NumPy and Python RNG states, plus the CUDA RNG state of ``device`` when it is a GPU.

    Only this process's own GPU is touched: ``torch.cuda.get_rng_state_all()`` would create a CUDA
    context on every visible GPU from every rank (and on a CPU run on a GPU machine)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if isinstance(state.get("cuda"), torch.Tensor) and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_metrics(rows: list[dict], out: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.to_csv(out / "metrics.csv", index=False)
    return df


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
def train(model: nn.Module, task, cfg: TrainConfig, *, spec: dict | None = None) -> pd.DataFrame:
    """Train ``model`` on ``task`` with ``cfg``; returns the metrics table (rank 0; other ranks
    get an empty table). Columns: ``iter`` (optimizer steps taken before the row's parameters),
    ``samples`` (and ``tokens`` for language tasks) seen by then, ``lr``, ``train_loss`` (mean loss
    of iteration ``iter``'s global batch, before its update), ``grad_norm`` (before clipping),
    the task's evaluation metrics (``val_loss``, …; on evaluation rows), ``iter_time`` (s) and
    ``time`` (wall seconds since the run started, across resumes). ``spec``: the run's
    ``{"model", "data", "train"}`` spec, stored in checkpoints for :func:`load_final` (derived from
    the model and task when they came from ``models.build`` / ``data.build_task``)."""
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    ddp, rank, world, device, we_init = _dist_setup(cfg.device)
    master = rank == 0
    task_bs = getattr(task, "batch_size", None)
    if cfg.batch_size is not None and task_bs is not None and cfg.batch_size != task_bs:
        raise ValueError(f"TrainConfig.batch_size={cfg.batch_size} differs from the task's "
                         f"batch_size={task_bs}; set it in the data spec")
    task_accum = getattr(task, "grad_accum", None)
    if task_accum is not None and task_accum != cfg.grad_accum:
        raise ValueError(f"TrainConfig.grad_accum={cfg.grad_accum} differs from the task's "
                         f"grad_accum={task_accum}; set both alike")
    batch_size = cfg.batch_size or task_bs
    if batch_size is None:
        raise ValueError("batch size unknown: set TrainConfig.batch_size or the task's batch_size")
    global_batch = batch_size * cfg.grad_accum * world
    tokens_per_sample = getattr(task, "tokens_per_sample", None)
    out = Path(cfg.out_dir)
    if master:
        out.mkdir(parents=True, exist_ok=True)
    spec = dict(spec) if spec is not None else {}
    spec.setdefault("model", _spec_of_model(model))
    spec.setdefault("data", _spec_of_task(task))
    spec["train"] = cfg.to_dict()

    # precision: parameters in float32/float64, autocast for bf16/fp16
    device_type = torch.device(device).type
    param_dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    amp_dtype = DTYPES[cfg.dtype] if cfg.dtype in ("bfloat16", "float16") else None
    model.to(device=device, dtype=param_dtype)
    autocast = (lambda: torch.autocast(device_type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.dtype == "float16")

    rotation = None
    if cfg.optimizer == "rotated_adam":
        from adamlinf.rotations import RotatedParametrization
        rotation = RotatedParametrization(model, k=cfg.rotation_k, seed=cfg.rotation_seed)
        if ddp:  # DDP syncs only the module's parameters; w (the optimizer's variable) must agree too
            dist.broadcast(rotation.w.data, src=0)
            rotation.push()
        params = rotation.parameters()
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, model, params)

    # resume
    start_iter, rows, elapsed0 = 0, [], 0.0
    ckpt_path = out / "ckpt.pt"
    if cfg.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        saved = ckpt["config"]
        diff = {k: (saved.get(k), cfg.to_dict()[k]) for k in _RESUME_KEYS if saved.get(k) != cfg.to_dict()[k]}
        if diff:
            raise ValueError(f"{ckpt_path} was written with a different config {diff} (saved, now); "
                             "use another out_dir or resume=False")
        model.load_state_dict(ckpt["model"])
        if rotation is not None:
            rotation.load_state_dict(ckpt["rotation"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"], device)
        start_iter, rows, elapsed0 = ckpt["iter"], list(ckpt["metrics"]), ckpt["elapsed"]
        if start_iter >= cfg.max_iters:  # finished already: nothing to do
            if we_init:
                dist.destroy_process_group()
            return pd.DataFrame(rows) if master else pd.DataFrame()
    else:
        torch.manual_seed(cfg.seed)
    if master:  # metrics.jsonl holds exactly the rows of the state we start from
        with open(out / "metrics.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    run_model = torch.compile(model) if cfg.compile else model
    train_model = run_model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP
        train_model = DDP(run_model, device_ids=[torch.device(device).index] if device_type == "cuda" else None)

    def to_device(batch):
        return tuple(b.to(device=device, dtype=param_dtype, non_blocking=True) if b.is_floating_point()
                     else b.to(device, non_blocking=True) for b in batch)

    def save_checkpoint(next_iter: int, elapsed: float):
        _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "rotation": rotation.state_dict() if rotation is not None else None,
                      "scaler": scaler.state_dict(), "rng": _rng_state(device), "iter": next_iter,
                      "elapsed": elapsed, "config": cfg.to_dict(), "spec": spec, "metrics": rows,
                      "world": world}, ckpt_path)
        _write_metrics(rows, out)

    from tqdm.auto import tqdm
    bar = tqdm(total=cfg.max_iters, initial=start_iter, disable=not (cfg.progress and master),
               desc=cfg.optimizer, unit="it", dynamic_ncols=True)
    jsonl = open(out / "metrics.jsonl", "a") if master else None
    t0 = time.time() - elapsed0
    stop = cfg.max_iters if cfg.stop_iter is None else min(cfg.stop_iter, cfg.max_iters)
    model.train()
    it = start_iter
    try:
        for it in range(start_iter, cfg.max_iters + 1):
            if stop <= it < cfg.max_iters:  # interrupted: the resumed run evaluates iteration `it`
                break
            row = {}
            if master and (it == cfg.max_iters or (cfg.eval_interval and it % cfg.eval_interval == 0)
                           or (it == 0 and cfg.eval_interval == 0)):
                if rotation is not None:
                    rotation.push()
                with autocast():
                    row.update(task.evaluate(run_model, device))
                model.train()
            if it == cfg.max_iters:
                if row:
                    row.update(_counts(it, global_batch, tokens_per_sample), time=time.time() - t0)
                    rows.append(dict(sorted(row.items(), key=_column_order)))
                    jsonl.write(json.dumps(rows[-1]) + "\n")
                break
            t_iter = time.time()
            lr = lr_at(it, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if rotation is not None:
                rotation.push()
            loss_sum = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                batch = to_device(task.batch("train", it, micro, rank, world))
                sync = train_model.no_sync() if ddp and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
                with sync:
                    with autocast():
                        loss = task.loss(train_model, batch) / cfg.grad_accum
                    scaler.scale(loss).backward()
                loss_sum += loss.detach().float()
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
            if it % cfg.log_interval == 0 or it == cfg.max_iters - 1:
                if ddp:
                    dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
                    loss_sum /= world
                train_loss = float(loss_sum)  # synchronises the device
                dt = time.time() - t_iter
                if master:
                    row.update(lr=lr, train_loss=train_loss, grad_norm=float(grad_norm), iter_time=dt)
                    if device_type == "cuda" and tokens_per_sample and hasattr(model, "estimate_mfu"):
                        row["mfu"] = model.estimate_mfu(global_batch * tokens_per_sample / world, dt)
                    rate = global_batch * (tokens_per_sample or 1) / max(dt, 1e-9)
                    bar.set_postfix(loss=f"{train_loss:.4f}",
                                    **{("tok/s" if tokens_per_sample else "samples/s"): f"{rate:,.0f}"})
            if master and row:
                row.update(_counts(it, global_batch, tokens_per_sample), time=time.time() - t0)
                rows.append(dict(sorted(row.items(), key=_column_order)))
                jsonl.write(json.dumps(rows[-1]) + "\n")
                jsonl.flush()
            bar.update(1)
            if master and cfg.checkpoint_interval and (it + 1) % cfg.checkpoint_interval == 0 \
                    and it + 1 < cfg.max_iters:
                save_checkpoint(it + 1, time.time() - t0)
        if rotation is not None:
            rotation.push()  # the module holds R w (for evaluation of the final state)
        if master:
            save_checkpoint(it, time.time() - t0)
        if ddp:
            dist.barrier()
    finally:
        bar.close()
        if jsonl is not None:
            jsonl.close()
        if we_init:
            dist.destroy_process_group()
    return pd.DataFrame(rows) if master else pd.DataFrame()


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


# ------------------------------------------------------------------------------------------------
# specs: run and load_final
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
    ``torch.manual_seed(train.seed)``."""
    from adamlinf.data import build_task
    from adamlinf.models import build
    if not isinstance(spec, dict) or not {"model", "data", "train"} <= set(spec):
        raise ValueError("a run spec is a dict with keys 'model', 'data' and 'train'")
    data_spec, model_spec, train_spec = dict(spec["data"]), dict(spec["model"]), dict(spec["train"])
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
    cfg = TrainConfig(**train_spec)
    torch.manual_seed(cfg.seed)
    model = build(model_spec)
    return model, task, cfg, {"model": model_spec, "data": data_spec, "train": cfg.to_dict()}


def launch_command(spec_path, nproc_per_node: int, *, python: str | None = None) -> list[str]:
    """The DDP launch of one run: ``torchrun --standalone --nproc_per_node N -m adamlinf.train
    --spec <spec_path>``, written as ``<python> -m torch.distributed.run ...`` when ``python`` is
    given (what :func:`run` executes, so the launch uses this interpreter's environment)."""
    if int(nproc_per_node) < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    head = [python, "-m", "torch.distributed.run"] if python else ["torchrun"]
    return head + ["--standalone", f"--nproc_per_node={int(nproc_per_node)}", "-m", "adamlinf.train",
                   "--spec", str(spec_path)]


def run(spec: dict, nproc_per_node: int = 1) -> pd.DataFrame:
    """Train from a run spec (see :func:`build_run`); returns the metrics table.

    ``nproc_per_node == 1``: in this process. ``> 1``: writes ``<out_dir>/spec.json`` and launches
    ``python -m torch.distributed.run --standalone --nproc_per_node N -m adamlinf.train --spec
    <out_dir>/spec.json`` (DDP: NCCL on CUDA with one GPU per process, gloo on CPU), then reads
    ``metrics.csv``."""
    if int(nproc_per_node) < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    if nproc_per_node == 1:
        model, task, cfg, full = build_run(spec)
        return train(model, task, cfg, spec=full)
    from adamlinf.data import build_task
    data_spec = dict(spec["data"])
    build_task(data_spec)  # fail fast, with the data-preparation message, if the data is missing
    out = Path(spec["train"]["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec, indent=2))
    cmd = launch_command(out / "spec.json", nproc_per_node, python=sys.executable)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(nproc_per_node))))
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with code {proc.returncode}: {' '.join(cmd)}")
    return pd.read_csv(out / "metrics.csv")


def load_final(out_dir, device: str = "cpu", allow_partial: bool = False):
    """``(model, task, cfg, rotation_or_None)`` from ``out_dir/ckpt.pt``: the model (on ``device``,
    in eval mode) holds the final parameters (for rotated Adam ``x = R w``; ``rotation`` is the
    restored :class:`~adamlinf.rotations.RotatedParametrization`, whose ``rotation`` attribute is
    the map R for the Hessian of L∘R). Raises if the run has not finished (unless
    ``allow_partial``)."""
    path = Path(out_dir) / "ckpt.pt"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: run the training first")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = TrainConfig(**ckpt["config"])
    if ckpt["iter"] < cfg.max_iters and not allow_partial:
        raise ValueError(f"{path} is at iteration {ckpt['iter']} of {cfg.max_iters}: the run has not "
                         "finished (resume it, or pass allow_partial=True)")
    spec = ckpt["spec"]
    if not spec.get("model") or not spec.get("data"):
        raise ValueError(f"{path} has no model/data spec: train models from adamlinf.models.build and "
                         "tasks from adamlinf.data.build_task (or use run()) to make it loadable")
    from adamlinf.data import build_task
    from adamlinf.models import build
    task = build_task(spec["data"])
    model = build(spec["model"])
    param_dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    model.to(dtype=param_dtype)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    rotation = None
    if ckpt.get("rotation") is not None:
        from adamlinf.rotations import RotatedParametrization
        rotation = RotatedParametrization(model, k=cfg.rotation_k, seed=cfg.rotation_seed)
        rotation.load_state_dict(ckpt["rotation"])
    return model, task, cfg, rotation


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m adamlinf.train",
                                     description="Train from a run spec (JSON); use under torchrun for DDP.")
    parser.add_argument("--spec", required=True, help="JSON file {model, data, train}")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    try:
        model, task, cfg, full = build_run(spec)
    except FileNotFoundError as exc:  # includes DataNotFoundError: print the preparation hint
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train(model, task, cfg, spec=full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
