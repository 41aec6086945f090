r"""Runs of Sections 4.2 (GPT-2) and 4.3 (ResNet18): run specs, run folders keyed by spec, launches.

A run spec is ``{"model": ..., "data": ..., "train": {TrainConfig fields}, "tags": {metrics columns}}``.
:func:`run_specs` trains ``specs[name]`` in ``root/<name>/`` keyed by :func:`spec_key`: a complete run
is skipped, an incomplete one resumed, a folder of another key moved aside to ``root/<name>@<key>/``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from adamlinf import train as _train
from adamlinf.data import build_task
from adamlinf.results import exclusive, write_text_atomic

SPEC_FILE = "experiment_spec.json"
COMPLETE_FILE = "experiment_complete.json"
_PARTS = ("model", "data", "train")


def with_train(spec: Mapping, tags: Mapping | None = None, **train: Any) -> dict:
    """A deep copy of ``spec`` with ``spec["train"]`` updated by ``train`` and ``tags`` merged."""
    out = copy.deepcopy(dict(spec))
    out["train"] = {**out.get("train", {}), **train}
    if tags:
        out["tags"] = {**out.get("tags", {}), **tags}
    return out


def lm_spec(
    *,
    dataset: str,
    n_layer: int,
    n_head: int,
    n_embd: int,
    block_size: int,
    batch_size: int,
    optimizer: str = "adam",
    lr: float,
    vocab_size: int | None = None,
    eval_iters: int = 10,
    eval_batch_size: int | None = None,
    data_seed: int = 0,
    attention: str = "flash",
    tags: Mapping | None = None,
    **train: Any,
) -> dict:
    """A GPT run spec (Section 4.2); ``batch_size`` per device and micro step, ``**train``: TrainConfig."""
    model = {"kind": "gpt", "n_layer": int(n_layer), "n_head": int(n_head), "n_embd": int(n_embd)}
    model |= {"block_size": int(block_size), "attention": attention}
    if vocab_size is not None:
        model["vocab_size"] = int(vocab_size)
    data = {"kind": "lm", "dataset": dataset, "block_size": int(block_size), "batch_size": int(batch_size)}
    data |= {"seed": int(data_seed), "eval_iters": int(eval_iters), "eval_batch_size": eval_batch_size}
    if "betas" in train:
        train["betas"] = [float(b) for b in train["betas"]]
    spec = {"model": model, "data": data, "train": {"optimizer": optimizer, "lr": float(lr), **train}}
    if tags:
        spec["tags"] = dict(tags)
    return spec


def image_spec(
    *,
    source: str,
    batch_size: int,
    epochs: float,
    width: int = 64,
    blocks: Sequence[int] = (2, 2, 2, 2),
    image_size: int | None = None,
    eval_batch_size: int | None = None,
    data_seed: int = 0,
    evals_per_epoch: int = 2,
    optimizer: str = "sgd",
    lr: float = 0.1,
    tags: Mapping | None = None,
    **train: Any,
) -> dict:
    """A ResNet18 run spec (Section 4.3) of ``epochs`` passes over ``source`` (20 = 4000 steps at batch 256).

    ``**train`` are further ``TrainConfig`` fields; the tags record ``batch_size`` and ``max_iters``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not epochs > 0:
        raise ValueError(f"image_spec: epochs must be a positive number, got {epochs!r}")
    if int(evals_per_epoch) < 1:
        raise ValueError(f"image_spec: evals_per_epoch must be at least 1, got {evals_per_epoch!r}")
    data = {"kind": "cifar10", "source": source, "batch_size": int(batch_size), "seed": int(data_seed)}
    if eval_batch_size is not None:
        data["eval_batch_size"] = int(eval_batch_size)
    if image_size is not None:
        data["image_size"] = int(image_size)
    iters = build_task(data).iters_for_epochs(epochs)
    if "betas" in train:
        train["betas"] = [float(b) for b in train["betas"]]
    every = max(1, int(iters // (epochs * evals_per_epoch)))
    train = {"optimizer": optimizer, "lr": float(lr), "max_iters": iters, "eval_interval": every, **train}
    model = {"kind": "resnet18", "width": int(width), "blocks": [int(b) for b in blocks]}
    tags = {"batch_size": int(batch_size), "max_iters": iters, **(tags or {})}
    return {"model": model, "data": data, "train": train, "tags": tags}


def run_name(optimizer: str, lr: float, fmt: str = "{optimizer}_lr{lr:.1e}") -> str:
    """A file-system friendly run name such as ``adam_lr6.0e-04``."""
    return fmt.format(optimizer=optimizer, lr=lr).replace("+", "")


def grad_accum_steps(global_batch: int, batch_size: int, nproc_per_node: int = 1) -> int:
    """``A`` with ``nproc_per_node · A · batch_size = global_batch`` (the paper's 480 = 12 · 40 on 1 GPU)."""
    global_batch, batch_size, nproc = int(global_batch), int(batch_size), int(nproc_per_node)
    if global_batch < 1 or batch_size < 1 or nproc < 1:
        got = (global_batch, batch_size, nproc)
        raise ValueError(f"global_batch, batch_size, nproc_per_node must be >= 1, got {got}")
    accum, rest = divmod(global_batch, batch_size * nproc)
    if rest or accum < 1:
        fit = max((b for b in range(1, batch_size + 1) if global_batch % (b * nproc) == 0), default=0)
        hint = f"batch_size {fit} works on {nproc} device(s)" if fit else f"{nproc} devices do not divide it"
        what = f"batch_size x nproc_per_node = {batch_size} x {nproc} = {batch_size * nproc}"
        raise ValueError(f"global_batch={global_batch} is not a multiple of {what}; {hint}")
    return accum


def launch_command(
    spec: Mapping | str | os.PathLike,
    nproc_per_node: int,
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    master_addr: str | None = None,
    master_port: int = 29500,
    python: str | None = None,
) -> list[str]:
    """``torchrun --standalone --nproc_per_node=N -m adamlinf.train --spec F`` for a spec or spec file.

    Several nodes need a c10d ``rdzv_endpoint`` (``host:port``) or ``master_addr``.
    """
    nproc, nnodes, node_rank = int(nproc_per_node), int(nnodes), int(node_rank)
    if nproc < 1 or nnodes < 1:
        raise ValueError(f"nproc_per_node and nnodes must be >= 1, got {nproc_per_node}, {nnodes}")
    if not 0 <= node_rank < nnodes:
        raise ValueError(f"node_rank must be in [0, nnodes={nnodes}), got {node_rank}")
    spec_path = str(spec)
    if isinstance(spec, Mapping):
        spec_path = f"{spec.get('train', {}).get('out_dir', '<out_dir>')}/spec.json"
    head = [python, "-m", "torch.distributed.run"] if python else ["torchrun"]
    nodes = [f"--nnodes={nnodes}", f"--node_rank={node_rank}"]
    if nnodes == 1:
        where = ["--standalone"]
    elif rdzv_endpoint:
        where = [*nodes, "--rdzv_backend=c10d", f"--rdzv_endpoint={rdzv_endpoint}"]
    elif master_addr:
        where = [*nodes, f"--master_addr={master_addr}", f"--master_port={int(master_port)}"]
    else:
        raise ValueError("several nodes need rdzv_endpoint='host:port' or master_addr='host'")
    return head + where + [f"--nproc_per_node={nproc}", "-m", "adamlinf.train", "--spec", spec_path]


def run(spec: Mapping, nproc_per_node: int = 1, **launch: Any) -> pd.DataFrame:
    """Train a spec (``train.out_dir`` set) here, or with DDP under :func:`launch_command` (``**launch``)."""
    if nproc_per_node == 1 and int(launch.get("nnodes", 1)) == 1:
        model, task, cfg, full = _train.build_run(spec)
        return _train.train(model, task, cfg, spec=full)
    out = _train.out_dir_of(_train.TrainConfig(**spec["train"]))
    cmd = launch_command(out / "spec.json", nproc_per_node, python=sys.executable, **launch)
    build_task(dict(spec["data"]))  # fail fast, with the data-preparation message, if the data is missing
    write_text_atomic(out / "spec.json", json.dumps(spec, indent=2))
    env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // int(nproc_per_node))), **os.environ}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with code {proc.returncode}: {' '.join(cmd)}")
    return read_metrics(out)


def _trainer_spec(spec: Mapping, out_dir: Path | str = ".", progress: bool | None = None) -> dict:
    """The spec handed to the trainer: without ``tags``, ``out_dir`` set (and ``progress``)."""
    out = {k: copy.deepcopy(v) for k, v in spec.items() if k != "tags"}
    out["train"]["out_dir"] = str(out_dir)
    if progress is not None:
        out["train"]["progress"] = progress
    return out


def spec_key(spec: Mapping) -> str:
    """12 hex digits of the SHA-256 of a spec's result-relevant part (``TrainConfig`` defaults filled in)."""
    full = _trainer_spec(spec)
    full["train"] = _train.TrainConfig(**full["train"]).to_dict()
    text = json.dumps(_train.result_spec(full), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The trainer's ``<run_dir>/metrics.csv``."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the run has not finished an iteration (use run_specs)")
    return pd.read_csv(path)


def _read_record(path: Path) -> dict:
    """A spec or completion record, or a ``ValueError`` naming the file and the command that fixes it."""
    fix = f"rm '{path}' and run again (run_specs checks the checkpoints against the spec and resumes)"
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        what = "empty" if path.stat().st_size == 0 else f"damaged ({exc})"
        raise ValueError(f"{path} is {what} (a full disk or a kill during its write?); {fix}") from None
    needs_spec = path.name == COMPLETE_FILE
    if not isinstance(record, dict) or (needs_spec and not isinstance(record.get("spec"), dict)):
        raise ValueError(f"{path} is not a record of run_specs; {fix}")
    return record


def _finished(run_dir: Path, spec: Mapping) -> bool:
    """Whether the run's metrics reach ``max_iters`` (the trainer's final evaluation row)."""
    try:
        last = read_metrics(run_dir)["iter"].max()
    except (FileNotFoundError, KeyError, pd.errors.EmptyDataError):
        return False
    return bool(last >= _train.TrainConfig(**_trainer_spec(spec)["train"]).max_iters)


def is_complete(out_dir: str | Path, spec: Mapping | None = None) -> bool:
    """Whether ``out_dir`` holds a completion record (of ``spec``'s key) and metrics up to ``max_iters``."""
    marker = Path(out_dir) / COMPLETE_FILE
    if not marker.exists():
        return False
    saved = _read_record(marker)["spec"]
    if spec is not None and spec_key(saved) != spec_key(spec):
        return False
    return _finished(Path(out_dir), saved)


def _prepare_dir(name: str, spec: Mapping, out: Path, on_change: str, verbose: bool) -> bool:
    """True if the run must be trained; moves a folder of another spec aside (never deletes it)."""
    key, old = spec_key(spec), None
    for record_name in (COMPLETE_FILE, SPEC_FILE):  # the key of the spec the folder was started with
        if (out / record_name).exists():
            record = _read_record(out / record_name)
            old = spec_key(record["spec"] if record_name == COMPLETE_FILE else record)
            break
    if old is not None and old != key:  # a folder without a record is left to the trainer's own check
        if on_change == "error":
            msg = f"run {name!r} in {out} was made with a different spec (key {old} vs {key})"
            raise ValueError(f"{msg}; move it or pass on_change='keep'")
        aside, n = out.with_name(f"{out.name}@{old}"), 1
        while aside.exists():
            aside, n = out.with_name(f"{out.name}@{old}-{n}"), n + 1
        out.rename(aside)
        if verbose:
            print(f"[runs] spec of run {name!r} changed: the old run is kept in {aside.name}/", flush=True)
    kept = out.with_name(f"{out.name}@{key}")
    if not out.exists() and kept.exists():
        kept.rename(out)
        if verbose:
            print(f"[runs] run {name!r}: reusing {kept.name}/ (made with this spec)", flush=True)
    return not is_complete(out, spec)


def _run_one(
    name: str, spec: dict, out_dir: str, nproc_per_node: int, threads: int | None, progress: bool | None
) -> tuple[str, float]:
    """Train one spec and mark it complete when it reached ``max_iters`` (also a pool worker)."""
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out_dir)
    write_text_atomic(out / SPEC_FILE, json.dumps(spec, indent=2, sort_keys=True, default=str) + "\n")
    t0 = time.perf_counter()
    run(_trainer_spec(spec, out, progress), nproc_per_node=nproc_per_node)
    wall = time.perf_counter() - t0
    if _finished(out, spec):
        record = {"name": name, "spec": spec, "key": spec_key(spec), "wall_time_s": round(wall, 3)}
        record |= {"nproc_per_node": nproc_per_node, "torch_threads": torch.get_num_threads()}
        text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
        write_text_atomic(out / COMPLETE_FILE, text)
    return name, wall


def run_specs(
    specs: Mapping[str, Mapping],
    root: str | Path,
    nproc_per_node: int = 1,
    *,
    workers: int = 1,
    threads_per_worker: int | None = None,
    on_change: str = "keep",
    progress: bool | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Train every ``specs[name]`` in ``root/<name>/``; the trainer's metrics (lr as ``lr_t``) with the tags.

    ``workers`` spawned processes (on GPUs keep 1) of ``threads_per_worker`` threads, or one run on
    ``nproc_per_node`` DDP processes. A folder of another spec is moved aside or (``"error"``) refused.
    """
    if on_change not in ("keep", "error"):
        raise ValueError(f"on_change must be 'keep' or 'error', got {on_change!r}")
    if int(nproc_per_node) < 1 or int(workers) < 1:
        raise ValueError(f"nproc_per_node and workers must be >= 1, got {nproc_per_node}, {workers}")
    if workers > 1 and nproc_per_node > 1:
        raise ValueError("use either workers > 1 (several runs at once) or nproc_per_node > 1, not both")
    root = Path(root)
    for name, spec in specs.items():
        if not isinstance(spec, Mapping) or not {*_PARTS} <= set(spec) <= {*_PARTS, "tags"}:
            raise ValueError(f"spec {name!r} must be a dict of 'model', 'data', 'train' (and 'tags')")
        if "optimizer" not in spec["train"] or "lr" not in spec["train"]:
            raise ValueError(f"spec {name!r}: spec['train'] needs 'optimizer' and 'lr'")
        if not name or os.sep in name or name.startswith(".") or "@" in name:
            raise ValueError(f"bad run name {name!r}")
    with contextlib.ExitStack() as locks:  # one trainer per run folder; sorted, so two grids never deadlock
        for name in sorted(specs):
            locks.enter_context(exclusive(root / f".{name}.lock", f"run_specs of {root / name}"))
        todo = [n for n, s in specs.items() if _prepare_dir(n, s, root / n, on_change, verbose)]
        if verbose:
            print(f"[runs] {len(todo)} to train, {len(specs) - len(todo)} complete in {root}", flush=True)
        _train_all(specs, todo, root, int(nproc_per_node), workers, threads_per_worker, progress, verbose)
    frames = []
    for name, spec in specs.items():
        df = read_metrics(root / name).rename(columns={"lr": "lr_t"})
        df.insert(0, "run", name)
        df.insert(1, "optimizer", spec["train"]["optimizer"])
        df.insert(2, "lr", float(spec["train"]["lr"]))
        frames.append(df.assign(**spec.get("tags") or {}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _train_all(specs, todo, root, nproc_per_node, workers, threads_per_worker, progress, verbose) -> None:
    """Train the runs ``todo`` one after another or in ``workers`` spawned processes."""
    if workers == 1 or not todo:
        for name in todo:
            args = (dict(specs[name]), str(root / name), nproc_per_node, threads_per_worker, progress)
            _, wall = _run_one(name, *args)
            if verbose:
                print(f"[runs] {name}: {wall:.1f} s", flush=True)
        return
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
    show = False if progress is None else progress
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, n, dict(specs[n]), str(root / n), 1, threads, show) for n in todo]
        for future in futures:
            name, wall = future.result()
            if verbose:
                print(f"[runs] {name}: {wall:.1f} s (worker)", flush=True)
