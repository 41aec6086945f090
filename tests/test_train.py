"""The training loop (adamlinf.train): schedule, every optimizer, metrics files, loss decrease on
the pydoc corpus, exact resume, DDP (2 gloo processes) == 1 process with the same global batch,
load_final, clear errors."""

import hashlib
import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from adamlinf.data import DataNotFoundError, text
from adamlinf.launch import run
from adamlinf.train import (
    EXECUTION_FIELDS,
    OPTIMIZERS,
    CheckpointError,
    CheckpointWarning,
    TrainConfig,
    _batches,
    _wrap,
    build_run,
    list_checkpoints,
    load_checkpoint,
    load_final,
    lr_at,
    train,
)

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
    return {
        "model": dict(model or MODEL),
        "data": {
            "kind": "lm",
            "dataset": "pydoc",
            "root": root,
            "block_size": block_size,
            "eval_iters": eval_iters,
            "eval_batch_size": eval_batch_size,
        },
        "train": t,
    }


def test_schedule_values():
    cfg = TrainConfig(out_dir="x", lr=1.0, min_lr=0.1, warmup_iters=4, max_iters=14)
    assert [lr_at(i, cfg) for i in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr_at(4, cfg) == pytest.approx(1.0)
    assert lr_at(9, cfg) == pytest.approx(0.55)  # cosine midpoint
    assert lr_at(6, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.2)))
    assert lr_at(14, cfg) == lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(7, TrainConfig(out_dir="x", lr=2.0, max_iters=10)) == pytest.approx(
        0.2 + 0.9 * (1 + math.cos(math.pi * 0.7))
    )  # min_lr defaults to lr/10
    const = TrainConfig(out_dir="x", lr=1.0, warmup_iters=1, schedule="constant", max_iters=10)
    assert [lr_at(i, const) for i in (0, 1, 9)] == pytest.approx([0.5, 1.0, 1.0])
    for bad in (
        {"optimizer": "lion"},
        {"schedule": "linear"},
        {"dtype": "int8"},
        {"lr": 0.0},
        {"max_iters": 0},
        {"warmup_iters": 5, "lr_decay_iters": 5},
    ):
        with pytest.raises(ValueError):
            TrainConfig(out_dir="x", **bad)


def test_loss_decreases_on_pydoc(root, tmp_path):
    df = run(
        spec(
            root,
            tmp_path,
            block_size=32,
            eval_iters=4,
            model={"kind": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 32},
            max_iters=30,
            batch_size=8,
            warmup_iters=3,
            eval_interval=15,
        )
    )
    val = df["val_loss"].dropna().to_numpy()
    assert len(val) == 3 and val[0] == pytest.approx(math.log(256), abs=0.2)
    assert val[-1] < val[0] - 1.0  # 5.5 -> ~3.8 nats per byte
    losses = df["train_loss"].dropna().to_numpy()
    assert losses[-5:].mean() < losses[:5].mean() - 1.0
    # metrics files: jsonl and csv hold the same table
    csv = pd.read_csv(tmp_path / "metrics.csv")
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(csv) == len(rows) == len(df) == 31
    assert list(csv.columns[:6]) == ["iter", "samples", "tokens", "lr", "train_loss", "grad_norm"]
    np.testing.assert_allclose(
        csv["train_loss"].dropna(), [r["train_loss"] for r in rows if "train_loss" in r]
    )
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
        [
            lr,
            lr * (0.1 + 0.45 * (1 + math.cos(math.pi / 3))),
            lr * (0.1 + 0.45 * (1 + math.cos(2 * math.pi / 3))),
        ]
    )
    model, task, cfg, rotation = load_final(tmp_path)
    assert cfg.optimizer == name and (rotation is not None) == (name == "rotated_adam")
    # the loaded model is the final one: its evaluation reproduces the logged final val_loss
    assert task.evaluate(model)["val_loss"] == pytest.approx(df["val_loss"].iloc[-1], abs=1e-6)


