"""Experiment orchestration (adamlinf.runs): runs, resume/skip, tuned-lr choice, Hessian
tables of final checkpoints, and the paper-scale cost arithmetic."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from adamlinf import runs
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
