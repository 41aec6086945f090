"""The training loop (adamlinf.train): schedule, every optimizer, metrics files, loss decrease on
the pydoc corpus, exact resume, DDP (2 gloo processes) == 1 process with the same global batch,
load_final, clear errors."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from adamlinf.data import DataNotFoundError
from adamlinf.data import text
from adamlinf.runs import run
from adamlinf.train import OPTIMIZERS, TrainConfig, build_run, load_final, lr_at, train


pytestmark = pytest.mark.usefixtures("one_thread")


MODEL = {"kind": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 16}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    text.prepare_pydoc(root=r)
    return str(r)


def spec(root, out_dir, block_size=16, eval_iters=2, model=None, eval_batch_size=4, **train_kw):
    t = {"out_dir": str(out_dir), "lr": 3e-3, "max_iters": 6, "batch_size": 4, "progress": False}
    t.update(train_kw)
    return {"model": dict(model or MODEL),
            "data": {"kind": "lm", "dataset": "pydoc", "root": root, "block_size": block_size,
                     "eval_iters": eval_iters, "eval_batch_size": eval_batch_size},
            "train": t}


def test_schedule_values():
    cfg = TrainConfig(out_dir="x", lr=1.0, min_lr=0.1, warmup_iters=4, max_iters=14)
    assert [lr_at(i, cfg) for i in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr_at(4, cfg) == pytest.approx(1.0)
    assert lr_at(9, cfg) == pytest.approx(0.55)                      # cosine midpoint
    assert lr_at(6, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.2)))
    assert lr_at(14, cfg) == lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(7, TrainConfig(out_dir="x", lr=2.0, max_iters=10)) == pytest.approx(
        0.2 + 0.9 * (1 + math.cos(math.pi * 0.7)))                   # min_lr defaults to lr/10
    const = TrainConfig(out_dir="x", lr=1.0, warmup_iters=1, schedule="constant", max_iters=10)
    assert [lr_at(i, const) for i in (0, 1, 9)] == pytest.approx([0.5, 1.0, 1.0])
    for bad in ({"optimizer": "lion"}, {"schedule": "linear"}, {"dtype": "int8"}, {"lr": 0.0},
                {"max_iters": 0}, {"warmup_iters": 5, "lr_decay_iters": 5}):
        with pytest.raises(ValueError):
            TrainConfig(out_dir="x", **bad)


def test_loss_decreases_on_pydoc(root, tmp_path):
    df = run(spec(root, tmp_path, block_size=32, eval_iters=4,
                  model={"kind": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 32},
                  max_iters=30, batch_size=8, warmup_iters=3, eval_interval=15))
    val = df["val_loss"].dropna().to_numpy()
    assert len(val) == 3 and val[0] == pytest.approx(math.log(256), abs=0.2)
    assert val[-1] < val[0] - 1.0                               # 5.5 -> ~3.8 nats per byte
    losses = df["train_loss"].dropna().to_numpy()
    assert losses[-5:].mean() < losses[:5].mean() - 1.0
    # metrics files: jsonl and csv hold the same table
    csv = pd.read_csv(tmp_path / "metrics.csv")
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(csv) == len(rows) == len(df) == 31
    assert list(csv.columns[:6]) == ["iter", "samples", "tokens", "lr", "train_loss", "grad_norm"]
    np.testing.assert_allclose(csv["train_loss"].dropna(), [r["train_loss"] for r in rows if "train_loss" in r])
    assert csv["tokens"].iloc[-1] == 30 * 8 * 32 and csv["iter"].iloc[-1] == 30


@pytest.fixture(scope="module")
def first_loss(root, tmp_path_factory):
    """The loss of the first batch at the initial model (what every optimizer's run starts at)."""
    return run(spec(root, tmp_path_factory.mktemp("ref"), max_iters=1))["train_loss"].iloc[0]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_runs(root, tmp_path, name, first_loss):
    lr = 0.1 if name in ("sgd",) else 1e-3
    df = run(spec(root, tmp_path, lr=lr, max_iters=3, grad_clip=0.5, optimizer=name))
    assert np.isfinite(df["train_loss"].dropna()).all() and len(df) == 4
    # every optimizer starts from the same initial model (rotated Adam: x0 = R R^T x0)
    assert df["train_loss"].iloc[0] == pytest.approx(first_loss, abs=1e-5)
    assert df["grad_norm"].iloc[:3].notna().all() and df["lr"].iloc[:3].tolist() == pytest.approx(
        [lr, lr * (0.1 + 0.45 * (1 + math.cos(math.pi / 3))), lr * (0.1 + 0.45 * (1 + math.cos(2 * math.pi / 3)))])
    model, task, cfg, rotation = load_final(tmp_path)
    assert cfg.optimizer == name and (rotation is not None) == (name == "rotated_adam")
    # the loaded model is the final one: its evaluation reproduces the logged final val_loss
    assert task.evaluate(model)["val_loss"] == pytest.approx(df["val_loss"].iloc[-1], abs=1e-6)


@pytest.mark.parametrize("name", ["adam", "rotated_adam"])
def test_exact_resume(root, tmp_path, name):
    kw = dict(optimizer=name, max_iters=8, grad_accum=2, warmup_iters=2, eval_interval=3,
              checkpoint_interval=2)
    full = run(spec(root, tmp_path / "full", **kw))
    first = run(spec(root, tmp_path / "cut", stop_iter=5, **kw))
    assert first["iter"].max() == 4
    with pytest.raises(ValueError, match="has not finished"):
        load_final(tmp_path / "cut")
    resumed = run(spec(root, tmp_path / "cut", **kw))
    cols = ["iter", "lr", "train_loss", "grad_norm", "val_loss", "train_eval_loss", "tokens"]
    pd.testing.assert_frame_equal(full[cols], resumed[cols], check_exact=True)
    assert len(pd.read_csv(tmp_path / "cut" / "metrics.csv")) == len(full)
    # running a finished run again trains nothing and returns its table
    pd.testing.assert_frame_equal(run(spec(root, tmp_path / "full", **kw)), full)
    a, b = load_final(tmp_path / "full")[0], load_final(tmp_path / "cut")[0]
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n
    with pytest.raises(ValueError, match="different spec"):
        run(spec(root, tmp_path / "cut", **{**kw, "lr": 1e-2}))


def test_ddp_two_gloo_processes_equal_one_process(root, tmp_path):
    """2 ranks x batch 2 (torchrun, gloo) == 1 process x 2 micro steps x batch 2 == 1 process x batch 4."""
    kw = dict(max_iters=3, eval_interval=0, optimizer="adam")
    ddp = run(spec(root, tmp_path / "ddp", batch_size=2, **kw), nproc_per_node=2)
    accum = run(spec(root, tmp_path / "accum", batch_size=2, grad_accum=2, **kw))
    big = run(spec(root, tmp_path / "big", batch_size=4, **kw))
    for other in (accum, big):
        np.testing.assert_allclose(ddp["train_loss"].dropna(), other["train_loss"].dropna(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(ddp["val_loss"].dropna(), other["val_loss"].dropna(), rtol=0, atol=1e-5)
    assert (ddp["samples"] == accum["samples"]).all()
    final = [load_final(tmp_path / d)[0] for d in ("ddp", "accum")]
    for p, q in zip(final[0].parameters(), final[1].parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=0)


def test_clear_errors(root, tmp_path):
    with pytest.raises(DataNotFoundError, match="python -m adamlinf.data.text pydoc"):
        run(spec(str(tmp_path / "nodata"), tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # failed before building or training anything
    model, task, cfg, _ = build_run(spec(root, tmp_path / "o2"))
    with pytest.raises(ValueError, match="batch_size"):
        train(model, task, TrainConfig(out_dir=str(tmp_path / "o2"), batch_size=5))
    with pytest.raises(FileNotFoundError):
        load_final(tmp_path / "nothing")
    with pytest.raises(ValueError, match="spec"):
        run({"model": MODEL})


def test_bfloat16_autocast_runs_on_cpu(root, tmp_path, first_loss):
    df = run(spec(root, tmp_path, max_iters=2, dtype="bfloat16"))
    losses = df["train_loss"].dropna().to_numpy()
    assert np.isfinite(losses).all()
    assert losses[0] == pytest.approx(first_loss, abs=0.05)  # bf16 rounding only
    model, _, cfg, _ = load_final(tmp_path)
    assert cfg.dtype == "bfloat16" and next(model.parameters()).dtype == torch.float32