@pytest.mark.parametrize("name", ["adam", "rotated_adam"])
def test_exact_resume(root, tmp_path, name):
    kw = dict(
        optimizer=name, max_iters=8, grad_accum=2, warmup_iters=2, eval_interval=3, checkpoint_interval=2
    )
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
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
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
        np.testing.assert_allclose(
            ddp["train_loss"].dropna(), other["train_loss"].dropna(), rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(ddp["val_loss"].dropna(), other["val_loss"].dropna(), rtol=0, atol=1e-5)
    assert (ddp["samples"] == accum["samples"]).all()
    final = [load_final(tmp_path / d)[0] for d in ("ddp", "accum")]
    for p, q in zip(final[0].parameters(), final[1].parameters(), strict=True):
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


# ------------------------------------------------------------------------------------------------
# checkpoints: periodic, on interruption, checksummed, the newest valid one is used
# ------------------------------------------------------------------------------------------------
CUT = dict(max_iters=8, eval_interval=3, warmup_iters=2, checkpoint_minutes=0)


class Interrupting:
    """A task whose ``batch("train", step, micro)`` raises KeyboardInterrupt (Ctrl-C in the data path)."""

    def __init__(self, task, step, micro=0):
        self.task, self.at = task, (step, micro)

    def __getattr__(self, name):
        return getattr(self.task, name)

    def batch(self, split, step, micro_step=0, rank=0, world=1):
        if split == "train" and (step, micro_step) == self.at:
            raise KeyboardInterrupt
        return self.task.batch(split, step, micro_step, rank, world)


def test_checkpoints_are_on_by_default():
    cfg = TrainConfig(out_dir="x")
    assert cfg.checkpoint_interval > 0 and cfg.checkpoint_minutes > 0 and cfg.keep_checkpoints >= 1


@pytest.mark.parametrize("micro, dropout", [(0, 0.0), (1, 0.1)])
def test_interrupt_leaves_a_resumable_checkpoint(root, tmp_path, micro, dropout):
    """Ctrl-C at step 5 of 8 (no periodic checkpoint due) leaves ckpt-00000005.pt; resuming ends
    on exactly the parameters and metrics of an uninterrupted run, also when the interrupted
    iteration had drawn dropout masks already (the RNG state saved is that of its start)."""
    kw = dict(grad_accum=2, checkpoint_interval=0, **CUT)
    model = {**MODEL, "dropout": dropout}
    full = run(spec(root, tmp_path / "full", model=model, **kw))
    net, task, cfg, s = build_run(spec(root, tmp_path / "cut", model=model, **kw))
    with pytest.raises(KeyboardInterrupt):
        train(net, Interrupting(task, 5, micro), cfg, spec=s)
    names = sorted(p.name for p in (tmp_path / "cut").iterdir())
    assert "ckpt-00000005.pt" in names and "ckpt-00000005.pt.sha256" in names
    assert load_checkpoint(tmp_path / "cut" / "ckpt-00000005.pt")["iter"] == 5
    resumed = run(spec(root, tmp_path / "cut", model=model, **kw))
    pd.testing.assert_frame_equal(
        full.drop(columns=["iter_time", "time"]),
        resumed.drop(columns=["iter_time", "time"]),
        check_exact=True,
    )
    final = load_final(tmp_path / "full")[0].parameters(), load_final(tmp_path / "cut")[0].parameters()
    for p, q in zip(*final, strict=True):
        assert torch.equal(p, q)


def test_periodic_checkpoints_by_iteration_and_by_time_keep_the_last_k(root, tmp_path):
    run(spec(root, tmp_path / "it", stop_iter=7, checkpoint_interval=2, keep_checkpoints=2, **CUT))
    assert [p.name for p in list_checkpoints(tmp_path / "it")] == ["ckpt-00000007.pt", "ckpt-00000006.pt"]
    # by wall time: a tiny period makes every flush (every iteration here) a checkpoint
    run(
        spec(
            root,
            tmp_path / "time",
            stop_iter=5,
            checkpoint_interval=0,
            keep_checkpoints=3,
            **{**CUT, "checkpoint_minutes": 1e-9},
        )
    )
    assert [p.name for p in list_checkpoints(tmp_path / "time")] == [
        "ckpt-00000005.pt",
        "ckpt-00000004.pt",
        "ckpt-00000003.pt",
    ]
    for path in list_checkpoints(tmp_path / "time"):
        digest = (path.parent / (path.name + ".sha256")).read_text().split()[0]
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not list((tmp_path / "time").glob("*.tmp"))  # atomic writes leave no temporary files


def _flip(path):
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = bytes(b ^ 0xFF for b in raw[mid : mid + 64])
    path.write_bytes(bytes(raw))


def _with_sha(path, data):
    path.write_bytes(data)
    (path.parent / (path.name + ".sha256")).write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


def _wrong_dict(path):
    buf = io.BytesIO()
    torch.save({"model": {}, "note": "not a checkpoint"}, buf)
    _with_sha(path, buf.getvalue())


DAMAGE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "damaged"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "damaged"),
    "random bytes, matching checksum": (
        lambda p: _with_sha(p, np.random.default_rng(0).bytes(4096)),
        "cannot be read",
    ),
    "wrong dict": (_wrong_dict, "not a checkpoint"),
    "64 bytes flipped": (_flip, "damaged"),
    "no checksum file": (lambda p: (p.parent / (p.name + ".sha256")).unlink(), "no checksum"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_checkpoint_is_named_and_the_previous_one_used(root, tmp_path, case):
    kw = dict(checkpoint_interval=2, keep_checkpoints=3, **CUT)
    full = run(spec(root, tmp_path / "full", **kw))
    run(spec(root, tmp_path / "cut", stop_iter=6, **kw))
    newest = tmp_path / "cut" / "ckpt-00000006.pt"
    damage, why = DAMAGE[case]
    damage(newest)
    with pytest.raises(CheckpointError, match=why):
        load_checkpoint(newest)
    with pytest.warns(CheckpointWarning, match=rf"ckpt-00000006\.pt.*{why}.*ckpt-00000004\.pt"):
        resumed = run(spec(root, tmp_path / "cut", **kw))
    pd.testing.assert_frame_equal(
        full.drop(columns=["iter_time", "time"]),
        resumed.drop(columns=["iter_time", "time"]),
        check_exact=True,
    )
    assert (tmp_path / "cut" / "ckpt-00000006.pt.damaged").exists() or case == "no checksum file"


def test_all_checkpoints_damaged_is_an_error_naming_them(root, tmp_path):
    run(spec(root, tmp_path, stop_iter=4, checkpoint_interval=2, keep_checkpoints=3, **CUT))
    for path in list_checkpoints(tmp_path):
        _flip(path)
    with pytest.raises(CheckpointError, match=r"no valid checkpoint.*ckpt-00000004\.pt.*ckpt-00000002\.pt"):
        run(spec(root, tmp_path, checkpoint_interval=2, keep_checkpoints=3, **CUT))


# ------------------------------------------------------------------------------------------------
# resume compares the whole spec
# ------------------------------------------------------------------------------------------------
def _with(s, section, **kw):
    s = json.loads(json.dumps(s))
    s[section].update(kw)
    return s


@pytest.mark.parametrize(
    "section, change, line",
    [
        ("data", {"seed": 1}, "data.seed: '<absent>' (checkpoint) -> 1 (now)"),
        ("data", {"batch_size": 2}, "data.batch_size: 4 (checkpoint) -> 2 (now)"),
        ("data", {"eval_iters": 3}, "data.eval_iters: 2 (checkpoint) -> 3 (now)"),
        ("model", {"n_embd": 32}, "model.n_embd: 16 (checkpoint) -> 32 (now)"),
        ("model", {"dropout": 0.1}, "model.dropout: '<absent>' (checkpoint) -> 0.1 (now)"),
        ("train", {"lr": 1e-2}, "train.lr: 0.003 (checkpoint) -> 0.01 (now)"),
        ("train", {"grad_clip": 0.5}, "train.grad_clip: 1.0 (checkpoint) -> 0.5 (now)"),
    ],
)
def test_resume_refuses_another_spec_with_the_diff(root, tmp_path, section, change, line):
    base = spec(root, tmp_path, stop_iter=3, checkpoint_interval=0, **CUT)
    run(base)
    changed = _with(base, section, **change)
    changed["train"].pop("stop_iter")
    if section == "data" and "batch_size" in change:
        changed["train"]["batch_size"] = change["batch_size"]
        line = "data.batch_size: 4 (checkpoint) -> 2 (now)"
    with pytest.raises(ValueError, match="different spec") as err:
        run(changed)
    assert line in str(err.value)
    assert len(list_checkpoints(tmp_path)) == 1  # nothing was overwritten


def test_resume_allows_the_execution_fields(root, tmp_path):
    """Evaluation cadence, progress bar, log and checkpoint cadence, compile and the data root do
    not change the trained parameters: a resume with other values gives the same final model."""
    full = run(spec(root, tmp_path / "full", **CUT))
    run(spec(root, tmp_path / "cut", stop_iter=4, checkpoint_interval=0, **CUT))
    other = spec(
        root,
        tmp_path / "cut",
        **{**CUT, "eval_interval": 2},
        progress=True,
        log_interval=3,
        checkpoint_interval=5,
        keep_checkpoints=1,
        compile=False,
    )
    resumed = run(other)
    np.testing.assert_array_equal(full["train_loss"].dropna(), resumed["train_loss"].dropna())
    assert resumed["val_loss"].iloc[-1] == full["val_loss"].iloc[-1]
    assert EXECUTION_FIELDS >= {"eval_interval", "progress", "log_interval", "checkpoint_interval", "compile"}


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("grad_clip", float("nan")),
        ("grad_clip", -1.0),
        ("grad_clip", "1"),
        ("max_iters", "abc"),
        ("max_iters", 2.5),
        ("seed", "x"),
        ("lr", float("inf")),
        ("lr", float("nan")),
        ("lr", -1e-3),
        ("min_lr", 1.0),
        ("warmup_iters", -1),
        ("checkpoint_minutes", float("inf")),
        ("keep_checkpoints", 0),
        ("progress", "yes"),
        ("compile", 1),
        ("device", 0),
        ("optimizer_kwargs", [1]),
    ],
)
def test_trainconfig_names_the_field_and_the_value(field, value):
    with pytest.raises(
        ValueError,
        match=rf"TrainConfig\.{field}.*{re.escape(repr(value)) if not isinstance(value, tuple) else ''}",
    ):
        TrainConfig(out_dir="x", **{field: value})


