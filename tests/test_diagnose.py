"""adamlinf.diagnose against exact Hessians, closed forms and torch.optim.Adam; the command line."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import adamlinf
from adamlinf import hessian, partitions, rotations
from adamlinf.diagnose import diagnose, main, preset, race

pytestmark = pytest.mark.usefixtures("one_thread")

README = Path(__file__).resolve().parents[1] / "README.md"


def _ce(m, b):
    return nn.functional.cross_entropy(m(b[0]), b[1])


def _mlp(dtype=torch.float64, seed=0):
    """A tanh MLP 4-5-3 (d = 43) on a fixed batch of 16 points."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)
    x = torch.randn(16, 4, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (16,), generator=g)
    return model, _ce, [(x, y)]


def _least_squares(n=40, p=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3.0, p, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    model = nn.Linear(p, 1, bias=False).to(torch.float64)
    return model, (lambda m, b: ((m(b[0]).squeeze(-1) - b[1]) ** 2).mean()), [(X, y)], 2 * X.T @ X / n


def test_band_coverage_and_spectral_norm_against_the_exact_hessian():
    model, loss_fn, batches = _mlp()
    H = hessian.exact_hessian(model, loss_fn, batches)
    d = H.shape[0]
    exact_l11 = float(H.abs().sum()) / d
    exact_spec = float(torch.linalg.eigvalsh(H).abs().max())
    covered, covered_rot = [], []
    for seed in range(100):  # 100 seeded repeats of the 90% band
        dg = diagnose(model, loss_fn, batches, seed=seed, rotation=seed < 40, blocks=False, progress=False)
        assert dg.d == d
        assert dg.spectral_norm == pytest.approx(exact_spec, rel=1e-6)
        covered.append(dg.l11_per_dim.lo <= exact_l11 <= dg.l11_per_dim.hi)
        a = dg.advantage
        assert a.value == pytest.approx(dg.spectral_norm / dg.l11_per_dim.value)
        assert a.lo == pytest.approx(dg.spectral_norm / dg.l11_per_dim.hi)
        if seed < 40:  # the rotated estimate: 40 repeats, each with its own rotation
            R = rotations.to_dense(rotations.PermuteRotate(d, k=2, seed=seed, dtype=torch.float64))
            exact_rot = float((R.T @ H @ R).abs().sum()) / d
            covered_rot.append(dg.rotated_l11_per_dim.lo <= exact_rot <= dg.rotated_l11_per_dim.hi)
    print(f"coverage of the 90% band: {np.mean(covered):.2f} (100), rotated {np.mean(covered_rot):.2f} (40)")
    assert np.mean(covered) >= 0.85, np.mean(covered)
    assert np.mean(covered_rot) >= 0.8, np.mean(covered_rot)


def test_least_squares_agrees_with_the_closed_form():
    model, loss_fn, batches, H = _least_squares()
    d = H.shape[0]
    dg = diagnose(model, loss_fn, batches, n_probes=50, block_lanczos_iters=None, progress=False)
    spec = float(torch.linalg.eigvalsh(H).max())
    assert dg.spectral_norm == pytest.approx(spec, rel=1e-6)
    assert dg.l11_per_dim.lo <= float(H.abs().sum()) / d <= dg.l11_per_dim.hi
    # one tensor of d = 6 <= 50 probes: the block is computed exactly from 6 products
    (row,) = dg.blocks.itertuples()
    assert row.exact and row.d == d
    assert row.l11_per_dim == pytest.approx(float(H.abs().sum()) / d, rel=1e-12)
    assert row.spectral_norm == pytest.approx(spec, rel=1e-12)
    with torch.no_grad():
        assert dg.loss == pytest.approx(
            float((model(batches[0][0]).squeeze(-1) - batches[0][1]).pow(2).mean())
        )


def _diag_blocks(H, idx):
    return [H[idx == b][:, idx == b] for b in range(int(idx.max()) + 1)]


def test_blocks_match_the_block_diagonal_part_of_the_exact_hessian():
    model, loss_fn, batches = _mlp()
    H = hessian.exact_hessian(model, loss_fn, batches)
    idx = hessian.hvp(model, loss_fn, batches).tensor_index()
    exact = _diag_blocks(H, idx)
    # every block exact (d_b <= 20): the sum over blocks is the (1,1)-norm of the block diagonal
    dg = diagnose(model, loss_fn, batches, rotation=False, block_probes=20, progress=False)
    assert list(dg.blocks.block) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(dg.blocks.d) == [20, 5, 15, 3]
    assert dg.blocks.exact.all()
    total = float((dg.blocks.d * dg.blocks.l11_per_dim).sum())
    assert total == pytest.approx(sum(float(B.abs().sum()) for B in exact), rel=1e-10)
    for row, B in zip(dg.blocks.itertuples(), exact, strict=True):
        assert row.spectral_norm == pytest.approx(float(torch.linalg.eigvalsh(B).abs().max()), rel=1e-10)
    # probed blocks (d_b > 4 probes... with 40 probes only the two weights): bands and eigsh
    dg = diagnose(
        model, loss_fn, batches, rotation=False, block_probes=12, block_lanczos_iters=None, progress=False
    )
    assert list(dg.blocks.exact) == [False, True, False, True]
    for row, B in zip(dg.blocks.itertuples(), exact, strict=True):
        truth = float(B.abs().sum()) / B.shape[0]
        assert row.lo <= truth <= row.hi
        assert row.spectral_norm == pytest.approx(float(torch.linalg.eigvalsh(B).abs().max()), rel=1e-6)


def test_rows_and_head_partitions_name_their_blocks():
    model, loss_fn, batches = _mlp()
    dg = diagnose(model, loss_fn, batches, partition="rows", rotation=False, n_probes=8, progress=False)
    assert len(dg.blocks) == 5 + 1 + 3 + 1
    assert dg.blocks.block.iloc[0] == "0.weight[0]" and dg.blocks.block.iloc[5] == "0.bias"
    assert int(dg.blocks.d.sum()) == dg.d
    whole = diagnose(
        model, loss_fn, batches, partition=partitions.whole(), rotation=False, n_probes=8, progress=False
    )
    assert whole.blocks.block.tolist() == ["0.weight (+3 tensors)"]
    with pytest.raises(ValueError, match="max_blocks=4"):
        diagnose(model, loss_fn, batches, partition="rows", max_blocks=4, progress=False)
    with pytest.raises(ValueError, match="n_head"):
        diagnose(model, loss_fn, batches, partition="heads", progress=False)


def test_frozen_parameters_are_left_out():
    model, loss_fn, batches = _mlp()
    model[0].requires_grad_(False)
    H = hessian.exact_hessian(model, loss_fn, batches, params=list(model[2].parameters()))
    dg = diagnose(model, loss_fn, batches, rotation=False, progress=False)
    assert dg.d == 18 and list(dg.blocks.block) == ["2.weight", "2.bias"]
    assert dg.spectral_norm == pytest.approx(float(torch.linalg.eigvalsh(H).abs().max()), rel=1e-6)


def test_dropout_and_batchnorm_updating_statistics_are_refused():
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    drop = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="dropout"):
        diagnose(drop, _ce, [(x, y)], progress=False)
    bn = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        diagnose(bn, _ce, [(x, y)], progress=False)
    dg = diagnose(bn.eval(), _ce, [(x, y)], n_probes=8, progress=False)  # running statistics: fixed
    assert dg.d == 16 + 4 + 4 + 4 + 8 + 2 and math.isfinite(dg.advantage.value)


