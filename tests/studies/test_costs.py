"""The paper-scale cost model (adamlinf.studies.costs): FLOP counts by hand, the assumed rate and its
label, a measured rate read from a (fake) committed measurement, run counts of the sweep protocols
checked against brute-force enumeration, the tidy table and its Markdown."""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import pytest

from adamlinf import launch
from adamlinf.run import load_parameters
from adamlinf.studies import costs, lm, sweeps

GPT124 = {"kind": "gpt", "vocab_size": 50304, "n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024}


def fake_measurement(path, *, tokens_per_s=400_000.0, compiled=None, hvp=True, smoke=False, device="cuda:0"):
    """A file in the layout benchmarks/gpu_paper_scale.py writes."""
    fpt = costs.gpt_flops_per_token(GPT124)
    data = {
        "date": "2026-11-30T03:00:00+00:00",
        "smoke": smoke,
        "hardware": {"device": device, "device_name": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0"},
        "settings": {"flops_per_token": fpt},
        "train": {"adam": {"tokens_per_s": tokens_per_s}},
        "comparison": {"rotated_minus_adam_step_s": 0.047},
    }
    if compiled:
        data["train"]["adam_compiled"] = {"tokens_per_s": compiled}
    if hvp:
        data["hvp"] = {"float32": {"best_uncached_s": 1.6, "tokens": 8192}}
    path.write_text(json.dumps(data))
    return path


def test_gpt_flops_per_token_by_hand():
    # 124M: N = 12 (4·768² + 8·768²) + 50304·768 (tied head) + 2·12·768 + 768 (LayerNorm weights)
    n = 12 * 12 * 768**2 + 50304 * 768 + 25 * 768
    assert costs.gpt_flops_per_token(GPT124) == 6 * n + 12 * 12 * 768 * 1024


def test_assumed_rate_is_labelled_and_follows_the_mfu():
    rate = costs.gpt_rate(GPT124, None)
    fpt = costs.gpt_flops_per_token(GPT124)
    assert rate.per_s == pytest.approx(0.4 * 989e12 / fpt)
    assert not rate.measured and rate.source == "assumed 40% MFU of 989 TFLOP/s"
    assert costs.gpt_rate(GPT124, None, mfu=0.2).per_s == pytest.approx(rate.per_s / 2)
    hvp = costs.gpt_hvp_rate(GPT124, None)
    assert hvp.per_s == pytest.approx(rate.per_s / costs.ASSUMED_HVP_OVER_GRAD) and "assumed" in hvp.source
    with pytest.raises(ValueError, match="mfu"):
        costs.gpt_rate(GPT124, None, mfu=1.5)


def test_no_committed_measurement_means_assumed(tmp_path, monkeypatch):
    monkeypatch.setattr(costs, "PUBLISHED_ROOT", tmp_path)
    assert costs.load_measurement() is None
    assert not costs.gpt_rate(GPT124).measured
    table = costs.paper_costs()
    assert not table.measured.any() and all("assumed" in s for s in table.source)


def test_measured_rate_from_the_committed_file(tmp_path, monkeypatch):
    fake_measurement(tmp_path / costs.MEASUREMENT_NAME, compiled=500_000.0)
    monkeypatch.setattr(costs, "PUBLISHED_ROOT", tmp_path)
    m = costs.load_measurement()
    assert m.compiled and m.tokens_per_s == 500_000.0 and m.hvp_s_per_token == pytest.approx(1.6 / 8192)
    assert m.label == "measured on NVIDIA H200 (2026-11-30, torch 2.11.0)"
    rate = costs.gpt_rate(GPT124)  # PUBLISHED by default
    assert rate.measured and rate.per_s == 500_000.0
    assert rate.source == "measured on NVIDIA H200 (2026-11-30, torch 2.11.0), compiled"
    # another size: the measured FLOP rate, divided by its FLOPs per token
    small = {**GPT124, "n_layer": 6}
    scaled = costs.gpt_rate(small)
    ratio = costs.gpt_flops_per_token(GPT124) / costs.gpt_flops_per_token(small)
    assert scaled.per_s == pytest.approx(500_000.0 * ratio) and "scaled by FLOPs per token" in scaled.source
    assert costs.gpt_hvp_rate(GPT124).per_s == pytest.approx(8192 / 1.6)
    # the images are not measured: the ResNet rows stay assumed, and say so
    table = costs.paper_costs().set_index("item")
    assert table.loc["Figure 1", "measured"] and table.loc["Table 2", "measured"]
    assert not table.loc["Table 3", "measured"] and "assumed" in table.loc["Table 3", "source"]
    assert not table.loc["Total", "measured"]


def test_measured_hours_by_hand(tmp_path):
    m = costs.load_measurement(fake_measurement(tmp_path / "m.json", hvp=False))
    table = costs.paper_costs(m).set_index("item")
    p = load_parameters("gpt2_figure1", "paper")
    lo, hi, rot_lo, rot_hi = costs.figure1_run_count(p)
    run_s = 100_000 * 480 * 1024 / 400_000.0
    rotated = 0.047 * 100_000 / run_s  # extra fraction of a run
    assert table.loc["Figure 1", "gpu_hours_min"] == pytest.approx((lo + rot_lo * rotated) * run_s / 3600)
    assert table.loc["Figure 1", "gpu_hours_max"] == pytest.approx((hi + rot_hi * rotated) * run_s / 3600)
    assert table.loc["Figure 1", "hours_8_gpus_max"] == pytest.approx(
        table.loc["Figure 1", "gpu_hours_max"] / 8
    )
    assert "measured" in table.loc["Figure 1", "note"]
    assert not table.loc["Table 2", "measured"]  # this measurement has no HVP part
    body = table.drop(index="Total")
    for col in ("gpu_hours_min", "gpu_hours_max", "hours_1_gpus_max", "hours_8_gpus_min", "runs_max"):
        assert table.loc["Total", col] == pytest.approx(body[col].sum())
    assert (table.loc[["Figure 3", "Figure 4"], "gpu_hours_max"] == 0).all()


@pytest.mark.parametrize(
    "bad, match", [({"smoke": True}, "not a GPU measurement"), ({"device": "cpu"}, "not a GPU measurement")]
)
def test_cpu_or_smoke_files_are_refused(tmp_path, bad, match):
    path = fake_measurement(tmp_path / "m.json", **bad)
    with pytest.raises(ValueError, match=match):
        costs.load_measurement(path)
    data = json.loads(path.read_text())
    data.update(smoke=False, hardware={**data["hardware"], "device": "cuda"})
    del data["date"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="date"):
        costs.load_measurement(path)


def _brute_figure1(p, extensions, best_in_shared):
    """Enumerate the runs of lm.figure1_runs for given extensions and best-lr positions."""
    adaptive = [*p["optimizers"], *p.get("extra_optimizers", [])]
    runs = set()
    for o in [*adaptive, "sgd"]:
        grid = p["sgd_lrs"] if o == "sgd" else p["adaptive_lrs"]
        runs |= {(o, i, 0) for i in range(len(grid) + extensions[o])}
    for s in p["seeds"]:  # the measuring seeds; the tuning seed only trains the grids
        for o in adaptive:
            runs |= {(o, f"shared{k}", s) for k in range(3)}
            if not best_in_shared[o]:
                runs.add((o, "best", s))
        runs.add(("sgd", "best", s))
    return len(runs)


@pytest.mark.parametrize("scale", ["ci", "gpu", "paper"])
def test_figure1_run_count_matches_enumeration(scale):
    p = load_parameters("gpt2_figure1", scale)
    adaptive = [*p["optimizers"], *p.get("extra_optimizers", [])]
    counts = [
        _brute_figure1(p, dict.fromkeys([*adaptive, "sgd"], e), dict.fromkeys(adaptive, b))
        for e, b in itertools.product(range(p["max_extensions"] + 1), (True, False))
    ]
    lo, hi, _, _ = costs.figure1_run_count(p)
    assert (lo, hi) == (min(counts), max(counts))


@pytest.mark.parametrize("scale", ["ci", "gpu", "paper"])
def test_table3_run_count_matches_enumeration(scale):
    p = load_parameters("resnet_table3", scale)
    counts = []
    for e in range(p["max_extensions"] + 1):
        n = 0
        for _bs in p["batch_sizes"]:
            for o in p["optimizers"]:
                grid = p["sgd_lrs"] if o == "sgd" else p["adaptive_lrs"]
                n += len(grid) + e + len(p["seeds"])
        counts.append(n)
    assert costs.table3_run_count(p) == (min(counts), max(counts))


def test_markdown_labels_every_rate(tmp_path):
    table = costs.paper_costs(None)
    md = costs.costs_markdown(table)
    lines = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(lines) == 1 + len(table)
    for line in lines[1:-1]:
        assert "(assumed)" in line or "no runs of its own" in line
    assert lines[-1].startswith("| **Total**") and "Rates: assumed 40% MFU" in md
    total = table.set_index("item").loc["Total"]
    assert f"{total.gpu_hours_min:,.0f}–{total.gpu_hours_max:,.0f}" in lines[-1]
    assert costs.main(["--assumed", "--markdown", str(tmp_path / "c.md")]) == 0
    assert (tmp_path / "c.md").read_text() == md


def test_resnet18_rate_by_hand():
    rate = costs.resnet_rate()
    flops = 3 * 2 * 556e6  # 0.556 GMAC forward per image (the usual count), 2 FLOPs per MAC, x3 for training
    assert math.isclose(rate.per_s, 0.05 * 989e12 / flops, rel_tol=0.05)
    assert not rate.measured and costs.resnet_rate(hvp=True).per_s == pytest.approx(rate.per_s / 3)


# ----------------------------------------------------------------------------------------------
# the paper-scale page
# ----------------------------------------------------------------------------------------------
PAGE = Path(__file__).resolve().parents[2] / "book" / "paper_scale.md"


def _block_after(text: str, marker: str, lang: str) -> str:
    rest = text[text.index(marker) :]
    start = rest.index(f"```{lang}\n") + len(f"```{lang}\n")
    return rest[start : rest.index("```", start)]


def test_the_page_includes_the_generated_cost_table():
    page = PAGE.read_text()
    assert "```{include} generated/paper_costs.md" in page
    committed = (PAGE.parent / "generated" / "paper_costs.md").read_text()
    assert committed == costs.costs_markdown(costs.paper_costs()), (
        "book/generated/paper_costs.md is stale: python -m adamlinf.studies.costs --markdown "
        "book/generated/paper_costs.md"
    )


def test_the_page_multinode_snippet_prints_the_commands_it_shows(tmp_path, monkeypatch, capsys):
    page = PAGE.read_text()
    monkeypatch.chdir(tmp_path)
    exec(_block_after(page, "A spec file and the command for each", "python"), {})
    printed = capsys.readouterr().out
    assert printed == _block_after(page, "\nprints\n", "bash")
    spec = json.loads((tmp_path / "results/multinode/adam_lr6.00e-04/spec.json").read_text())
    assert spec["data"]["batch_size"] * spec["train"]["grad_accum"] * 16 == 480


def test_the_page_sweep_snippet_trains_the_notebook_runs(monkeypatch, capsys):
    """The SLURM array's runs are the seed-0 grid Figure 1 trains: same folder names, same specs."""
    page = PAGE.read_text()
    code = _block_after(page, "`sweep_task.py`", "python")
    monkeypatch.setattr(sys, "argv", ["sweep_task.py", "count"])
    namespace: dict = {}
    exec(code, namespace)
    assert capsys.readouterr().out.strip() == "24" and "--array=0-23" in page
    p = namespace["p"]
    adaptive = p["optimizers"] + p["extra_optimizers"]
    grids = {**{o: p["adaptive_lrs"] for o in adaptive}, "sgd": p["sgd_lrs"]}
    ref = {
        lm.run_name(o, lr, 0): launch.with_train(
            sweeps.with_seed(lm.base_spec(p), 0), optimizer=o, lr=lr, min_lr=lr * p["min_lr"] / p["lr"]
        )
        for o, lrs in grids.items()
        for lr in lrs
    }
    specs = namespace["specs"]
    assert sorted(specs) == sorted(ref)
    assert all(launch.spec_key(specs[k]) == launch.spec_key(ref[k]) for k in ref)


def test_notebook_cost_sentence(tmp_path):
    table = costs.paper_costs(None).set_index("notebook")
    line = costs.notebook_cost("gpt2_figure1", None)
    r = table.loc["gpt2_figure1"]
    assert line.startswith(f"Figure 1 at paper scale: {r.runs_min}–{r.runs_max} runs (GPT 12×768")
    assert f"{r.gpu_hours_min:,.0f}–{r.gpu_hours_max:,.0f} GPU-hours" in line
    assert "(assumed 40% MFU of 989 TFLOP/s)" in line
    assert costs.notebook_cost("gpt2_figure3", None).endswith(
        "no runs of its own; it uses a slice of Figure 1's grid."
    )
    # 3 checkpoints x (2 x 50 probes + 50 Lanczos steps); a probe batched by 8 costs its second backward
    # and an eighth of the first-order pass: 3 * (100 * (s + (1 - s) / 8) + 50) HVP-equivalents
    f = costs.SECOND_BACKWARD_SHARE + (1 - costs.SECOND_BACKWARD_SHARE) / 8
    assert costs.probe_hvp_fraction(8) == pytest.approx(f) and costs.probe_hvp_fraction(1) == 1.0
    expected = f"Table 2 at paper scale: {3 * (100 * f + 50):.0f} HVP-equivalents"
    assert costs.notebook_cost("gpt2_table2", None).startswith(expected)
    m = costs.load_measurement(fake_measurement(tmp_path / "m.json"))
    assert "(measured on NVIDIA H200 (2026-11-30, torch 2.11.0), eager)" in costs.notebook_cost(
        "gpt2_figure1", m
    )
    assert "gpu scale" in costs.notebook_cost("gpt2_figure1", None, scale="gpu")
    with pytest.raises(ValueError, match="known: gpt2_figure1"):
        costs.notebook_cost("thm32_signgd", None)
