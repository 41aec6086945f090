r"""What the paper-scale runs cost: GPU-hours per figure and table, measured where possible.

A rate is measured (``published/gpu_paper_scale.json`` of ``benchmarks/gpu_paper_scale.py --publish``,
scaled by the FLOPs per token) or *assumed*, :math:`\mathrm{MFU}\cdot F_\text{peak}/\text{FLOPs per token}`;
``source`` says which. A GPT trains at :math:`6N + 12\,L\,E\,T` FLOPs per token (PaLM appendix B, as
nanoGPT), a ResNet at three times its forward FLOPs per image; an HVP costs ``ASSUMED_HVP_OVER_GRAD``
gradients; independent runs on :math:`G` GPUs take :math:`1/G` of the GPU-hours.

``python -m adamlinf.studies.costs --markdown book/generated/paper_costs.md`` writes the page's table.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from adamlinf.models import build
from adamlinf.models.resnet import train_flops_per_image
from adamlinf.results import PUBLISHED_ROOT
from adamlinf.run import load_parameters

#: dense bf16 peak of an H100/H200 SXM (datasheet), the reference of every assumed MFU
PEAK_FLOPS = 989e12
#: assumed MFU without a measurement: nanoGPT's GPT-2 124M reaches about 40% on such GPUs; a CIFAR
#: ResNet18 (small 32x32 convolutions) about 5%, i.e. 15,000 images/s at 3.3 GFLOP per image
ASSUMED_MFU = {"gpt": 0.40, "resnet": 0.05}
#: assumed cost of one Hessian-vector product in gradients of the same tokens (double backward)
ASSUMED_HVP_OVER_GRAD = 3.0
#: the share of an uncached HVP that is its second backward, paid by each Cauchy probe (the first-order pass
#: is shared by a batch of probes). Measured on the ci GPT (benchmarks/bench_hessian.py, quiet CPU, two
#: runs, medians): cached-graph HVP 384 and 393 ms, uncached 530 and 548 ms.
SECOND_BACKWARD_SHARE = (384.3 + 392.9) / (530.3 + 547.7)
#: probes per batched pass assumed at paper scale (``l11_norm(batch_probes="auto")`` on a GPU)
PAPER_PROBE_BATCH = 8


def probe_hvp_fraction(batch: int = PAPER_PROBE_BATCH) -> float:
    """The cost of one Cauchy probe in uncached HVPs when ``batch`` probes share a first-order pass."""
    return SECOND_BACKWARD_SHARE + (1 - SECOND_BACKWARD_SHARE) / batch


def _hessian_table(p: Mapping, n: int, what: str) -> tuple[float, str]:
    """HVP-equivalents of Table 2 or 4 and their text: 3 checkpoints x (‖H‖₁,₁, ‖RᵀHR‖₁,₁, Lanczos' ‖H‖₂)."""
    hvps = 3 * (2 * p["n_probes"] * probe_hvp_fraction() + p["lanczos_iters"])
    work = f"{hvps:.0f} HVP-equivalents (probes batched by {PAPER_PROBE_BATCH}) over {n:,} {what} each"
    return hvps, work + ", at 3 checkpoints"


CIFAR10_TRAIN_IMAGES = 50_000
MEASUREMENT_NAME = "gpu_paper_scale.json"
#: the default ``measurement`` argument: the committed file, when there is one
PUBLISHED = "published"


@dataclass(frozen=True)
class Measurement:
    """The committed GPU measurement of ``benchmarks/gpu_paper_scale.py`` (GPT-2 124M); None: not measured."""

    device_name: str
    date: str
    torch: str
    tokens_per_s: float
    compiled: bool
    flops_per_token: float
    hvp_s_per_token: float | None
    rotated_extra_s_per_step: float | None

    @property
    def label(self) -> str:
        """``measured on <GPU> (<date>, torch <version>)``, the source of every number it gives."""
        return f"measured on {self.device_name} ({self.date[:10]}, torch {self.torch})"


def _number(data: Mapping, dotted: str) -> float | None:
    """The positive finite number at the path ``a.b.c`` of ``data``, else None."""
    value = data
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def load_measurement(path: str | Path | None = None) -> Measurement | None:
    """The committed GPU measurement (default ``published/gpu_paper_scale.json``), None when absent.

    Raises:
        ValueError: a ``--smoke`` run, not measured on CUDA, or without the training rate or date.
    """
    path = Path(path) if path is not None else PUBLISHED_ROOT / MEASUREMENT_NAME
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    hw = data.get("hardware", {})
    if data.get("smoke") or not str(hw.get("device", "")).startswith("cuda"):
        raise ValueError(
            f"{path} is not a GPU measurement (smoke={data.get('smoke')}, device="
            f"{hw.get('device')!r}); write it with benchmarks/gpu_paper_scale.py --publish on a GPU"
        )
    compiled = _number(data, "train.adam_compiled.tokens_per_s")
    rate = compiled or _number(data, "train.adam.tokens_per_s")
    date = data.get("date") or hw.get("date")
    fpt = _number(data, "settings.flops_per_token")
    if rate is None or not date or fpt is None:
        raise ValueError(f"{path} lacks train.adam.tokens_per_s, settings.flops_per_token or the date")
    best, tokens = _number(data, "hvp.float32.best_uncached_s"), _number(data, "hvp.float32.tokens")
    extra = _number(data, "comparison.rotated_minus_adam_step_s")
    hvp_s = best / tokens if best and tokens else None
    name = str(hw.get("device_name", "a GPU"))
    return Measurement(name, str(date), str(hw.get("torch")), rate, compiled is not None, fpt, hvp_s, extra)


def _resolve(measurement) -> Measurement | None:
    return load_measurement() if measurement == PUBLISHED else measurement


@dataclass(frozen=True)
class Rate:
    """Tokens (or images) per second of one GPU, whether measured, and what it rests on (``source``)."""

    per_s: float
    unit: str
    measured: bool
    source: str


def gpt_flops_per_token(model_spec: Mapping) -> float:
    r"""Training FLOPs per token of a GPT model spec, :math:`6N + 12\,L\,E\,T` (built on ``meta``)."""
    with torch.device("meta"):
        model = build(dict(model_spec))
    return float(model.flops_per_token())


def _assumed(kind: str, flops: float, unit: str, mfu: float | None = None, hvp: bool = False) -> Rate:
    """The rate at ``mfu`` (default ``ASSUMED_MFU[kind]``) of ``PEAK_FLOPS``, for an ``hvp`` or a gradient."""
    mfu = ASSUMED_MFU[kind] if mfu is None else mfu
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    per_s = mfu * PEAK_FLOPS / flops
    source = f"assumed {mfu:.0%} MFU of {PEAK_FLOPS / 1e12:.0f} TFLOP/s"
    if hvp:
        per_s = per_s / ASSUMED_HVP_OVER_GRAD
        source += f", HVP = {ASSUMED_HVP_OVER_GRAD:g} gradients (assumed)"
    return Rate(per_s, unit, False, source)


def gpt_rate(model_spec: Mapping, measurement=PUBLISHED, *, mfu: float | None = None) -> Rate:
    """Training tokens per second of one GPU for a GPT: :class:`Measurement`, None (assumed) or PUBLISHED."""
    fpt = gpt_flops_per_token(model_spec)
    m = _resolve(measurement)
    if m is None:
        return _assumed("gpt", fpt, "tokens", mfu)
    scaled = not math.isclose(fpt, m.flops_per_token, rel_tol=1e-9)
    how = (", compiled" if m.compiled else ", eager") + (", scaled by FLOPs per token" if scaled else "")
    return Rate(m.tokens_per_s * m.flops_per_token / fpt, "tokens", True, m.label + how)


def gpt_hvp_rate(model_spec: Mapping, measurement=PUBLISHED) -> Rate:
    """Tokens per second of one GPU through a GPT's HVP (assumed: training rate / ASSUMED_HVP_OVER_GRAD)."""
    fpt = gpt_flops_per_token(model_spec)
    m = _resolve(measurement)
    if m is not None and m.hvp_s_per_token is not None:
        return Rate(m.flops_per_token / fpt / m.hvp_s_per_token, "tokens", True, m.label + ", float32 HVP")
    return _assumed("gpt", fpt, "tokens", hvp=True)


@functools.lru_cache(maxsize=16)
def _resnet_flops(image_size: int, width: int, blocks: tuple[int, ...]) -> float:
    return train_flops_per_image(image_size, width=width, blocks=blocks)


def resnet_rate(model_spec: Mapping | None = None, image_size: int = 32, *, hvp: bool = False) -> Rate:
    """Training (or ``hvp``) images per second of one GPU for a ResNet (default ResNet18); assumed."""
    spec = dict(model_spec or {})
    flops = _resnet_flops(image_size, spec.get("width", 64), tuple(spec.get("blocks", (2, 2, 2, 2))))
    return _assumed("resnet", flops, "images", hvp=hvp)


def _sweep_runs(grids: Mapping[str, int], max_extensions: int) -> tuple[int, int]:
    """Seed-0 runs of a tuned grid: each optimizer's grid, plus up to ``max_extensions`` values."""
    base = sum(grids.values())
    return base, base + max_extensions * len(grids)


def figure1_run_count(p: Mapping) -> tuple[int, int, int, int]:
    """``(runs_min, runs_max, rotated_min, rotated_max)`` of Figure 1's protocol at parameters ``p``."""
    adaptive = [*p["optimizers"], *p.get("extra_optimizers", [])]
    grids = {**{o: len(p["adaptive_lrs"]) for o in adaptive}, "sgd": len(p["sgd_lrs"])}
    lo, hi = _sweep_runs(grids, int(p["max_extensions"]))
    extra = len(p["seeds"])  # the measuring seeds (the tuning seed is not among them)
    # adaptive points: the 3 shared rates, plus the best lr when it is not one of them; SGD: its best
    lo += extra * (3 * len(adaptive) + 1)
    hi += extra * (4 * len(adaptive) + 1)
    rot = "rotated_adam" in adaptive
    rot_lo = rot * (len(p["adaptive_lrs"]) + extra * 3)
    rot_hi = rot * (len(p["adaptive_lrs"]) + int(p["max_extensions"]) + extra * 4)
    return lo, hi, rot_lo, rot_hi


def table3_run_count(p: Mapping) -> tuple[int, int]:
    """``(runs_min, runs_max)`` of Table 3's protocol at parameters ``p``, over all batch sizes."""
    grids = {o: len(p["sgd_lrs"] if o == "sgd" else p["adaptive_lrs"]) for o in p["optimizers"]}
    lo, hi = _sweep_runs(grids, int(p["max_extensions"]))
    extra = len(p["seeds"]) * len(p["optimizers"])  # the measuring seeds at each best lr
    n = len(p["batch_sizes"])
    return n * (lo + extra), n * (hi + extra)


def paper_costs(
    measurement=PUBLISHED, *, gpus: tuple[int, ...] = (1, 8), scale: str = "paper"
) -> pd.DataFrame:
    """GPU-hours (``gpu_hours_min``/``_max``, ``hours_<g>_gpus_*``) of every figure and table, and a Total."""
    m = _resolve(measurement)
    rows, no_runs = [], "no runs of its own"

    def add(item, notebook, work, runs, units_per_run, rate, note="", extra_runs=(0.0, 0.0), kind="training"):
        lo, hi = runs
        row = {"item": item, "notebook": notebook, "kind": "none" if hi == 0 else kind, "work": work}
        row |= {"runs_min": lo, "runs_max": hi, "units_per_run": units_per_run, "rate_per_gpu": rate.per_s}
        row |= {"rate_unit": f"{rate.unit}/s", "measured": rate.measured, "source": rate.source, "note": note}
        for bound, n, extra in (("min", lo, extra_runs[0]), ("max", hi, extra_runs[1])):
            row[f"gpu_hours_{bound}"] = (n + extra) * units_per_run / rate.per_s / 3600
        for g in gpus:
            for bound in ("min", "max"):
                row[f"hours_{g}_gpus_{bound}"] = row[f"gpu_hours_{bound}"] / g
        rows.append(row)

    f1 = load_parameters("gpt2_figure1", scale)
    shape = ("n_layer", "n_head", "n_embd", "block_size")
    gpt = {"kind": "gpt", "vocab_size": f1["vocab_size"] or 256, **{k: f1[k] for k in shape}}
    tokens = f1["global_batch"] * f1["block_size"] * f1["max_iters"]
    rate = gpt_rate(gpt, m)
    lo, hi, rot_lo, rot_hi = figure1_run_count(f1)
    extra_runs, note = (0.0, 0.0), "rotated Adam's extra cost not counted (not measured)"
    if m is not None and m.rotated_extra_s_per_step is not None:  # paid once per optimizer step
        frac = m.rotated_extra_s_per_step * f1["max_iters"] / (tokens / rate.per_s)
        extra_runs = (rot_lo * frac, rot_hi * frac)
        note = f"rotated Adam +{frac:.1%} per run (measured)"
    steps = f"{f1['max_iters']:,} steps × {f1['global_batch']} × {f1['block_size']} tokens per run"
    work = f"GPT {f1['n_layer']}×{f1['n_embd']}, {steps}"
    add("Figure 1", "gpt2_figure1", work, (lo, hi), tokens, rate, note=note, extra_runs=extra_runs)
    add("Figure 3", "gpt2_figure3", "a slice of Figure 1's grid", (0, 0), tokens, rate, note=no_runs)
    t2 = load_parameters("gpt2_table2", scale)
    hvps, work = _hessian_table(t2, t2["n_batches"] * f1["batch_size"], "sequences")
    hvp_tokens = t2["n_batches"] * f1["batch_size"] * f1["block_size"]
    add("Table 2", "gpt2_table2", work, (1, 1), hvps * hvp_tokens, gpt_hvp_rate(gpt, m), kind="hvp")
    t3 = load_parameters("resnet_table3", scale)
    resnet = {"width": t3["width"], "blocks": t3["blocks"]}
    images = t3["epochs"] * CIFAR10_TRAIN_IMAGES
    rate = resnet_rate(resnet, t3["image_size"])
    sizes = ", ".join(map(str, t3["batch_sizes"]))
    work = f"ResNet (width {t3['width']}), {t3['epochs']} epochs of CIFAR-10 per run, batch sizes {sizes}"
    add("Table 3", "resnet_table3", work, table3_run_count(t3), images, rate)
    add("Figure 4", "resnet_figure4", "curves of Table 3's runs", (0, 0), images, rate, note=no_runs)
    t4 = load_parameters("resnet_table4", scale)
    hvps4, work = _hessian_table(t4, t4["n_batches"] * t4["table4_batch_size"], "images")
    rate = resnet_rate(resnet, t3["image_size"], hvp=True)
    units = hvps4 * t4["n_batches"] * t4["table4_batch_size"]  # the product in this order, as before
    add("Table 4", "resnet_table4", work, (1, 1), units, rate, kind="hvp")
    table = pd.DataFrame(rows)
    total = {"item": "Total", "notebook": "", "kind": "total", "work": "", "note": ""}
    total |= {"measured": bool(table.measured.all()), "source": "; ".join(sorted(set(table.source)))}
    for col in table.columns:
        if col.startswith(("gpu_hours_", "hours_", "runs_")):
            total[col] = table[col].sum()
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def _hours(lo: float, hi: float) -> str:
    a, b = ("0" if x == 0 else f"{x:,.0f}" if x >= 10 else f"{x:.2g}" for x in (lo, hi))
    return a if a == b else f"{a}–{b}"


def costs_markdown(table: pd.DataFrame, gpus: tuple[int, ...] = (1, 8)) -> str:
    """:func:`paper_costs`' table as Markdown, each rate labelled measured or assumed."""
    walls = [g for g in gpus if g != 1]
    head = ["item", "work", "runs", "GPU-hours (= hours on 1 GPU)"]
    head += [*(f"hours on {g} GPUs" for g in walls), "rate per GPU"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples():
        runs = _hours(r.runs_min, r.runs_max) if r.kind in ("training", "none") else ""
        if r.item == "Total":
            rate = ""
        elif r.runs_max == 0:
            rate = r.note
        else:
            kind = "measured" if r.measured else "assumed"
            rate = f"{r.rate_per_gpu:,.0f} {r.rate_unit} ({kind})"
            if r.note and "rotated" in r.note:
                rate += f"; {r.note}"
        item = f"**{r.item}**" if r.item == "Total" else r.item
        hours = [_hours(getattr(r, f"hours_{g}_gpus_min"), getattr(r, f"hours_{g}_gpus_max")) for g in walls]
        cells = [item, r.work, runs, _hours(r.gpu_hours_min, r.gpu_hours_max), *hours, rate]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    sources = sorted({s for s, n in zip(table.source, table.item, strict=True) if n != "Total"})
    lines += ["", "Rates: " + "; ".join(sources) + "."]
    return "\n".join(lines) + "\n"


def notebook_cost(notebook: str, measurement=PUBLISHED, *, scale: str = "paper") -> str:
    """One sentence for a notebook's cost section: its paper-scale GPU-hours and what they rest on."""
    table = paper_costs(measurement, scale=scale)
    rows = table[table.notebook == notebook]
    if rows.empty:
        known = ", ".join(n for n in table.notebook if n)
        raise ValueError(f"no cost row for notebook {notebook!r}; known: {known}")
    r = rows.iloc[0]
    if r.runs_max == 0:
        return f"{r['item']} at {scale} scale: {r.note}; it uses {r.work}."
    runs = _hours(r.runs_min, r.runs_max)
    what = f"{runs} run{'s' if r.runs_max > 1 else ''} ({r.work})" if r.kind == "training" else r.work
    return (
        f"{r['item']} at {scale} scale: {what}: "
        f"{_hours(r.gpu_hours_min, r.gpu_hours_max)} GPU-hours, about "
        f"{_hours(r.hours_8_gpus_min, r.hours_8_gpus_max)} hours on 8 GPUs, at {r.rate_per_gpu:,.0f} "
        f"{r.rate_unit.replace('/s', '')}/s per GPU ({r.source})."
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: print the paper-scale cost table, or write it as Markdown."""
    parser = argparse.ArgumentParser(
        prog="python -m adamlinf.studies.costs", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--markdown", help="write the Markdown table to this file")
    parser.add_argument("--measurement", help="a gpu_paper_scale.json (default: the committed one, if any)")
    parser.add_argument("--assumed", action="store_true", help="ignore any measurement")
    parser.add_argument("--scale", default="paper")
    args = parser.parse_args(argv)
    m = None if args.assumed else load_measurement(args.measurement) if args.measurement else PUBLISHED
    text = costs_markdown(paper_costs(m, scale=args.scale))
    if args.markdown:
        out = Path(args.markdown)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