def test_bf16_autocast_is_the_hessian_of_the_mixed_precision_loss():
    model, loss_fn, batches = _mlp(torch.float32)
    kw = dict(rotation=False, blocks=False, n_probes=20, progress=False)
    full = diagnose(model, loss_fn, batches, **kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = diagnose(model, loss_fn, batches, **kw)
    assert full.meta["autocast"] == "None" and low.meta["autocast"] == "bfloat16"
    assert low.spectral_norm == pytest.approx(full.spectral_norm, rel=0.05)
    assert low.spectral_norm != full.spectral_norm


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_agrees_with_cpu():
    model, loss_fn, batches = _mlp()
    cpu = diagnose(model, loss_fn, batches, n_probes=20, progress=False)
    gpu = diagnose(model.cuda(), loss_fn, [tuple(t.cuda() for t in batches[0])], n_probes=20, progress=False)
    assert gpu.meta["device"].startswith("cuda")
    assert gpu.spectral_norm == pytest.approx(cpu.spectral_norm, rel=1e-6)
    assert gpu.l11_per_dim.value == pytest.approx(cpu.l11_per_dim.value, rel=1e-6)


def test_race_adam_is_torch_adam_on_the_cycled_batches():
    model, loss_fn, batches = _mlp()
    batches = batches + [(batches[0][0] * 0.5, batches[0][1])]
    w0 = [p.detach().clone() for p in model.parameters()]
    table = race(model, loss_fn, batches, 7, {"adam": [1e-3, 1e-2], "adasgd": 1e-2, "rotated_adam": 1e-2},
                 progress=False)  # fmt: skip
    assert all(torch.equal(a, p) for a, p in zip(w0, model.parameters(), strict=True))  # unchanged
    ref = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(torch.float64)
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for t in range(7):
        opt.zero_grad()
        loss_fn(ref, batches[t % 2]).backward()
        opt.step()
    with torch.no_grad():
        want = float(sum(loss_fn(ref, b) for b in batches) / 2)
    adam = table[(table.optimizer == "adam") & (table.lr == 1e-2)].iloc[0]
    assert adam.final_loss == pytest.approx(want, rel=1e-12)
    assert list(table.optimizer) == ["adam", "adam", "rotated_adam", "adasgd"]
    assert table.groupby("optimizer").best.sum().eq(1).all() and not table.interior.any()
    best = table[table.best & (table.optimizer == "adam")].iloc[0]
    assert best.final_loss == table[table.optimizer == "adam"].final_loss.min()
    with pytest.raises(ValueError, match="rotated_adam"):
        race(model, loss_fn, batches, 2, {"adam": 1e-3}, progress=False)


def test_diagnose_with_a_race_and_its_outputs():
    model, loss_fn, batches = _mlp()
    dg = diagnose(model, loss_fn, batches, n_probes=10, race_steps=3, lr=[1e-3, 1e-2, 1e-1], progress=False)
    assert set(dg.race_summary().optimizer) == {"adam", "rotated_adam", "adasgd"}
    data = json.loads(dg.to_json())
    assert data["d"] == 43 and len(data["blocks"]) == 4 and len(data["race"]) == 9
    assert data["advantage"]["lo"] <= data["advantage"]["value"] <= data["advantage"]["hi"]
    frame = dg.to_frame()
    assert list(frame.coordinates) == ["original", "rotated"]
    fig = dg.plot()
    assert len(fig.axes[0].containers) >= 2
    with pytest.raises(ValueError, match="lr="):
        diagnose(model, loss_fn, batches, race_steps=3, progress=False)


def test_rotation_of_a_rotated_adam_run_is_used_as_given():
    model, loss_fn, batches = _mlp()
    rp = rotations.RotatedParametrization(model, seed=5)
    dg = diagnose(model, loss_fn, batches, rotation=rp, blocks=False, n_probes=10, progress=False)
    H = hessian.exact_hessian(model, loss_fn, batches)
    R = rotations.to_dense(rp.rotation)
    rot = float((R.T @ H @ R).abs().sum()) / dg.d
    assert dg.rotated_l11_per_dim.value == pytest.approx(rot, rel=0.6)
    with pytest.raises(ValueError, match="d=43"):
        diagnose(model, loss_fn, batches, rotation=rotations.PermuteRotate(7), progress=False)


def test_public_api_of_the_package():
    names = "Adam AdaSGD BlockwiseAdam SignGD RMSProp PermuteRotate haar RotatedParametrization HVP"
    for name in names.split() + ["l11_norm", "spectral_norm", "diagnose", "partitions"]:
        assert name in adamlinf.__all__ and getattr(adamlinf, name) is not None
    assert adamlinf.Adam is adamlinf.optim.Adam and adamlinf.partitions.tensor is partitions.tensor
    assert callable(adamlinf.diagnose)
    with pytest.raises(AttributeError):
        adamlinf.no_such_name  # noqa: B018


def test_the_readme_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Using the library") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README example", "exec"), {})
    out = capsys.readouterr().out
    assert "advantage" in out


