"""Paper-scale numbers on one GPU: GPT-2 124M with Adam and rotated Adam, and the cost of its
Hessian-vector products (Section 4.2: Figure 1 and Table 2 of {cite}`xie2025adam`).

One short script for a machine with a GPU (designed for one H200 and a few minutes), using the
library only:

* **Training throughput** (``adamlinf.train.train`` with an ``LMTask``): GPT-2 124M
  (``GPTConfig.gpt2_124m``: 12 layers, width 768, vocabulary 50304, context 1024), bf16 autocast,
  fused ("flash") attention, a micro-batch of ``--batch-size`` sequences, β = (0.9, 0.95), clip 1.0,
  for ``adam`` and ``rotated_adam`` (the App. D.1 permute-and-rotate map over all parameters,
  k = 2). Per optimizer: median step time, tokens/s, peak GPU memory
  (``torch.cuda.max_memory_allocated``), model FLOPs utilisation (``GPT.estimate_mfu``: 6N + 12·L·C·T
  FLOPs per token against ``--peak-tflops``, by default 989 TFLOP/s, the H100/H200 SXM datasheet's
  dense bf16 rate; also against the bf16 matrix-product rate measured in the same run), the
  rotated/Adam step-time ratio, the time to build the rotation, and the GPU-hours a paper-size run
  (480 sequences × 100k steps) would take at these rates.
* **Hessian-vector products** (``adamlinf.hessian.hvp``) of the 124M model at a fixed batch of
  ``--hvp-batch`` × 1024 tokens, with the explicit ("math") attention, in float32 and under bf16
  autocast: gradient time, HVP time by double backward (uncached: forward + double backward per
  product; cached: one backward through a stored first-order graph) and by forward-over-reverse,
  their agreement, peak memory; then Algorithm 4's Cauchy estimator (``l11_norm``) with a few probes,
  the rotated operator RᵀHR, and the seconds per probe that Table 2 at the paper's scale implies
  (640 batches × 12 sequences per HVP).
* Optionally (``--compile``) Adam with ``torch.compile``.

**The data are synthetic**: i.i.d. uniform token ids of GPT-2's 50257-token vocabulary, written as a
uint16 memmap data set in a temporary data root (the machine has no OpenWebText). Step time does not
depend on the text, so tokens/s, memory and MFU are the paper's; the losses are not (≈ ln 50257).

``--publish`` also copies the JSON and the Markdown table to ``published/gpu_paper_scale.json`` (``.md``),
the measurement ``adamlinf.studies.costs`` prices the paper-scale runs with; it refuses a ``--smoke``
or CPU run, so a CPU check never passes for a GPU measurement. The JSON records the date (UTC), the
hardware, and the versions of torch, CUDA, Python and the code (git commit).

Every part runs under a global time guard (``--budget-s``): a part that would not fit is skipped, one
that runs past the budget is interrupted (SIGALRM), and the results so far are written after every
part to ``OUT/gpu_paper_scale.json`` (and a Markdown table to ``OUT/gpu_paper_scale.md``, also
printed). ``--smoke`` runs every code path with a tiny GPT on the CPU in seconds (the test does that).

    PYTHONPATH=src python benchmarks/gpu_paper_scale.py --out OUT [--device cuda] [--steps 150] [--publish]
    python benchmarks/gpu_paper_scale.py --out OUT --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch

try:  # run from a checkout without installing: fall back on <repo>/src
    import adamlinf  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_timing.py, also when imported by path

from _timing import sync as _sync  # noqa: E402
from _timing import timed as _timed
from adamlinf import hessian  # noqa: E402
from adamlinf.data import text  # noqa: E402
from adamlinf.data.text import LMTask  # noqa: E402
from adamlinf.models.gpt import GPT, GPTConfig  # noqa: E402
from adamlinf.results import PUBLISHED_ROOT, git_commit  # noqa: E402
from adamlinf.rotations import PermuteRotate, RotatedParametrization  # noqa: E402
from adamlinf.train import TrainConfig, train  # noqa: E402

DATASET = "synthetic_gpt2"
GPT2_VOCAB = 50257  # token ids drawn below this (the model pads to 50304)
PAPER_GLOBAL_BATCH = 480  # sequences per optimizer step in the paper's GPT-2 runs
PAPER_STEPS = 100_000
PAPER_TABLE2_SEQUENCES = 640 * 12  # one HVP of the paper-scale Table 2 (params/gpt2_table2.yaml)
PAPER_TABLE2_HVPS = 50 + 50  # Cauchy probes + Lanczos iterations per checkpoint
SMOKE_MODEL = dict(vocab_size=256, block_size=64, n_layer=2, n_head=2, n_embd=64)
JSON_NAME, MD_NAME = "gpu_paper_scale.json", "gpu_paper_scale.md"

# every field the test requires to be a finite positive number (dotted paths into the JSON)
_TRAIN_FIELDS = (
    "step_s",
    "iter_time_s",
    "tokens_per_s",
    "peak_memory_gb",
    "mfu",
    "mfu_vs_measured_matmul",
    "steps_measured",
    "first_loss",
    "last_loss",
    "wall_s",
)
_HVP_FIELDS = (
    "grad_s",
    "double_backward_uncached_s",
    "double_backward_cached_first_s",
    "double_backward_cached_s",
    "forward_s",
    "best_uncached_s",
    "uncached_over_grad",
    "cached_over_grad",
    "forward_over_grad",
    "peak_memory_gb",
    "paper_seconds_per_probe",
)
REQUIRED_FIELDS = (
    ["matmul.tflops"]
    + [f"train.{o}.{f}" for o in ("adam", "rotated_adam") for f in _TRAIN_FIELDS]
    + [
        "rotation.build_s",
        "rotation.push_s",
        "rotation.pull_grad_s",
        "rotation.n",
        "comparison.rotated_over_adam_step_time",
        "comparison.paper_run_gpu_hours.adam",
        "comparison.paper_run_gpu_hours.rotated_adam",
    ]
    + [f"hvp.{p}.{f}" for p in ("float32", "bfloat16") for f in _HVP_FIELDS]
    + [
        "cauchy.seconds_per_probe",
        "cauchy.matvec_s",
        "cauchy.rotated_matvec_s",
        "cauchy.rotation_build_s",
        "cauchy.l11_per_dim",
        "cauchy.paper_table2_hours_per_checkpoint",
    ]
)
PARTS = (
    "matmul",
    "train_adam",
    "rotation",
    "train_rotated_adam",
    "hvp_float32",
    "cauchy",
    "hvp_bfloat16",
    "train_adam_compiled",
)


class BudgetExceeded(Exception):
    """Raised by the SIGALRM watchdog when the global time budget is spent."""


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def _reset_peak(device) -> None:
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device) -> float:
    """Peak GPU memory allocated since the last reset (GiB); on CPU the process's max RSS."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 2**20


