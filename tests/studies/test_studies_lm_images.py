"""The GPT and ResNet studies (adamlinf.studies.lm, adamlinf.studies.vision) run end to end at the
``gpu`` parameters with tiny overrides, on CPU: the protocol (grids of >= 4 values, extension, seeds
at the tuned lr), the tables the pages show, and their verdicts."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from adamlinf import launch
from adamlinf.data import text
from adamlinf.run import PARAMS
from adamlinf.studies import costs, lm, sweeps, vision
from adamlinf.studies.verdicts import VERDICT_COLUMNS, Measured

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_GPT = dict(
    device="cpu",
    n_layer=1,
    n_head=2,
    n_embd=8,
    block_size=8,
    batch_size=2,
    global_batch=2,
    max_iters=4,
    warmup_iters=1,
    eval_interval=2,
    eval_iters=1,
    dtype="float32",
    workers=1,
    max_extensions=1,
    tune_seed=0,
    seeds=[1, 2],
)


def _params(name: str, scale: str, **over) -> dict:
    p = yaml.safe_load((PARAMS / f"{name}.yaml").read_text())[scale]
    return {**p, **over}


def test_every_scale_has_the_same_parameters():
    for name in ("gpt2_figure1", "gpt2_table2", "resnet_table3", "resnet_table4", "resnet_figure4"):
        table = yaml.safe_load((PARAMS / f"{name}.yaml").read_text())
        assert set(table) == {"ci", "gpu", "paper"}, name
        assert set(table["ci"]) == set(table["gpu"]) == set(table["paper"]), name
    gpu = _params("gpt2_figure1", "gpu")
    assert (
        gpu["dataset"] == "stdlib"
        and gpu["n_layer"] >= 6
        and gpu["block_size"] >= 256
        and gpu["max_iters"] >= 1000
    )
    ci = _params("gpt2_figure1", "ci")
    assert (ci["n_layer"], ci["n_embd"], ci["block_size"]) >= (4, 64, 64) and len(ci["seeds"]) >= 3
    for p in (ci, gpu):  # >= 4 values half a decade apart, and the shared lr is a grid value
        for grid in (p["adaptive_lrs"], p["sgd_lrs"]):
            assert len(grid) >= 4
            assert [b / a for a, b in zip(grid, grid[1:], strict=False)] == pytest.approx(
                [sweeps.HALF_DECADE] * (len(grid) - 1), rel=1e-3
            )
        assert min(abs(x / p["lr"] - 1) for x in p["adaptive_lrs"]) < 1e-3
    assert _params("gpt2_table2", "ci")["n_probes"] == 50 and _params("resnet_table4", "ci")["n_probes"] == 50
    assert len(_params("resnet_table3", "ci")["seeds"]) >= 5
    for name in ("gpt2_figure1", "resnet_table3"):  # the tuning seed never measures
        for scale in ("ci", "gpu", "paper"):
            p = _params(name, scale)
            assert p["tune_seed"] not in p["seeds"] and len(set(p["seeds"])) == len(p["seeds"]) >= 3


def _finals(values: dict, lr: float = 1e-3, **cols) -> pd.DataFrame:
    """Finals of three measuring seeds per optimizer at ``lr``: ``value - 0.01, value, value + 0.01``."""
    rows = [
        {"optimizer": o, "lr": lr, "seed": s, "final": v + 0.01 * (s - 2), "measuring": True, **cols}
        for o, v in values.items()
        for s in (1, 2, 3)
    ]
    return pd.DataFrame(rows)


def test_figure1_and_figure3_verdicts_on_constructed_losses():
    finals = _finals({"adam": 2.0, "adasgd": 2.2, "rotated_adam": 2.5})
    finals = pd.concat([finals, _finals({"sgd": 2.4}, lr=0.1)], ignore_index=True)
    best = {"adam": 1e-3, "adasgd": 1e-3, "rotated_adam": 1e-3, "sgd": 0.1}
    runs = lm.LMRuns(sweeps.Sweep({}, finals, best), finals, finals, {"default": 1e-3}, 0.0)
    v = lm.figure1_claims(runs, scale="ci")
    # SGD (2.4) is not slower than rotated Adam (2.5): the one claim that fails, in both views
    assert v.verdict.tolist() == ["holds"] * 5 + ["fails"] + ["holds"] * 5 + ["fails"]

    def m(x):
        return Measured.from_seeds([x - 0.01, x, x + 0.01])

    values = {
        ("adam", "smaller"): m(2.9), ("adam", "default"): m(2.0), ("adam", "larger"): m(1.5),
        ("adasgd", "smaller"): m(3.0), ("adasgd", "default"): m(2.5), ("adasgd", "larger"): m(math.inf),
        ("rotated_adam", "smaller"): m(2.8), ("rotated_adam", "default"): m(2.6),
        ("rotated_adam", "larger"): m(3.5),
    }  # fmt: skip
    f3 = lm.figure3_claims(values, scale="ci").set_index("claim").verdict
    assert f3["One run fails completely (diverges)"] == "holds"  # AdaSGD at the larger lr
    assert f3["Figure 1's ordering at the smaller lr: Adam beats Rotated Adam"] == "fails"  # 2.9 vs 2.8
    assert (f3.drop(["Figure 1's ordering at the smaller lr: Adam beats Rotated Adam"]) == "holds").all()
    values[("adasgd", "larger")] = m(2.0)
    assert (
        lm.figure3_claims(values, scale="ci")
        .set_index("claim")
        .verdict["One run fails completely (diverges)"]
        == "fails"
    )


def test_table3_and_figure4_verdicts_on_constructed_losses():
    finals = _finals({"sgd": 2.5, "adasgd": 1.0, "adam": 1.5, "rotated_adam": 1.6}, batch_size=128)
    tuned = finals[["batch_size", "optimizer", "lr"]].drop_duplicates()
    v = vision.table3_claims(finals, tuned, scale="ci", data="digits stand-in").verdict.tolist()
    assert v == ["holds", "fails", "holds"]  # Adam beats SGD, not AdaSGD, and rotated Adam
    curves = pd.DataFrame(
        [
            {"optimizer": o, "seed": s, "budget": b, vision.METRIC: loss * b ** (-1) + 0.01 * s}
            for o, loss in {"adam": 1.0, "sgd": 2.0, "adasgd": 0.5}.items()
            for s in (1, 2, 3)
            for b in (0.5, 1.0)
        ]
    )
    f4 = vision.figure4_claims(curves, scale="ci", batch_size=128, data="digits stand-in")
    assert f4.verdict.tolist() == ["holds", "fails", "holds", "fails"]  # vs SGD, AdaSGD at half and end


def test_gpu_scale_of_figure1_runs_tiny_on_cpu(tmp_path):
    p = _params("gpt2_figure1", "gpu", **TINY_GPT)
    text.ensure(p["dataset"])
    runs = lm.figure1_runs(p, tmp_path, max_extensions=1)
    grids = runs.sweep.grids
    assert set(grids) == {"adam", "adasgd", "rotated_adam", "sgd"} and all(
        len(g) >= 4 for g in grids.values()
    )
    assert runs.sweep.tune_seed == 0
    for opt, lr in runs.sweep.best_lr.items():  # the two measuring seeds at every tuned lr
        assert sweeps.measured(runs.finals, opt, lr).n == 2
        at = runs.finals[(runs.finals.optimizer == opt) & (runs.finals.lr == lr)]
        assert sorted(at.seed) == [0, 1, 2] and sorted(at[at.measuring].seed) == [1, 2]
    for lr in runs.shared.values():  # and at the shared lr's slices
        assert sweeps.measured(runs.finals, "adam", lr).n == 2
    # the tuning seed measures nothing: the tuned value is the mean of seeds 1 and 2 only
    adam = runs.finals[(runs.finals.optimizer == "adam") & (runs.finals.lr == runs.sweep.best_lr["adam"])]
    assert runs.tuned()["adam"].value == pytest.approx(adam[adam.seed > 0].final.mean())
    tables = lm.figure1_tables(runs, scale="gpu")
    v = tables["verdicts"]
    assert list(v.columns[: len(VERDICT_COLUMNS)]) == list(VERDICT_COLUMNS)
    assert len(v) == 12 and (v.scale == "gpu").all()
    assert set(v["where"]) == {"Figure 1"} and set(v.origin) == {"paper"}
    tuned = tables["tuned"].set_index("optimizer")
    assert (tuned.n_seeds == 2).all()
    assert set(tables["curves"].seed) == {1, 2}  # the curves show the measuring seeds only
    f3 = lm.figure3_claims(lm.figure3_values(runs.finals, runs.shared), scale="gpu")
    assert len(f3) == 10 and set(f3["where"]) == {"Figure 3"}
    assert f3.origin.tolist() == ["paper"] * 6 + ["book"] * 4
    # a second call reuses every complete run
    again = lm.figure1_runs(p, tmp_path, max_extensions=1)
    assert again.finals.final.tolist() == runs.finals.final.tolist()


def test_gpu_scale_of_table3_runs_tiny_on_cpu(tmp_path):
    p = _params(
        "resnet_table3",
        "gpu",
        device="cpu",
        width=4,
        blocks=[1, 1, 1, 1],
        epochs=1,
        batch_sizes=[512],
        image_size=8,
        optimizers=["sgd", "adam"],
        tune_seed=0,
        seeds=[1, 2],
        max_extensions=1,
        eval_batch_size=500,
    )
    assert vision.resolve_source("digits") == "digits"
    if vision.resolve_source(p["data_source"]) == "cifar10":
        pytest.skip("CIFAR-10 is present: the tiny run is for the stand-in")
    runs = vision.table3_runs(p, tmp_path)
    tuned = vision.tuned_table(runs)
    assert len(tuned) == 2 and (tuned.n_seeds == 2).all()
    assert all(len(sw.grids[o]) >= 4 for sw in runs.sweeps.values() for o in sw.grids)
    assert set(tuned.run.str[-2:]) == {"s1"}  # Table 4 reads the first measuring seed's checkpoint
    data = vision.data_name("digits")
    t3 = vision.table3_claims(runs.finals, tuned, scale="gpu", data=data)
    v = t3.set_index("claim").verdict
    assert v["Adam beats AdaSGD (batch 512, digits stand-in)"] == "not run"
    assert set(t3["where"]) == {"Table 3"} and set(t3.origin) == {"paper"}
    curves = vision.curves_at(runs.metrics, tuned, 512)
    assert set(curves.seed) == {1, 2} and curves.budget.max() == pytest.approx(1.0)
    f4 = vision.figure4_claims(curves, scale="gpu", batch_size=512, data=data)
    assert len(f4) == 2 and set(f4["where"]) == {"Figure 4"}
    assert "stand-in (not CIFAR-10)" in vision.setup_text(p)


def test_paper_parameters_match_the_paper():
    root = PARAMS
    p = yaml.safe_load((root / "gpt2_figure1.yaml").read_text())["paper"]
    assert (p["n_layer"], p["n_head"], p["n_embd"], p["block_size"]) == (12, 12, 768, 1024)
    assert p["dataset"] == "openwebtext" and p["vocab_size"] == 50304
    assert p["global_batch"] == 480 and p["max_iters"] == 100_000 and p["warmup_iters"] == 2000
    assert p["lr"] == 6e-4 and p["min_lr"] == 6e-5 and list(p["betas"]) == [0.9, 0.95]
    assert p["grad_clip"] == 1.0 and p["dtype"] == "bfloat16" and p["device"] == "cuda"
    assert launch.grad_accum_steps(p["global_batch"], p["batch_size"], p["nproc_per_node"]) >= 1
    spec = launch.lm_spec(
        dataset=p["dataset"],
        vocab_size=p["vocab_size"],
        n_layer=p["n_layer"],
        n_head=p["n_head"],
        n_embd=p["n_embd"],
        block_size=p["block_size"],
        batch_size=p["batch_size"],
        lr=p["lr"],
    )
    n_params = (costs.gpt_flops_per_token(spec["model"]) - 12 * 12 * 768 * 1024) / 6
    assert 123e6 < n_params < 125e6  # GPT-2 small: 124M without position embeddings
    assert yaml.safe_load((root / "gpt2_table2.yaml").read_text())["paper"]["device"] == "cuda"
    t2 = yaml.safe_load((root / "gpt2_table2.yaml").read_text())["paper"]
    assert t2["n_probes"] == 50 and t2["n_batches"] * p["batch_size"] == 7680