@pytest.mark.parametrize(
    "name, extra",
    [
        ("gpt-ci", []),
        ("resnet-ci", ["--partition", "whole", "--lanczos", "3"]),
        ("mlp-digits", ["--race-steps", "2", "--lr", "1e-3"]),
        ("torchvision:resnet18", ["--lanczos", "3"]),
    ],
)
def test_command_line_presets(tmp_path, name, extra, capsys):
    args = [
        "--model",
        name,
        "--tiny",
        "--probes",
        "4",
        "--block-lanczos",
        "3",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert main(args + extra) == 0
    data = json.loads((tmp_path / "diagnosis.json").read_text())
    assert data["d"] > 0 and data["advantage"]["value"] > 0
    assert (tmp_path / "blocks.csv").exists()
    assert (tmp_path / "blocks.png").exists()
    assert "advantage" in capsys.readouterr().out


def test_command_line_user_factory(tmp_path, monkeypatch):
    (tmp_path / "my_model.py").write_text(
        "import torch\n"
        "def build():\n"
        "    m = torch.nn.Linear(3, 1).double()\n"
        "    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)\n"
        "    return m, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), [(x, y)]\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["--model", "my_model:build", "--probes", "8", "--quiet", "--out", "out"]) == 0
    data = json.loads((tmp_path / "out" / "diagnosis.json").read_text())
    assert data["d"] == 4 and all(b["exact"] for b in data["blocks"])
    with pytest.raises(ValueError, match="unknown model"):
        preset("nope")