def _clean(obj):
    """JSON-safe copy: non-finite floats become None, numpy scalars Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _commit() -> str | None:
    try:
        return git_commit()
    except Exception:  # no git on the machine, or not a checkout
        return None


def publish(results: dict, out: Path, dest: Path | None = None) -> Path:
    """Copy ``out/gpu_paper_scale.json`` and ``.md`` to ``dest`` (default ``published/``).

    Refuses (``ValueError``) a smoke run or one not on a CUDA device: only a GPU measurement may be
    published, since ``adamlinf.studies.costs`` prices the book's paper-scale runs with it.
    """
    device = str(_get(results, "hardware.device") or "")
    if results.get("smoke") or not device.startswith("cuda"):
        raise ValueError(
            f"not publishing a {'smoke ' if results.get('smoke') else ''}run on {device!r}: "
            "only a full run on a CUDA device is a GPU measurement"
        )
    if _get(results, "train.adam.tokens_per_s") is None:
        raise ValueError("not publishing: the train_adam part has no result")
    dest = Path(dest) if dest is not None else PUBLISHED_ROOT
    dest.mkdir(parents=True, exist_ok=True)
    for name in (JSON_NAME, MD_NAME):
        shutil.copyfile(out / name, dest / name)
    return dest / JSON_NAME


def _get(d: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def make_model(args, meta: bool = False) -> GPT:
    """The benchmarked GPT (124M, or the smoke size), initialised under ``args.seed`` directly on
    ``args.device`` (a 124M init on the CPU takes seconds); on the ``meta`` device (no memory, no
    init cost) for counting parameters. Step times do not depend on the initial values."""
    cfg = GPTConfig(**SMOKE_MODEL) if args.smoke else GPTConfig.gpt2_124m(block_size=args.block_size)
    device = torch.device("meta" if meta else args.device)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(args.seed)
    with device:
        return GPT(cfg)


def write_synthetic_data(root: Path, vocab: int, n_train: int, n_val: int, seed: int) -> Path:
    """A data set ``DATASET`` under ``root`` in the layout ``LMTask`` reads (``train.bin``,
    ``val.bin``: uint16 memmaps written with ``adamlinf.data.text.write_tokens``; ``meta.json``):
    i.i.d. uniform token ids in ``[0, vocab)``."""
    rng = np.random.default_rng(seed)
    out = text.data_dir(DATASET, root)
    text.write_tokens(out / "train.bin", rng.integers(0, vocab, n_train, dtype=np.uint16))
    text.write_tokens(out / "val.bin", rng.integers(0, vocab, n_val, dtype=np.uint16))
    (out / "meta.json").write_text(
        json.dumps(
            {
                "vocab_size": vocab,
                "tokenizer": "synthetic",
                "train_tokens": n_train,
                "val_tokens": n_val,
                "source": f"i.i.d. uniform token ids in [0, {vocab}), numpy seed {seed} (synthetic: "
                "throughput does not depend on the text)",
            },
            indent=2,
        )
    )
    return out


# ------------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.t0 = time.perf_counter()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_paper_scale_"))
        self.cfg = make_model(args, meta=True).config
        self.results: dict = {
            "script": "benchmarks/gpu_paper_scale.py",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "smoke": bool(args.smoke),
            "data": (
                "SYNTHETIC: i.i.d. uniform token ids of GPT-2's vocabulary in a uint16 memmap "
                "(no OpenWebText on the machine); step time, memory and MFU do not depend on "
                "the text, the losses do (≈ ln(vocab))"
            ),
            "hardware": self._hardware(),
            "settings": self._settings(),
            "parts": {},
        }

    # -- bookkeeping ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.args.budget_s - self.elapsed()

    def _hardware(self) -> dict:
        hw = {
            "device": str(self.device),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "git_commit": _commit(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "peak_memory_kind": (
                "torch.cuda.max_memory_allocated per part"
                if self.device.type == "cuda"
                else "process max RSS (CPU)"
            ),
        }
        if self.device.type == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            hw.update(
                device_name=torch.cuda.get_device_name(self.device),
                total_memory_gb=props.total_memory / 2**30,
                multiprocessors=props.multi_processor_count,
                capability=f"{props.major}.{props.minor}",
            )
        else:
            hw.update(device_name=f"CPU ({platform.processor() or platform.machine()})")
        return hw

    def _settings(self) -> dict:
        a = self.args
        model = make_model(a, meta=True)
        return {
            "model": dataclasses.asdict(self.cfg),
            "n_params": model.num_params(),
            "n_params_total": sum(p.numel() for p in model.parameters()),
            "flops_per_token": model.flops_per_token(),
            "batch_size": a.batch_size,
            "block_size": self.cfg.block_size,
            "grad_accum": a.grad_accum,
            "dtype": a.dtype,
            "attention_train": "flash",
            "tokens_per_step": a.batch_size * self.cfg.block_size * a.grad_accum,
            "steps": a.steps,
            "warmup_steps": a.warmup,
            "lr": 6e-4,
            "schedule": "constant",
            "betas": [0.9, 0.95],
            "eps": 1e-8,
            "grad_clip": 1.0,
            "rotation_k": 2,
            "rotation_seed": 0,
            "optimizer_form": "torch Adam (bias correction, eps outside)",
            "peak_tflops_assumed": a.peak_tflops,
            "peak_note": "MFU against the H100/H200 SXM datasheet dense bf16 rate unless "
            "--peak-tflops says otherwise; mfu_vs_measured_matmul uses the "
            "bf16 matrix-product rate measured in this run",
            "hvp_batch": a.hvp_batch,
            "hvp_dtypes": a.hvp_dtypes,
            "attention_hvp": "math",
            "probes": a.probes,
            "reps": a.reps,
            "budget_s": a.budget_s,
            "compile": a.compile,
            "seed": a.seed,
        }

    def save(self) -> None:
        self.results["total_s"] = self.elapsed()
        tmp = self.out / (JSON_NAME + ".tmp")
        tmp.write_text(json.dumps(_clean(self.results), indent=2))
        os.replace(tmp, self.out / JSON_NAME)
        (self.out / MD_NAME).write_text(markdown(self.results))

    def part(self, name: str, fn, min_s: float) -> None:
        """Run part ``name`` if at least ``min_s`` seconds of the budget are left; record its
        status (ok, skipped, error, timed_out) and duration, then save the results."""
        if self.args.parts and name not in self.args.parts:
            return
        rec = self.results["parts"].setdefault(name, {})
        if self.left() < min_s:
            rec.update(
                status="skipped", reason=f"{self.left():.0f} s of the budget left, part needs ~{min_s:.0f} s"
            )
            print(f"[{self.elapsed():6.1f}s] {name}: skipped ({rec['reason']})", flush=True)
            self.save()
            return
        print(f"[{self.elapsed():6.1f}s] {name} ...", flush=True)
        t = time.perf_counter()
        try:
            fn()
            rec["status"] = "ok"
        except BudgetExceeded:
            rec.update(status="timed_out", reason=f"global budget of {self.args.budget_s} s spent")
        except Exception as exc:  # record and go on: one failing part must not lose the others
            rec.update(
                status="error",
                error=f"{type(exc).__name__}: {exc}"[:2000],
                traceback=traceback.format_exc()[-4000:],
            )
            print(rec["traceback"], file=sys.stderr, flush=True)
        finally:
            rec["seconds"] = time.perf_counter() - t
            _reset_peak(self.device)
        print(f"[{self.elapsed():6.1f}s] {name}: {rec['status']} in {rec['seconds']:.1f} s", flush=True)
        self.save()

    # -- parts ---------------------------------------------------------------------------------
    def matmul(self) -> None:
        """bf16 matrix-product rate (the practical ceiling for MFU)."""
        n = 8192 if self.device.type == "cuda" else 256  # (a CPU only checks the code path)
        a = torch.randn(n, n, device=self.device, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=self.device, dtype=torch.bfloat16)
        ts = _timed(lambda: a @ b, self.device, reps=10, warmup=3)
        self.results["matmul"] = {
            "n": n,
            "dtype": "bfloat16",
            "median_s": float(np.median(ts)),
            "tflops": 2 * n**3 / float(np.median(ts)) / 1e12,
        }

    def data(self) -> None:
        vocab = SMOKE_MODEL["vocab_size"] if self.args.smoke else GPT2_VOCAB
        n_train, n_val = (50_000, 10_000) if self.args.smoke else (8_000_000, 1_000_000)
        d = write_synthetic_data(self.tmp, vocab, n_train, n_val, self.args.seed)
        self.results["settings"]["data_dir"] = str(d)

    def task(self, batch_size: int) -> LMTask:
        return LMTask(
            dataset=DATASET,
            block_size=self.cfg.block_size,
            batch_size=batch_size,
            seed=self.args.seed,
            eval_iters=1,
            root=str(self.tmp),
        )

    def train_run(self, name: str, optimizer: str, steps: int, compile: bool = False) -> dict:
        """``adamlinf.train.train`` for ``warmup + steps`` iterations; step statistics over the
        last ``steps`` (per-iteration wall time from the metrics' ``time`` column, i.e. everything
        the loop does, and the loop's own ``iter_time``)."""
        a = self.args
        model = make_model(a)
        task = self.task(a.batch_size)
        cfg = TrainConfig(
            out_dir=str(self.tmp / name),
            optimizer=optimizer,
            lr=6e-4,
            schedule="constant",
            betas=(0.9, 0.95),
            eps=1e-8,
            grad_clip=1.0,
            rotation_k=2,
            rotation_seed=0,
            max_iters=a.warmup + steps,
            grad_accum=a.grad_accum,
            batch_size=a.batch_size,
            eval_interval=0,
            log_interval=1,
            device=str(self.device),
            dtype=a.dtype,
            compile=compile,
            progress=False,
            resume=False,
            seed=a.seed,
        )
        _reset_peak(self.device)
        t = time.perf_counter()
        df = train(model, task, cfg)
        _sync(self.device)
        wall = time.perf_counter() - t
        peak = _peak_gb(self.device)
        steps_df = df[df["iter_time"].notna()].sort_values("iter")
        times = steps_df["time"].to_numpy()
        its = steps_df["iter"].to_numpy()
        diffs = np.diff(times)[its[1:] > a.warmup] if len(times) > 1 else np.array([])
        iter_time = steps_df.loc[steps_df["iter"] >= a.warmup, "iter_time"].to_numpy()
        step_s = float(np.median(diffs)) if diffs.size else float(np.median(iter_time))
        tokens = a.batch_size * self.cfg.block_size * a.grad_accum
        losses = steps_df["train_loss"].to_numpy()
        matmul = _get(self.results, "matmul.tflops")
        res = {
            "optimizer": optimizer,
            "compile": compile,
            "steps_measured": int(iter_time.size),
            "step_s": step_s,
            "step_s_p10": float(np.percentile(diffs, 10)) if diffs.size else None,
            "step_s_p90": float(np.percentile(diffs, 90)) if diffs.size else None,
            "iter_time_s": float(np.median(iter_time)),
            "tokens_per_step": tokens,
            "tokens_per_s": tokens / step_s,
            "tokens_per_s_mean": tokens * diffs.size / float(diffs.sum()) if diffs.size else None,
            "mfu": model.estimate_mfu(tokens, step_s, peak_flops=a.peak_tflops * 1e12),
            "mfu_vs_measured_matmul": (
                model.estimate_mfu(tokens, step_s, peak_flops=matmul * 1e12) if matmul else None
            ),
            "peak_memory_gb": peak,
            "first_loss": float(losses[0]),
            "last_loss": float(losses[-1]),
            "first_iter_s": float(steps_df["iter_time"].iloc[0]),
            "wall_s": wall,
        }
        pd_csv = self.out / f"train_{name}_metrics.csv"
        df.to_csv(pd_csv, index=False)
        del model, df
        shutil.rmtree(self.tmp / name, ignore_errors=True)  # the checkpoint (GBs at 124M)
        return res

    def train_adam(self) -> None:
        self.results.setdefault("train", {})["adam"] = self.train_run("adam", "adam", self.args.steps)

    def train_rotated_adam(self) -> None:
        # fit the step count into what is left (rotated steps cost up to ~4x Adam's, say)
        steps = self.args.steps
        adam = _get(self.results, "train.adam.step_s")
        reserve = 0 if self.args.smoke else 150  # for the HVP parts
        if adam and not self.args.smoke:
            fit = int((self.left() - reserve - 40) / (4 * adam)) - self.args.warmup
            if fit < steps:
                steps = max(min(20, steps), fit)
                self.results["parts"]["train_rotated_adam"]["steps_reduced_to"] = steps
        res = self.train_run("rotated_adam", "rotated_adam", steps)
        self.results.setdefault("train", {})["rotated_adam"] = res
        self._compare()

    def _compare(self) -> None:
        adam, rot = _get(self.results, "train.adam"), _get(self.results, "train.rotated_adam")
        if not adam or not rot:
            return
        micro = self.args.batch_size * self.args.grad_accum
        accum = math.ceil(PAPER_GLOBAL_BATCH / micro)
        # one paper step = `accum` of our steps' forward/backward; the rotation (push/pull) and
        # the optimizer run once per paper step, so rotated Adam's extra cost is paid once
        adam_step = accum * adam["step_s"]
        rot_step = adam_step + (rot["step_s"] - adam["step_s"])
        self.results["comparison"] = {
            "rotated_over_adam_step_time": rot["step_s"] / adam["step_s"],
            "rotated_minus_adam_step_s": rot["step_s"] - adam["step_s"],
            "paper_accum_of_our_steps": accum,
            "paper_run_gpu_hours": {
                "adam": PAPER_STEPS * adam_step / 3600,
                "rotated_adam": PAPER_STEPS * rot_step / 3600,
            },
            "paper_run_note": (
                f"{PAPER_STEPS:,} steps of {PAPER_GLOBAL_BATCH} sequences on ONE such "
                f"GPU = {accum} of our measured steps each, rotation once per step; "
                "extrapolated, not run"
            ),
        }

    def rotation(self) -> None:
        """Build the App. D.1 rotation over all parameters of the model on the device (what
        ``train(optimizer="rotated_adam")`` does first), then time ``push`` and ``pull_grad``."""
        model = make_model(self.args)
        _reset_peak(self.device)
        t = time.perf_counter()
        rp = RotatedParametrization(model, k=2, seed=0)
        _sync(self.device)
        build = time.perf_counter() - t
        torch.manual_seed(0)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        push = _timed(rp.push, self.device, reps=self.args.reps)
        pull = _timed(rp.pull_grad, self.device, reps=self.args.reps)
        self.results["rotation"] = {
            "n": rp.n,
            "k": 2,
            "pieces": [list(p) for p in rp.rotation.pieces],
            "build_s": build,
            "push_s": float(np.median(push)),
            "pull_grad_s": float(np.median(pull)),
            "peak_memory_gb": _peak_gb(self.device),
            "note": "build = RotatedParametrization(model, k=2) on the device: CPU randperm of n "
            "indices per stage, Haar mode matrices, w0 = R^T x0",
        }
        del rp, model

    def _hvp_setup(self, dtype: str):
        model = make_model(self.args)
        model.set_attention("math")  # fused attention has no double backward / forward-mode AD
        model.eval()
        batch = tuple(t.to(self.device) for t in self.task(self.args.hvp_batch).batch("val", 0))
        dev_type = self.device.type

        def loss_fn(m, b):
            ctx = (
                torch.autocast(dev_type, dtype=torch.bfloat16)
                if dtype == "bfloat16"
                else contextlib.nullcontext()
            )
            with ctx:
                return m(b[0], b[1])[1].float()

        return model, batch, loss_fn

    def hvp_part(self, dtype: str) -> None:
        """Gradient vs Hessian-vector product of the full model at one fixed batch."""
        reps, dev = self.args.reps, self.device
        model, batch, loss_fn = self._hvp_setup(dtype)
        res = {
            "dtype": dtype,
            "attention": "math",
            "batch_sequences": self.args.hvp_batch,
            "tokens": self.args.hvp_batch * self.cfg.block_size,
            "errors": {},
        }
        self.results.setdefault("hvp", {})[dtype] = res
        h = hessian.hvp(model, loss_fn, [batch], method="double_backward", cache_graph=False)
        res["d"] = h.d
        v = torch.randn(h.d, generator=torch.Generator().manual_seed(1)).to(device=dev, dtype=h.dtype)
        peaks, out = {}, {}

        def measure(key, fn, **kw):
            try:
                _reset_peak(dev)
                ts = _timed(fn, dev, reps=reps, **kw)
                res[key] = float(np.median(ts))
                peaks[key] = _peak_gb(dev)
            except BudgetExceeded:
                raise
            except Exception as exc:  # e.g. out of memory, or a path without support
                res["errors"][key] = f"{type(exc).__name__}: {exc}"[:1000]
                _reset_peak(dev)

        measure("grad_s", h.gradient)
        measure("double_backward_uncached_s", lambda: out.__setitem__("db", h.matvec(v)))
        hc = hessian.hvp(model, loss_fn, [batch], method="double_backward", cache_graph=True)
        try:  # first product builds and keeps the first-order graph
            _reset_peak(dev)
            res["double_backward_cached_first_s"] = _timed(lambda: hc.matvec(v), dev, 1, warmup=0)[0]
            first_peak = _peak_gb(dev)  # the first product builds the graph: the peak is here
            measure("double_backward_cached_s", lambda: hc.matvec(v), warmup=0)
            peaks["double_backward_cached_s"] = max(peaks.get("double_backward_cached_s", 0.0), first_peak)
        except BudgetExceeded:
            raise
        except Exception as exc:
            res["errors"]["double_backward_cached_s"] = f"{type(exc).__name__}: {exc}"[:1000]
        hc.clear_cache()
        hc = None  # free the cached graph (the lambdas above hold the name)
        hf = hessian.hvp(model, loss_fn, [batch], method="forward")
        measure("forward_s", lambda: out.__setitem__("fw", hf.matvec(v)))
        hf = None
        if "db" in out and "fw" in out:
            db, fw = out["db"].double(), out["fw"].double()
            res["forward_vs_double_backward_rel_diff"] = float((db - fw).norm() / db.norm())
        res["peak_memory_gb_by_method"] = peaks
        res["peak_memory_gb"] = max(peaks.values()) if peaks else None
        uncached = {k: res[k] for k in ("double_backward_uncached_s", "forward_s") if k in res}
        if uncached:
            best = min(uncached, key=uncached.get)
            res["best_uncached_method"] = best.replace("_uncached_s", "").replace("_s", "")
            res["best_uncached_s"] = uncached[best]
            # Table 2 at paper scale: one HVP loops over 640 batches x 12 sequences (no cached graph)
            res["paper_seconds_per_probe"] = uncached[best] / self.args.hvp_batch * PAPER_TABLE2_SEQUENCES
        if "grad_s" in res:
            for key, name in (
                ("double_backward_uncached_s", "uncached_over_grad"),
                ("double_backward_cached_s", "cached_over_grad"),
                ("forward_s", "forward_over_grad"),
            ):
                if key in res:
                    res[name] = res[key] / res["grad_s"]
        if not res["errors"]:
            del res["errors"]
        model = h = out = None

    def cauchy(self) -> None:
        """Algorithm 4 with ``--probes`` Cauchy probes on the cached double-backward HVP (float32),
        and the rotated operator R^T H R of Table 2's rotated-Adam row."""
        dev = self.device
        model, batch, loss_fn = self._hvp_setup("float32")
        h = hessian.hvp(model, loss_fn, [batch], method="double_backward", cache_graph=True)
        _reset_peak(dev)
        est = hessian.l11_norm(
            h, n_probes=self.args.probes, seed=0, variant="iqr", partition=None, progress=False
        )
        peak = _peak_gb(dev)
        v = hessian.cauchy_probe(h.d, 0, 0, dtype=h.dtype, device=dev)
        matvec = _timed(lambda: h.matvec(v), dev, reps=self.args.reps)
        t = time.perf_counter()
        rot = PermuteRotate(h.d, k=2, seed=0, dtype=h.dtype, device=dev)
        _sync(dev)
        build = time.perf_counter() - t
        rh = hessian.rotated(h, rot)
        rmatvec = _timed(lambda: rh.matvec(v), dev, reps=self.args.reps)
        hvp32 = _get(self.results, "hvp.float32.paper_seconds_per_probe")
        res = {
            "method": "double_backward (cached graph, one batch)",
            "variant": "iqr",
            "n_probes": est.n_probes,
            "l11_seconds": est.seconds,
            "seconds_per_probe": est.seconds / est.n_probes,
            "l11_per_dim": est.per_dim,
            "l11_note": "at a random initialisation on synthetic data "
            "(exercises the estimator; not a paper value)",
            "matvec_s": float(np.median(matvec)),
            "rotated_matvec_s": float(np.median(rmatvec)),
            "rotation_build_s": build,
            "peak_memory_gb": peak,
            "storage_gb_for_50_probes": 50 * h.d * 4 / 2**30,
        }
        if hvp32:
            res["paper_table2_hours_per_checkpoint"] = PAPER_TABLE2_HVPS * hvp32 / 3600
            res["paper_table2_note"] = (
                f"{PAPER_TABLE2_HVPS} HVPs (50 probes + 50 Lanczos) over "
                f"{PAPER_TABLE2_SEQUENCES:,} sequences each, float32, "
                "fastest uncached method, one GPU; extrapolated"
            )
        self.results["cauchy"] = res
        h.clear_cache()
        model = h = rh = rot = None

    def train_adam_compiled(self) -> None:
        self.results.setdefault("train", {})["adam_compiled"] = self.train_run(
            "adam_compiled", "adam", self.args.steps, compile=True
        )

    # -- driver --------------------------------------------------------------------------------
    def run(self) -> dict:
        smoke = self.args.smoke
        m = (lambda s: 0.0) if smoke else (lambda s: s)  # minimum seconds a part needs
        self.data()
        self.part("matmul", self.matmul, m(5))
        self.part("train_adam", self.train_adam, m(45))
        self.part("rotation", self.rotation, m(30))
        self.part("train_rotated_adam", self.train_rotated_adam, m(60))
        if "float32" in self.args.hvp_dtypes:
            self.part("hvp_float32", lambda: self.hvp_part("float32"), m(45))
            self.part("cauchy", self.cauchy, m(40))
        if "bfloat16" in self.args.hvp_dtypes:
            self.part("hvp_bfloat16", lambda: self.hvp_part("bfloat16"), m(45))
        if self.args.compile:
            self.part("train_adam_compiled", self.train_adam_compiled, m(120))
        self.save()
        return self.results


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def _fmt(x, unit="") -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        s = f"{x:,.4g}" if abs(x) < 1e5 else f"{x:,.0f}"
    else:
        s = f"{x:,}" if isinstance(x, int) else str(x)
    return f"{s} {unit}".strip()


def markdown(r: dict) -> str:
    hw, st = r["hardware"], r["settings"]
    lines = [
        f"## GPT-2 124M at paper scale on {hw.get('device_name')}" + (" (SMOKE)" if r["smoke"] else ""),
        "",
        f"Measured {r.get('date', '?')}; torch {hw['torch']}, CUDA {hw.get('cuda')}, code "
        f"{(hw.get('git_commit') or '?')[:10]}; model {st['model']}, "
        f"{st['n_params']:,} parameters; micro-batch {st['batch_size']} × {st['block_size']} "
        f"tokens, {st['dtype']} autocast; MFU against {st['peak_tflops_assumed']} TFLOP/s "
        "(dense bf16 datasheet peak). " + r["data"] + ".",
        "",
        "| quantity | value |",
        "| --- | --- |",
    ]
    row = lambda k, v: lines.append(f"| {k} | {v} |")  # noqa: E731
    mm = r.get("matmul")
    if mm:
        row(f"bf16 matmul {mm['n']}³ (measured)", _fmt(mm["tflops"], "TFLOP/s"))
    for name, t in r.get("train", {}).items():
        row(
            f"{name}: median step",
            _fmt(t["step_s"] * 1e3, "ms") + f" (p10–p90 {_fmt(t['step_s_p10'] and t['step_s_p10'] * 1e3)}–"
            f"{_fmt(t['step_s_p90'] and t['step_s_p90'] * 1e3)} ms, {t['steps_measured']} steps)",
        )
        row(f"{name}: tokens/s", _fmt(t["tokens_per_s"]))
        row(
            f"{name}: MFU (vs datasheet / vs measured matmul)",
            f"{_fmt(t['mfu'] * 100)} % / "
            f"{_fmt(t['mfu_vs_measured_matmul'] and t['mfu_vs_measured_matmul'] * 100)} %",
        )
        row(f"{name}: peak memory", _fmt(t["peak_memory_gb"], "GiB"))
        if t.get("compile"):
            row(f"{name}: first iteration (compile)", _fmt(t["first_iter_s"], "s"))
    rot = r.get("rotation")
    if rot:
        row("rotation (App. D.1, k=2): build", _fmt(rot["build_s"], "s") + f" for n = {rot['n']:,}")
        row(
            "rotation: push (R w) / pull_grad (Rᵀ g)",
            f"{_fmt(rot['push_s'] * 1e3, 'ms')} / {_fmt(rot['pull_grad_s'] * 1e3, 'ms')}",
        )
    cmp_ = r.get("comparison")
    if cmp_:
        row("rotated Adam / Adam step time", _fmt(cmp_["rotated_over_adam_step_time"], "×"))
        gh = cmp_["paper_run_gpu_hours"]
        row(
            "paper run (480 seq × 100k steps) on one GPU, extrapolated",
            f"Adam {_fmt(gh['adam'], 'h')}, rotated Adam {_fmt(gh['rotated_adam'], 'h')}",
        )
    for dt, h in r.get("hvp", {}).items():
        row(
            f"HVP {dt} ({h['batch_sequences']}×{st['block_size']} tokens, math attention): gradient",
            _fmt(h.get("grad_s"), "s"),
        )
        row(
            f"HVP {dt}: double backward uncached / cached (first) / forward-over-reverse",
            f"{_fmt(h.get('double_backward_uncached_s'), 's')} / "
            f"{_fmt(h.get('double_backward_cached_s'), 's')} "
            f"({_fmt(h.get('double_backward_cached_first_s'), 's')}) / {_fmt(h.get('forward_s'), 's')}",
        )
        row(
            f"HVP {dt}: ratio to gradient (uncached / cached / forward)",
            f"{_fmt(h.get('uncached_over_grad'))} / {_fmt(h.get('cached_over_grad'))} / "
            f"{_fmt(h.get('forward_over_grad'))}",
        )
        row(f"HVP {dt}: peak memory", _fmt(h.get("peak_memory_gb"), "GiB"))
        row(
            f"HVP {dt}: one paper-scale probe (7,680 sequences, {h.get('best_uncached_method')})",
            _fmt(h.get("paper_seconds_per_probe"), "s"),
        )
        if h.get("errors"):
            row(f"HVP {dt}: errors", "; ".join(f"{k}: {v[:120]}" for k, v in h["errors"].items()))
    c = r.get("cauchy")
    if c:
        row(
            f"Cauchy estimator ({c['n_probes']} probes, cached graph): s/probe",
            _fmt(c["seconds_per_probe"], "s"),
        )
        row(
            "HVP vs rotated RᵀHR matvec (cached)",
            f"{_fmt(c['matvec_s'], 's')} vs {_fmt(c['rotated_matvec_s'], 's')}",
        )
        if c.get("paper_table2_hours_per_checkpoint"):
            row(
                "Table 2 at paper scale, per checkpoint (100 HVPs), extrapolated",
                _fmt(c["paper_table2_hours_per_checkpoint"], "GPU-h"),
            )
    bad = {k: v["status"] for k, v in r["parts"].items() if v.get("status") != "ok"}
    if bad:
        row("parts not completed", ", ".join(f"{k}: {v}" for k, v in bad.items()))
    row("total wall time", _fmt(r.get("total_s"), "s"))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="directory for gpu_paper_scale.json/.md and CSVs")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny GPT (2 layers, width 64, context 64, vocab 256) on the CPU, seconds",
    )
    p.add_argument("--device", default=None, help="default: cuda if available (cpu with --smoke)")
    p.add_argument("--steps", type=int, default=None, help="measured steps per optimizer (150; smoke 5)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured first steps (10; smoke 2)")
    p.add_argument("--batch-size", type=int, default=None, help="micro-batch sequences (16; smoke 4)")
    p.add_argument("--block-size", type=int, default=1024, help="context (paper: 1024)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32", "float16"))
    p.add_argument("--hvp-batch", type=int, default=None, help="HVP batch sequences (8; smoke 2)")
    p.add_argument(
        "--hvp-dtypes", default="float32,bfloat16", help="comma list of float32, bfloat16 (bf16 = autocast)"
    )
    p.add_argument("--probes", type=int, default=None, help="Cauchy probes timed (4; smoke 3)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per timing (3)")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="peak for MFU (default 989: H100/H200 SXM dense bf16 datasheet)",
    )
    p.add_argument(
        "--budget-s", type=float, default=None, help="global time guard in seconds (390; smoke 120)"
    )
    p.add_argument("--compile", action="store_true", help="also time Adam with torch.compile")
    p.add_argument("--parts", default=None, help=f"comma list of parts to run (default all): {PARTS}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--publish",
        action="store_true",
        help="copy the results to published/ (refused for --smoke or a CPU run)",
    )
    p.add_argument("--published-dir", default=None, help="where --publish writes (default published/)")
    a = p.parse_args(argv)
    full = dict(steps=150, warmup=10, batch_size=16, hvp_batch=8, probes=4, reps=3, budget_s=390.0)
    smoke = dict(steps=5, warmup=2, batch_size=4, hvp_batch=2, probes=3, reps=2, budget_s=120.0)
    for k, v in (smoke if a.smoke else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.device is None:
        a.device = "cpu" if a.smoke or not torch.cuda.is_available() else "cuda"
    a.hvp_dtypes = [s.strip() for s in a.hvp_dtypes.split(",") if s.strip()]
    if not set(a.hvp_dtypes) <= {"float32", "bfloat16"}:
        p.error(f"--hvp-dtypes must name float32 and/or bfloat16, got {a.hvp_dtypes}")
    a.parts = [s.strip() for s in a.parts.split(",")] if a.parts else None
    if a.parts and not set(a.parts) <= set(PARTS):
        p.error(f"--parts must be among {PARTS}")
    for k in ("steps", "warmup", "batch_size", "hvp_batch", "probes", "reps", "grad_accum"):
        if getattr(a, k) < (0 if k == "warmup" else 1):
            p.error(f"--{k.replace('_', '-')} must be positive")
    if a.steps < 2:
        p.error("--steps must be >= 2 (step times are differences of consecutive steps)")
    if torch.device(a.device).type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no GPU")
    if a.publish and (a.smoke or torch.device(a.device).type != "cuda"):
        p.error("--publish needs a full run on a CUDA device (not --smoke, not the CPU)")
    return a


def main(argv=None) -> dict:
    args = parse_args(argv)
    bench = Bench(args)

    def _alarm(signum, frame):
        raise BudgetExceeded()

    use_alarm = hasattr(signal, "SIGALRM") and threading_main()
    old = signal.signal(signal.SIGALRM, _alarm) if use_alarm else None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, max(1.0, args.budget_s - bench.elapsed()))
    # a tiny model on a shared CPU runs fastest (and steadiest) on one thread
    threads = torch.get_num_threads()
    if args.smoke and bench.device.type == "cpu":
        torch.set_num_threads(1)
    print(
        f"gpu_paper_scale: {bench.results['hardware']['device_name']}, torch {torch.__version__}, "
        f"budget {args.budget_s:.0f} s, results -> {bench.out}",
        flush=True,
    )
    try:
        bench.run()
    except BudgetExceeded:  # the alarm went off between parts: keep what we have
        bench.results["budget_exceeded"] = True
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        torch.set_num_threads(threads)
        shutil.rmtree(bench.tmp, ignore_errors=True)
        bench.save()
    print("\n" + markdown(bench.results), flush=True)
    if args.publish:
        print(f"published: {publish(bench.results, bench.out, args.published_dir)}", flush=True)
    return bench.results


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    main()
