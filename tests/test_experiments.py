"""Experiment orchestration (adamlinf.experiments): runs, resume/skip, tuned-lr choice, Hessian
tables of final checkpoints, and the paper-scale cost arithmetic."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from adamlinf import experiments as ex
from adamlinf import runs
from adamlinf.studies import costs
from adamlinf.data import text


@pytest.fixture(scope="module")
def pydoc_ready():
    try:
        text.check_prepared("pydoc")
    except FileNotFoundError:
        text.prepare("pydoc")


def tiny(optimizer="adam", lr=1e-2, **train):
    kw = dict(max_iters=6, warmup_iters=1, eval_interval=3, progress=False)
    kw.update(train)
    return runs.lm_spec(dataset="pydoc", n_layer=1, n_head=2, n_embd=8, block_size=8, batch_size=2,
                      eval_iters=1, optimizer=optimizer, lr=lr, **kw)


def test_run_specs_end_to_end_skips_and_resumes(tmp_path, pydoc_ready, monkeypatch):
    specs = {"adam": tiny("adam", tags={"setting": "default"}), "rot": tiny("rotated_adam")}
    df = runs.run_specs(specs, tmp_path)
    assert set(df.run) == {"adam", "rot"}
    assert set(df.optimizer) == {"adam", "rotated_adam"}
    assert (df.lr == 1e-2).all() and "lr_t" in df.columns
    assert df.groupby("run").iter.max().tolist() == [6, 6]
    assert (df[df.run == "adam"].setting == "default").all()
    # the trainer's schedule: warmup 1 then cosine from 1e-2 to 1e-3 at iteration 6
    lr_t = df[df.run == "adam"].dropna(subset=["lr_t"]).set_index("iter").lr_t
    assert lr_t[0] == pytest.approx(5e-3) and lr_t[1] == pytest.approx(1e-2)
    assert runs.is_complete(tmp_path / "adam", specs["adam"])
    assert set(df.attrs["wall_time_s"]) == {"adam", "rot"}

    # complete runs are skipped: the trainer is not called again and the metrics come back equal
    def boom(*a, **k):
        raise AssertionError("trainer called for a complete run")

    monkeypatch.setattr(runs, "run", boom)
    again = runs.run_specs(specs, tmp_path)
    pd.testing.assert_frame_equal(df.reset_index(drop=True), again.reset_index(drop=True))
    assert again.attrs["wall_time_s"] == {}
    # a changed spec is refused with on_change="error" (and would be retrained by default)
    changed = {"adam": tiny("adam", lr=2e-2)}
    with pytest.raises(ValueError, match="different spec"):
        runs.run_specs(changed, tmp_path, on_change="error")
    monkeypatch.undo()

    # an interrupted run (stopped at iteration 3, no completion marker) is resumed by the trainer
    # and ends on the same losses as the uninterrupted one
    stopped = tiny("adam", tags={"setting": "default"}, stop_iter=3)
    runs.run({**{k: v for k, v in stopped.items() if k != "tags"},
              "train": {**stopped["train"], "out_dir": str(tmp_path / "again")}})
    resumed = runs.run_specs({"again": specs["adam"]}, tmp_path)
    a = df[df.run == "adam"].train_loss.dropna().to_numpy()
    b = resumed.train_loss.dropna().to_numpy()
    np.testing.assert_allclose(b, a, rtol=1e-6)


def test_lr_grid_names_and_min_lr_ratio(tmp_path, pydoc_ready):
    base = tiny("sgd", lr=0.5, min_lr=0.05, max_iters=2, eval_interval=0)
    df = runs.lr_grid(base, {"sgd": [0.1, 0.3]}, tmp_path)
    assert sorted(df.run.unique()) == ["sgd_lr1.0e-01", "sgd_lr3.0e-01"]
    saved = json.loads((tmp_path / "sgd_lr3.0e-01" / runs.COMPLETE_FILE).read_text())["spec"]
    assert saved["train"]["lr"] == 0.3 and saved["train"]["min_lr"] == pytest.approx(0.03)
    assert df.grid.all()
    with pytest.raises(ValueError):
        runs.lr_grid(base, {"sgd": [0.0]}, tmp_path)


def _synthetic():
    it = np.arange(20)
    rows = []
    for run, opt, lr, losses in [
        ("a1", "adam", 1e-3, 3.0 - 0.05 * it),                       # final mean of last 2: 2.075
        ("a2", "adam", 3e-3, 3.0 - 0.06 * it),                       # 1.89: the best adam
        ("a3", "adam", 1e-2, np.where(it < 15, 1.0, np.nan)),         # diverged (NaN from iteration 15)
        ("s1", "sgd", 0.1, np.full(20, 2.5)),
        ("s2", "sgd", 1.0, np.r_[np.full(18, 1.0), 2.4, 2.6]),        # 2.5 over the last 2 rows
    ]:
        for i, loss in zip(it, losses):
            rows.append({"run": run, "optimizer": opt, "lr": lr, "iter": i, "lr_t": lr, "train_loss": loss})
        rows.append({"run": run, "optimizer": opt, "lr": lr, "iter": 20, "val_loss": 1.0})  # final eval row
    return pd.DataFrame(rows)


def test_best_runs_picks_the_lowest_final_smoothed_loss():
    df = _synthetic()
    fin = ex.final_metrics(df, window=2).set_index("run")
    assert fin.loc["a1", "final_train_loss"] == pytest.approx((2.10 + 2.05) / 2)
    assert fin.loc["a2", "final_train_loss"] == pytest.approx((1.92 + 1.86) / 2)
    assert fin.loc["a3", "diverged"] and math.isinf(fin.loc["a3", "final_train_loss"])
    best = ex.best_runs(df, window=2).set_index("optimizer")
    assert best.loc["adam", "run"] == "a2" and best.loc["adam", "lr"] == 3e-3
    assert best.loc["adam", "n_tried"] == 3
    # a tie (2.5 vs 2.5) keeps the first run listed; the window matters: over the last row s1 wins
    assert best.loc["sgd", "run"] == "s1"
    assert ex.best_runs(df, window=1).set_index("optimizer").loc["sgd", "run"] == "s1"
    assert ex.best_runs(df, window=3).set_index("optimizer").loc["sgd", "run"] == "s2"  # (1+2.4+2.6)/3=2.0
    # default window: the last 5% of rows (1 of 20)
    assert ex.final_metrics(df).set_index("run").loc["a1", "final_train_loss"] == pytest.approx(2.05)
    with pytest.raises(ValueError):
        ex.final_metrics(df, metric="nope")


def _frame(train_loss, val_loss, lr_t=True):
    """A run's metrics as run_specs returns them: training rows (lr_t, iter_time), eval rows every
    5 iterations, a final eval-only row; NaN stands for what CSV reads back as missing."""
    n = len(train_loss)
    rows = []
    for i, loss in enumerate(train_loss):
        row = {"run": "r", "optimizer": "adam", "lr": 1e-3, "iter": i, "iter_time": 0.1, "train_loss": loss}
        if lr_t:
            row["lr_t"] = 1e-3
        if i % 5 == 0:
            row["val_loss"] = loss
        rows.append(row)
    rows.append({"run": "r", "optimizer": "adam", "lr": 1e-3, "iter": n, "val_loss": val_loss})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("lr_t", [True, False])
def test_divergence_is_never_scored_on_earlier_finite_values(lr_t):
    fine = [3.0 - 0.1 * i for i in range(10)]
    ok = ex.final_metrics(_frame(fine, 2.0, lr_t), window=2).iloc[0]
    assert not ok.diverged and ok.final_train_loss == pytest.approx((2.2 + 2.1) / 2)
    cases = {
        "NaN mid-run (reads back as missing)": fine[:6] + [np.nan] * 4,
        "one NaN in the middle, finite around it": fine[:5] + [np.nan] + fine[6:],
        "inf": fine[:9] + [np.inf],
    }
    for why, losses in cases.items():
        fin = ex.final_metrics(_frame(losses, np.nan, lr_t), window=2).iloc[0]
        assert fin.diverged and math.isinf(fin.final_train_loss), why
        val = ex.final_metrics(_frame(losses, np.nan, lr_t), metric="val_loss", window=1).iloc[0]
        assert val.diverged and math.isinf(val.final_val_loss), why
    # the last update made the model non-finite: every training loss is finite, the final eval is not
    last = ex.final_metrics(_frame(fine, np.nan, lr_t), window=2).iloc[0]
    assert last.diverged and math.isinf(last.final_train_loss)
    # a diverged run with the lowest finite losses before it blew up is not picked as the tuned run
    good = _frame(fine, 2.0, lr_t)
    bad = _frame([1.0] * 8 + [np.nan] * 2, np.nan, lr_t).assign(run="bad", lr=1e-2)
    best = ex.best_runs(pd.concat([bad, good], ignore_index=True), window=2).iloc[0]
    assert best.run == "r" and not best.diverged and best.n_tried == 2


def test_grad_accum_for_the_paper_batch_on_several_devices():
    # 480 sequences per step, 12 per device and micro step (the paper/nanoGPT config)
    assert [runs.grad_accum_steps(480, 12, n) for n in (1, 2, 4, 8)] == [40, 20, 10, 5]
    for n in (1, 2, 4, 8):
        assert n * runs.grad_accum_steps(480, 12, n) * 12 == 480
    with pytest.raises(ValueError, match="not a multiple.*batch_size 10 works"):
        runs.grad_accum_steps(480, 12, 16)  # 480 / 192 = 2.5
    with pytest.raises(ValueError, match="not a multiple"):
        runs.grad_accum_steps(480, 12, 3)
    with pytest.raises(ValueError, match="not a multiple"):
        runs.grad_accum_steps(16, 32, 1)  # micro batch larger than the global batch
    with pytest.raises(ValueError, match=">= 1"):
        runs.grad_accum_steps(480, 12, 0)
    assert runs.grad_accum_steps(16, 16, 1) == 1


def test_paper_parameters_match_the_paper():
    import yaml
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "params"
    p = yaml.safe_load((root / "gpt2_figure1.yaml").read_text())["paper"]
    assert (p["n_layer"], p["n_head"], p["n_embd"], p["block_size"]) == (12, 12, 768, 1024)
    assert p["dataset"] == "openwebtext" and p["vocab_size"] == 50304
    assert p["global_batch"] == 480 and p["max_iters"] == 100_000 and p["warmup_iters"] == 2000
    assert p["lr"] == 6e-4 and p["min_lr"] == 6e-5 and list(p["betas"]) == [0.9, 0.95]
    assert p["grad_clip"] == 1.0 and p["dtype"] == "bfloat16" and p["device"] == "cuda"
    assert runs.grad_accum_steps(p["global_batch"], p["batch_size"], p["nproc_per_node"]) >= 1
    spec = runs.lm_spec(dataset=p["dataset"], vocab_size=p["vocab_size"], n_layer=p["n_layer"],
                      n_head=p["n_head"], n_embd=p["n_embd"], block_size=p["block_size"],
                      batch_size=p["batch_size"], lr=p["lr"])
    n_params = (costs.gpt_flops_per_token(spec["model"]) - 12 * 12 * 768 * 1024) / 6
    assert 123e6 < n_params < 125e6  # GPT-2 small: 124M without position embeddings
    for name in ("gpt2_table2", "gpt2_figure3"):
        assert yaml.safe_load((root / f"{name}.yaml").read_text())["paper"]["device"] == "cuda"
    t2 = yaml.safe_load((root / "gpt2_table2.yaml").read_text())["paper"]
    assert t2["n_probes"] == 50 and t2["n_batches"] * p["batch_size"] == 7680


def test_table_layout_and_ordering_check():
    tidy = pd.DataFrame([
        {"run": "adam", "optimizer": "adam", "quantity": "l11_per_dim", "hessian": "H", "value": 1.0},
        {"run": "adam", "optimizer": "adam", "quantity": "spectral_norm", "hessian": "H", "value": 9.0},
        {"run": "ada", "optimizer": "adasgd", "quantity": "l11_per_dim", "hessian": "H", "value": 0.5},
        {"run": "ada", "optimizer": "adasgd", "quantity": "spectral_norm", "hessian": "H", "value": 4.0},
        {"run": "rot", "optimizer": "rotated_adam", "quantity": "l11_per_dim", "hessian": "R^T H R", "value": 7.0},
        {"run": "rot", "optimizer": "rotated_adam", "quantity": "spectral_norm", "hessian": "H", "value": 3.0},
    ])
    t = ex.table_layout(tidy).set_index("Quantity")
    assert t.loc["‖H‖₂", "Estimated value"] == 4.0 and t.loc["‖H‖₂", "Optimizer"] == "AdaSGD"
    assert t.loc["‖RᵀHR‖₁,₁/d", "Estimated value"] == 7.0
    assert t.loc["‖H‖₁,₁/d"].shape[0] == 2  # Adam's row and AdaSGD's comparison row
    finals = pd.DataFrame({"run": ["adam", "ada", "rot"], "final_train_loss": [2.0, 2.5, 2.7]})
    chk = ex.ordering_check(ex.table_layout(tidy), finals)
    assert chk.run.tolist() == ["adam", "ada", "rot"] and chk.attrs["agrees"]
    assert chk.attrs["pairs"]["smaller norm is faster"].all() and len(chk.attrs["pairs"]) == 3
    finals.loc[2, "final_train_loss"] = 2.1  # rotated Adam second by loss but last by norm
    chk = ex.ordering_check(ex.table_layout(tidy), finals)
    assert not chk.attrs["agrees"]
    pairs = chk.attrs["pairs"].set_index(["faster", "slower"])["smaller norm is faster"]
    # by loss: Adam 2.0 < Rotated 2.1 < AdaSGD 2.5; by norm: Adam 1 < AdaSGD 4 < Rotated 7
    assert pairs.to_dict() == {("Adam", "Rotated Adam"): True, ("Adam", "AdaSGD"): True,
                               ("Rotated Adam", "AdaSGD"): False}


def test_claims_table():
    c = ex.claims_table({"adam": 2.0, "adasgd": 2.2, "sgd": 1.9},
                        [("adam", "adasgd", "Adam beats AdaSGD"), ("adam", "sgd", "Adam beats SGD")])
    assert c["holds here"].tolist() == [True, False]
    assert c["better (paper)"].tolist() == ["Adam", "Adam"] and c["worse (paper)"].tolist() == ["AdaSGD", "SGD"]
    with pytest.raises(ValueError, match="needs values"):
        ex.claims_table({"adam": 1.0}, [("adam", "sgd", "x")])
    # one optimizer across settings (Figure 3); a diverged (inf) run is worse than any finite one
    vals = {("adam", "default"): 2.0, ("adam", "larger"): 1.8, ("sgd", "larger"): math.inf}
    c = ex.claims_table(vals, [(("adam", "larger"), ("adam", "default"), "Adam improves", "larger"),
                               (("adam", "larger"), ("sgd", "larger"), "Adam beats SGD", "larger")])
    assert c["holds here"].tolist() == [True, True] and c.group.tolist() == ["larger", "larger"]
    assert c["better (paper)"].iloc[0] == "Adam (larger)"


def test_hessian_table_of_final_checkpoints(tmp_path, pydoc_ready):
    specs = {o: tiny(o, max_iters=3, eval_interval=0) for o in ("adam", "adasgd", "rotated_adam")}
    runs.run_specs(specs, tmp_path)
    tidy = ex.hessian_table({o: tmp_path / o for o in specs}, n_probes=4, seed=0, n_batches=2,
                            lanczos_iters=8)
    assert len(tidy) == 6 and tidy.batch_digest.nunique() == 1  # one fixed batch set for all runs
    assert (tidy.value > 0).all() and (tidy.d == tidy.d.iloc[0]).all()
    rot = tidy[tidy.optimizer == "rotated_adam"].set_index("quantity")
    assert rot.loc["l11_per_dim", "hessian"] == "R^T H R"
    # the same estimator at the same point: a different seed gives a different (noisy) estimate,
    # the same seed the same one
    again = ex.hessian_table({"adam": tmp_path / "adam"}, n_probes=4, seed=0, n_batches=2,
                             spectral=False, verbose=False)
    assert again.value.iloc[0] == pytest.approx(tidy.set_index(["run", "quantity"]).loc[("adam", "l11_per_dim"), "value"])
    # a run on another data spec would be measured on other batches: refused
    other = runs.lm_spec(dataset="pydoc", n_layer=1, n_head=2, n_embd=8, block_size=8, batch_size=3, eval_iters=1,
                       optimizer="adam", lr=1e-2, max_iters=1, eval_interval=0, progress=False)
    runs.run_specs({"other": other}, tmp_path, verbose=False)
    with pytest.raises(ValueError, match="ONE fixed batch set"):
        ex.hessian_table({"adam": tmp_path / "adam", "other": tmp_path / "other"}, n_probes=1,
                         n_batches=1, spectral=False, verbose=False)


def test_launch_command_one_node():
    cmd = runs.launch_command(runs.with_train(tiny(), out_dir="runs/adam"), 4)
    assert cmd[:3] == ["torchrun", "--standalone", "--nproc_per_node=4"]
    assert cmd[-2:] == ["--spec", "runs/adam/spec.json"]  # the file adamlinf.runs.run writes


def test_image_spec_sets_iterations_for_the_epochs():
    """Section 4.3: a run sees `epochs` passes over the training set (20 epochs = 4000 steps at
    batch 256 on CIFAR-10's 50,000 images); here on the digits stand-in."""
    from adamlinf.data import build_task

    spec = runs.image_spec(source="digits", batch_size=32, epochs=3, width=8, blocks=(1, 1, 1, 1),
                         image_size=16, evals_per_epoch=2, optimizer="adam", lr=1e-2, betas=(0.9, 0.99))
    n_train = build_task(spec["data"]).num_train
    assert spec["train"]["max_iters"] == round(3 * n_train / 32)
    assert spec["train"]["eval_interval"] == spec["train"]["max_iters"] // 6
    assert spec["tags"] == {"batch_size": 32, "max_iters": spec["train"]["max_iters"]}
    assert spec["model"] == {"kind": "resnet18", "width": 8, "blocks": [1, 1, 1, 1]}
    assert spec["train"]["betas"] == [0.9, 0.99] and spec["data"]["image_size"] == 16
    grid = runs.grid_specs(spec, {"sgd": [0.1, 1.0]}, name_fmt="bs32_{optimizer}_lr{lr:.1e}")
    assert sorted(grid) == ["bs32_sgd_lr1.0e-01", "bs32_sgd_lr1.0e00"]