def test_integral_floats_are_accepted_as_ints():
    cfg = TrainConfig(out_dir="x", max_iters=100.0, seed=3.0, lr=1)
    assert cfg.max_iters == 100 and isinstance(cfg.max_iters, int) and cfg.lr == 1.0


def test_out_dir_that_is_a_file_is_a_clear_error(root, tmp_path):
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.raises(NotADirectoryError, match=r"out_dir=.*is a file"):
            run(spec(root, out))


# ------------------------------------------------------------------------------------------------
# the hot loop
# ------------------------------------------------------------------------------------------------
def test_losses_reach_the_host_once_per_log_interval(root, tmp_path, monkeypatch):
    """Every iteration gets its row, but the device is read once per ``log_interval`` iterations."""
    kw = dict(
        optimizer="sgd", lr=0.1, max_iters=8, eval_interval=0, checkpoint_interval=0, checkpoint_minutes=0
    )
    every = run(spec(root, tmp_path / "every", log_interval=1, **kw))
    reads = []
    for name in ("item", "tolist", "__float__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(
            torch.Tensor, name, lambda t, *a, _real=real, _n=name: reads.append(_n) or _real(t, *a)
        )
    batched = run(spec(root, tmp_path / "batched", log_interval=4, **kw))
    monkeypatch.undo()
    # 2 flushes (iterations 4 and 8); the evaluations (start, end) read their losses with float()
    assert reads.count("tolist") == 2
    assert reads.count("item") == 0
    pd.testing.assert_frame_equal(
        every.drop(columns=["iter_time", "time"]),
        batched.drop(columns=["iter_time", "time"]),
        check_exact=True,
    )


def test_batches_are_fetched_one_micro_step_ahead_in_order(root):
    """The prefetching order (CUDA's default): batch k+1 is requested before batch k is used, and
    the batches are exactly those of the plain order."""
    _, task, cfg, _ = build_run(spec(root, "unused", grad_accum=2, max_iters=3))
    calls = []

    class Recording:
        def batch(self, split, step, micro_step=0, rank=0, world=1):
            calls.append((step, micro_step))
            return task.batch(split, step, micro_step, rank, world)

    plain = list(_batches(task, cfg, 1, 3, 0, 1, "cpu", torch.float32, ahead=False))
    gen = _batches(Recording(), cfg, 1, 3, 0, 1, "cpu", torch.float32, ahead=True)
    first = next(gen)
    assert calls == [(1, 0), (1, 1)]  # the second batch was fetched before the first is used
    rest = list(gen)
    assert calls == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for a, b in zip(plain, [first, *rest], strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_compile_defaults_to_cuda_only():
    cfg = TrainConfig(out_dir="x")
    assert cfg.compile is None
    model = torch.nn.Linear(2, 2)
    assert _wrap(model, cfg, False, "cpu") == (model, model)  # CPU: unchanged, eager
