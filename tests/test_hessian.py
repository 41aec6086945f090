"""Tests of adamlinf.hessian against exact Hessians (float64), closed forms and eigvalsh."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from adamlinf import hessian as hs
from adamlinf import theory as th
from adamlinf.studies import estimator as est_study

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


def ce_loss(model, batch):
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def gpt_loss(model, batch):
    return model(batch[0], batch[1])[1]


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(F64)
    batches = [
        (torch.randn(11, 5, dtype=F64), torch.randint(0, 3, (11,))),
        (torch.randn(6, 5, dtype=F64), torch.randint(0, 3, (6,))),
    ]
    return model, batches


def tiny_gpt(attention="math"):
    from adamlinf.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8, attention=attention)
    model = GPT(cfg).to(F64).eval()
    with torch.no_grad():  # leave GPT-2's tiny init so the Hessian is not dominated by one block
        for p in model.parameters():
            p.mul_(10.0)
    idx = torch.randint(0, 16, (3, 9))
    return model, (idx[:, :-1], idx[:, 1:])


def heavy_rows(d, seed):
    """A symmetric matrix whose row 1-norms are heavy tailed (log-normal row scales)."""
    return est_study.heavy_tailed_matrix(d, seed, sigma=1.0)


# ------------------------------------------------------------------------------------------
# Hessian-vector products
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["forward", "double_backward", "auto"])
def test_hvp_mlp_matches_exact_hessian(mlp, method):
    model, batches = mlp
    H = hs.exact_hessian(model, ce_loss, batches)
    d = sum(p.numel() for p in model.parameters())
    assert H.shape == (d, d) and torch.allclose(H, H.T, atol=1e-12)
    h = hs.hvp(model, ce_loss, batches, method=method)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(d, generator=g, dtype=F64)
        assert rel(h.matvec(v), H @ v) < 1e-8
    # one batch: the exact Hessian of that batch alone
    H0 = hs.exact_hessian(model, ce_loss, batches[0])
    assert rel(hs.hvp(model, ce_loss, batches[0], method=method).matvec(v), H0 @ v) < 1e-8
    assert rel(H, H0) > 1e-3  # averaging over two batches is not the first batch


def test_hvp_methods_agree_and_params_subset(mlp):
    model, batches = mlp
    params = [model[2].weight, model[0].bias]  # a subset, in a custom order
    hf = hs.hvp(model, ce_loss, batches, params=params, method="forward")
    hb = hs.hvp(model, ce_loss, batches, params=params, method="double_backward")
    assert hf.d == 7 * 3 + 7
    V = torch.randn(4, hf.d, dtype=F64)
    assert rel(hf.matmat(V), hb.matmat(V)) < 1e-8
    H = hs.exact_hessian(model, ce_loss, batches, params=params)
    assert rel(hb.matmat(torch.eye(hb.d, dtype=F64)).T, H) < 1e-8
    with pytest.raises(ValueError, match="not a parameter"):
        hs.hvp(model, ce_loss, batches, params=[torch.zeros(3)])
    with pytest.raises(ValueError, match="shape"):
        hb.matvec(torch.zeros(hf.d + 1, dtype=F64))


@pytest.fixture(scope="module")
def gpt_exact():
    model, batch = tiny_gpt("math")
    H = hs.exact_hessian(model, gpt_loss, batch)
    return model, batch, H


def test_exact_hessian_matches_torch_func_hessian(mlp):
    model, batches = mlp
    H1 = hs.exact_hessian(model, ce_loss, batches)  # rows by double backward
    h = hs.hvp(model, ce_loss, batches)

    def f(flat):
        pd = dict(zip(h.names, h.unflatten(flat), strict=True))
        return sum(ce_loss(lambda x: torch.func.functional_call(model, pd, (x,)), b) for b in batches) / 2

    H2 = torch.func.hessian(f)(h.flatten([p.detach() for p in h.params]))  # jacfwd(jacrev)
    assert rel(H1, H2) < 1e-10 and torch.allclose(H1, H1.T, atol=1e-12)


@pytest.mark.parametrize("method", ["forward", "double_backward"])
def test_hvp_tiny_gpt_math_attention(gpt_exact, method):
    model, batch, H = gpt_exact
    assert float((H - H.T).abs().max()) < 1e-10 * float(H.abs().max())
    h = hs.hvp(model, gpt_loss, batch, method=method)
    assert h.d == H.shape[0] == sum(p.numel() for p in model.parameters())  # tied weight once
    v = torch.randn(h.d, generator=torch.Generator().manual_seed(0), dtype=F64)
    hv = h.matvec(v)
    assert rel(hv, H @ v) < 1e-8
    # independent of both AD paths: central differences of the gradient with Richardson
    # extrapolation (error O(eps^4); plain central differences are O(eps^2) ~ 6e-6 here)
    g = hs.hvp(model, gpt_loss, batch, method="double_backward")
    x0 = [p.detach().clone() for p in g.params]

    def central(eps):
        grads = []
        for sgn in (1, -1):
            with torch.no_grad():
                for p, p0, dv in zip(g.params, x0, g.unflatten(v), strict=True):
                    p.copy_(p0 + sgn * eps * dv)
            grads.append(g.flatten(torch.autograd.grad(gpt_loss(model, batch), g.params)))
        return (grads[0] - grads[1]) / (2 * eps)

    fd = (4 * central(1e-6) - central(2e-6)) / 3
    with torch.no_grad():
        for p, p0 in zip(g.params, x0, strict=True):
            p.copy_(p0)
    assert rel(hv, fd) < 1e-8


def test_gpt_flash_attention_is_switched_to_math(gpt_exact):
    _, _, H = gpt_exact
    model, batch = tiny_gpt("flash")
    with pytest.warns(UserWarning, match="math"):
        h = hs.hvp(model, gpt_loss, batch)
    assert model.config.attention == "math"
    v = torch.randn(h.d, dtype=F64)
    assert rel(h.matvec(v), H @ v) < 1e-8


class SmallCNN(nn.Module):
    def __init__(self, track_running_stats=False):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3, track_running_stats=track_running_stats)
        self.fc = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


@pytest.mark.parametrize("training", [True, False])
def test_hvp_cnn_batchnorm_batch_statistics(training):
    """BatchNorm(track_running_stats=False) uses batch statistics in train AND eval mode:
    a fixed function of a fixed batch, allowed; its Hessian includes the statistics."""
    torch.manual_seed(0)
    model = SmallCNN(track_running_stats=False).to(F64).train(training)
    batch = (torch.randn(6, 1, 5, 5, dtype=F64), torch.randint(0, 4, (6,)))
    H = hs.exact_hessian(model, ce_loss, batch)
    for method in ("forward", "double_backward"):
        h = hs.hvp(model, ce_loss, batch, method=method)
        v = torch.randn(h.d, dtype=F64)
        assert rel(h.matvec(v), H @ v) < 1e-8
    # the batch statistics are differentiated through: H differs from a frozen-statistics net
    frozen = SmallCNN(track_running_stats=True).to(F64)
    frozen.load_state_dict(model.state_dict(), strict=False)
    frozen.eval()
    assert rel(hs.exact_hessian(frozen, ce_loss, batch), H) > 1e-3


def test_refuses_batchnorm_with_running_stats_in_training():
    model = SmallCNN(track_running_stats=True).to(F64).train()
    batch = (torch.randn(6, 1, 5, 5, dtype=F64), torch.randint(0, 4, (6,)))
    with pytest.raises(ValueError, match="track_running_stats"):
        hs.hvp(model, ce_loss, batch)
    model.eval()  # running statistics: a fixed function, allowed
    h = hs.hvp(model, ce_loss, batch)
    v = torch.randn(h.d, dtype=F64)
    assert rel(h.matvec(v), hs.exact_hessian(model, ce_loss, batch) @ v) < 1e-8


def test_refuses_dropout_and_random_losses():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1)).to(F64)
    batch = torch.randn(5, 3, dtype=F64)
    with pytest.raises(ValueError, match="dropout"):
        hs.hvp(model, lambda m, b: m(b).pow(2).mean(), batch)
    model.eval()
    with pytest.raises(ValueError, match="not deterministic"):
        hs.hvp(model, lambda m, b: (m(b) + torch.randn(())).pow(2).mean(), batch)


def test_rotated_hvp_is_RT_H_R(mlp):
    from adamlinf.rotations import PermuteRotate, haar

    model, batches = mlp
    h = hs.hvp(model, ce_loss, batches)
    H = hs.exact_hessian(model, ce_loss, batches)
    R = haar(h.d, seed=3, dtype=F64)
    v = torch.randn(h.d, dtype=F64)
    expected = R.T @ (H @ (R @ v))
    assert rel(hs.rotated(h, R).matvec(v), expected) < 1e-10
    # the permute-and-rotate map of Appendix D.1, in float64 and in its default float32
    for dtype, tol in ((F64, 1e-10), (torch.float32, 1e-5)):
        rot = PermuteRotate(h.d, k=2, seed=1, dtype=dtype)
        Rd = rot.apply(torch.eye(h.d, dtype=dtype)).T.to(F64)  # columns R e_i
        assert rel(hs.rotated(h, rot).matvec(v), Rd.T @ H @ Rd @ v) < tol
    # the (1,1)-norm is not rotation invariant, the spectrum is
    Hr = R.T @ H @ R
    assert abs(hs.spectral_norm(hs.rotated(h, R)) - torch.linalg.eigvalsh(H).abs().max()) < 1e-8
    assert th.l11_exact(Hr) > 1.2 * th.l11_exact(H)


# ------------------------------------------------------------------------------------------
# the (1,1)-norm estimator (Algorithm 4)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["median", "iqr"])
@pytest.mark.parametrize("seed", [0, 1])
def test_l11_within_5_percent_on_heavy_tailed_200x200(variant, seed):
    H = heavy_rows(200, seed)
    exact_rows = H.abs().sum(1)
    assert exact_rows.max() / exact_rows.median() > 5  # heavy-tailed rows
    est = hs.l11_norm(H, 2000, seed=seed, variant=variant, progress=False, batch_probes=500, band_level=None)
    assert est.n_probes == 2000 and est.d == 200 and est.variant == variant
    assert abs(est.total / th.l11_exact(H) - 1) < 0.05
    assert est.per_dim == pytest.approx(est.total / 200)
    # every row is a Cauchy scale estimate: ~ 1/sqrt(n) relative error (sd <= 0.05 at n=2000)
    assert float(((est.rows - exact_rows) / exact_rows).abs().max()) < 0.25


def test_l11_seeded_and_independent_of_probe_batching():
    H = heavy_rows(30, 5)
    a = hs.l11_norm(H, 64, seed=7, progress=False)
    b = hs.l11_norm(H, 64, seed=7, progress=False, batch_probes=10)
    c = hs.l11_norm(H, 64, seed=8, progress=False)
    assert torch.allclose(a.rows, b.rows, rtol=1e-12) and a.total != c.total
    # the median of |h| is the median of the stored signed samples' absolute values
    V = torch.stack([hs.cauchy_probe(30, 7, k) for k in range(64)])
    assert torch.allclose(a.rows, (V @ H.T).abs().quantile(0.5, dim=0), rtol=1e-12)
    q = (V @ H.T).quantile(torch.tensor([0.25, 0.75], dtype=F64), dim=0)
    iqr = hs.l11_norm(H, 64, seed=7, variant="iqr", progress=False)
    assert torch.allclose(iqr.rows, (q[1] - q[0]) / 2, rtol=1e-12)


def test_l11_blocks_are_per_tensor_sums(mlp):
    model, batches = mlp
    h = hs.hvp(model, ce_loss, batches)
    est = hs.l11_norm(h, 600, seed=0, progress=False)
    sizes = [p.numel() for p in model.parameters()]
    assert est.blocks.shape == (4,)
    assert torch.allclose(est.blocks, torch.stack([r.sum() for r in torch.split(est.rows, sizes)]))
    H = hs.exact_hessian(model, ce_loss, batches)
    exact_blocks = torch.stack([r.sum() for r in torch.split(H.abs().sum(1), sizes)])
    assert float(((est.blocks - exact_blocks) / exact_blocks).abs().max()) < 0.2
    # a flat block-index tensor and a Partition object
    idx = torch.arange(h.d) % 3
    e2 = hs.l11_norm(h, 50, seed=0, progress=False, partition=idx)
    assert torch.allclose(e2.blocks, torch.zeros(3, dtype=F64).index_add_(0, idx, e2.rows))
    from adamlinf import partitions

    e3 = hs.l11_norm(h, 50, seed=0, progress=False, partition=partitions.coordinate())
    assert torch.allclose(e3.blocks, e3.rows)
    assert hs.l11_norm(h, 10, progress=False, partition=None).blocks is None


class _NaNSometimes:
    """An operator whose product is NaN whenever the probe's first entry is positive."""

    def __init__(self, H):
        self.H, self.d, self.dtype, self.device = H, H.shape[0], H.dtype, H.device

    def matvec(self, v):
        out = self.H @ v
        return out * float("nan") if v[0] > 0 else out


def test_l11_drops_nan_probes():
    H = heavy_rows(50, 2)
    est = hs.l11_norm(_NaNSometimes(H), 1000, seed=0, progress=False)
    assert est.n_dropped + est.n_probes == 1000 and 350 < est.n_dropped < 650
    assert math.isfinite(est.total) and abs(est.total / th.l11_exact(H) - 1) < 0.1
    with pytest.raises(ValueError):
        hs.l11_norm(H, 10, variant="mean")


# ------------------------------------------------------------------------------------------
# spectral norm
# ------------------------------------------------------------------------------------------
def test_spectral_norm_matches_eigvalsh():
    H = heavy_rows(200, 3)
    H = H - 3 * torch.linalg.eigvalsh(H).max() * torch.eye(200, dtype=F64) / 2  # largest |.| negative
    ev = torch.linalg.eigvalsh(H)
    assert ev[0] < 0 and abs(ev[0]) > abs(ev[-1])
    exact = float(ev.abs().max())
    assert hs.spectral_norm(H) == pytest.approx(exact, rel=1e-6)
    # 50 Lanczos steps (the authors' setting): a lower bound, accurate for a separated eigenvalue
    lz = hs.spectral_norm(H, lanczos_iters=50)
    assert lz <= exact * (1 + 1e-10) and lz == pytest.approx(exact, rel=1e-3)


def test_spectral_norm_of_network_hessian(mlp):
    model, batches = mlp
    h = hs.hvp(model, ce_loss, batches)
    exact = float(torch.linalg.eigvalsh(hs.exact_hessian(model, ce_loss, batches)).abs().max())
    assert hs.spectral_norm(h) == pytest.approx(exact, rel=1e-6)
    assert hs.spectral_norm(h, lanczos_iters=h.d) == pytest.approx(exact, rel=1e-6)


# ------------------------------------------------------------------------------------------
# blockwise bound (Definition 3.9, Lemma 3.13)
# ------------------------------------------------------------------------------------------
def test_blockwise_bound_extreme_partitions():
    H = heavy_rows(40, 4)
    d = 40
    coord = th.blockwise_bound(H, torch.arange(d))
    assert coord == pytest.approx(th.l11_exact(H), rel=1e-12)  # Adam: ||H||_{1,1}
    one = th.blockwise_bound(H, torch.zeros(d, dtype=torch.long))
    assert one == pytest.approx(d * float(torch.linalg.matrix_norm(H, 2)), rel=1e-12)  # AdaSGD: d||H||_2
    # labels need not be 0..B-1
    assert th.blockwise_bound(H, 7 * torch.arange(d) + 3) == pytest.approx(coord, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_blocks=st.integers(1, 12))
def test_blockwise_diagonal_dominates_hessian(seed, n_blocks):
    """Lemma 3.13: D following Phi with r_b = sum_c sqrt(d_c/d_b)||H_bc||_2 gives
    -D <= H <= D, |Delta^T H Delta| <= sum_b r_b ||Delta_b||^2, and Tr D = the bound."""
    g = torch.Generator().manual_seed(seed)
    d = 24
    H = heavy_rows(d, seed)
    idx = torch.unique(torch.randint(0, n_blocks, (d,), generator=g), return_inverse=True)[1]
    D = (th.blockwise_smoothness(H, idx) / torch.bincount(idx))[idx]  # r_b = H_b / d_b
    for b in idx.unique():  # D follows Phi: constant on each block
        assert torch.allclose(D[idx == b], D[idx == b][0].expand(int((idx == b).sum())))
    assert float(D.sum()) == pytest.approx(th.blockwise_bound(H, idx), rel=1e-12)
    scale = float(D.max())
    assert torch.linalg.eigvalsh(torch.diag(D) - H).min() >= -1e-10 * scale
    assert torch.linalg.eigvalsh(torch.diag(D) + H).min() >= -1e-10 * scale
    Delta = torch.randn(50, d, generator=g, dtype=F64)
    quad = torch.einsum("ki,ij,kj->k", Delta, H, Delta).abs()
    assert bool((quad <= (Delta**2 * D).sum(1) * (1 + 1e-12)).all())
    # it never beats the best diagonal bound of all: H(L, Phi) >= ||H||_2 * ... via the
    # sup over ||u||_Phi <= 1 (Def. 3.9 consequence): u^T H u <= Tr D on u = block-normalised
    u = torch.randn(d, generator=g, dtype=F64)
    for b in idx.unique():
        m = idx == b
        u[m] = u[m] / u[m].norm() * math.sqrt(int(m.sum()))  # ||u_(b)||/sqrt(d_b) = 1
    assert float(u @ H @ u).__abs__() <= float(D.sum()) * (1 + 1e-12)


# ------------------------------------------------------------------------------------------
# the Table 2/4 metrics and the distributed path
# ------------------------------------------------------------------------------------------
def test_table_metrics_against_the_exact_hessian(mlp):
    from adamlinf.rotations import haar

    model, batches = mlp
    H = hs.exact_hessian(model, ce_loss, batches)
    d = H.shape[0]
    h = hs.hvp(model, ce_loss, batches)
    assert h.d == d
    assert hs.l11_norm(h, 300, seed=0, partition=None, progress=False).per_dim == pytest.approx(
        th.l11_exact(H) / d, rel=0.15
    )
    assert hs.spectral_norm(h, tol=1e-4) == pytest.approx(th.l2_smoothness(H), rel=1e-4)
    R = haar(d, seed=0, dtype=F64)
    rot = hs.l11_norm(hs.rotated(h, R), 300, seed=0, partition=None, progress=False)
    assert rot.per_dim == pytest.approx(th.l11_exact(R.T @ H @ R) / d, rel=0.15)


def _dist_worker(rank, world, port, H, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        est = hs.l11_norm(H, 101, seed=3, variant="iqr", progress=False)
        out[rank] = est.rows.clone()
        out[world + rank] = torch.tensor([est.n_probes], dtype=F64)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_l11_distributed_two_gloo_ranks_equals_single_process():
    import socket

    import torch.multiprocessing as mp

    H = heavy_rows(20, 9)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_dist_worker, args=(2, port, H, out), nprocs=2, join=True)
    single = hs.l11_norm(H, 101, seed=3, variant="iqr", progress=False, distributed=False)
    for r in range(2):
        assert int(out[2 + r][0]) == 101
        assert torch.allclose(out[r], single.rows, rtol=1e-12)


# ------------------------------------------------------------------------------------------
# refusing bad input: the model mode, probe counts, frozen parameters, stale graphs, LayerNorm
# ------------------------------------------------------------------------------------------
def test_mode_is_checked_at_every_product():
    """model.train() after building the operator: dropout would make every product random."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Tanh(), nn.Linear(4, 1)).to(F64).eval()
    batch = torch.randn(5, 3, dtype=F64)
    loss = lambda m, b: m(b).pow(2).mean()
    for method in ("forward", "double_backward"):
        h = hs.hvp(model, loss, batch, method=method)
        v = torch.randn(h.d, dtype=F64)
        ref = h.matvec(v)
        model.train()
        with pytest.raises(ValueError, match="dropout"):
            h.matvec(v)
        model.eval()
        assert torch.equal(h.matvec(v), ref)
    # BatchNorm with running statistics switched to training after the build
    cnn = SmallCNN(track_running_stats=True).to(F64).eval()
    hb = hs.hvp(cnn, ce_loss, (torch.randn(6, 1, 5, 5, dtype=F64), torch.randint(0, 4, (6,))))
    cnn.train()
    with pytest.raises(ValueError, match="track_running_stats"):
        hb.matvec(torch.zeros(hb.d, dtype=F64))


@pytest.mark.parametrize("bad", [2.7, 0, -3, True, "4", 2.0])
def test_probe_counts_must_be_positive_ints(bad):
    H = heavy_rows(10, 0)
    with pytest.raises(ValueError, match="positive int"):
        hs.l11_norm(H, bad, progress=False)
    with pytest.raises(ValueError, match="positive int"):
        hs.l11_norm(H, 8, batch_probes=bad, progress=False)


def test_numpy_integer_probe_count_is_accepted():
    H = heavy_rows(10, 0)
    a = hs.l11_norm(H, np.int64(8), progress=False)
    assert a.n_probes == 8 and a.total == hs.l11_norm(H, 8, progress=False).total


def test_frozen_parameters_are_refused_or_handled_explicitly(mlp):
    model, batches = mlp
    H_all = hs.exact_hessian(model, ce_loss, batches)
    n0 = model[0].weight.numel()
    model[0].weight.requires_grad_(False)
    try:
        with pytest.raises(ValueError, match="requires_grad=False"):
            hs.hvp(model, ce_loss, batches)
        d = H_all.shape[0]
        v = torch.randn(d, dtype=F64)
        for method in ("forward", "double_backward"):
            exc = hs.hvp(model, ce_loss, batches, method=method, frozen="exclude")
            assert exc.d == d - n0 and rel(exc.matvec(v[n0:]), H_all[n0:, n0:] @ v[n0:]) < 1e-8
        with pytest.raises(ValueError, match="requires_grad=False"):  # named explicitly: refused too
            hs.hvp(model, ce_loss, batches, params=[model[0].weight])
    finally:
        model[0].weight.requires_grad_(True)


def test_cached_graph_follows_in_place_parameter_changes(mlp):
    """An optimizer-style in-place update after the cached graph was built: the next product is
    the Hessian at the new parameters (the stale graph used to raise a version-counter error)."""
    model, batches = mlp
    saved = [p.detach().clone() for p in model.parameters()]
    try:
        h = hs.hvp(model, ce_loss, batches[0], method="double_backward")
        assert h.cache_graph
        v = torch.randn(h.d, dtype=F64)
        h.matvec(v)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.5)
        H_new = hs.exact_hessian(model, ce_loss, batches[0])
        assert rel(h.matvec(v), H_new @ v) < 1e-8
        # .data bypasses the version counter: clear_cache() is the documented remedy
        with torch.no_grad():
            for p, p0 in zip(model.parameters(), saved, strict=True):
                p.data.copy_(p0)
        h.clear_cache()
        assert rel(h.matvec(v), hs.exact_hessian(model, ce_loss, batches[0]) @ v) < 1e-8
    finally:
        with torch.no_grad():
            for p, p0 in zip(model.parameters(), saved, strict=True):
                p.copy_(p0)


# ------------------------------------------------------------------------------------------
# mixed precision: forward-over-reverse under bf16 autocast
# ------------------------------------------------------------------------------------------
class _Record(TorchDispatchMode):
    """Record the floating dtypes of the inputs of matmuls, softmax and layer norm at the
    dispatcher, where the primal and the tangent computations of forward-mode AD both appear."""

    OPS = ("mm", "addmm", "bmm", "baddbmm", "_softmax", "native_layer_norm")

    def __init__(self):
        super().__init__()
        self.log = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.OPS:
            self.log.append(
                (name, tuple(a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()))
            )
        return func(*args, **(kwargs or {}))


def _small_gpt32():
    from adamlinf.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16, attention="math")
    ).eval()
    idx = torch.randint(0, 32, (4, 9))
    return model, (idx[:, :-1], idx[:, 1:])


def test_forward_over_reverse_under_bf16_autocast_dtype_flow():
    model, batch = _small_gpt32()
    h = hs.hvp(model, gpt_loss, batch, method="forward")
    v = torch.randn(h.d, generator=torch.Generator().manual_seed(0))
    exact32 = hs.hvp(model, gpt_loss, batch, method="double_backward").matvec(v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with _Record() as rec:
            hv = h.matvec(v)
        hv_db = hs.hvp(model, gpt_loss, batch, method="double_backward").matvec(v)
    assert hv.dtype == torch.float32
    mats = [dts for name, dts in rec.log if name in ("mm", "addmm", "bmm", "baddbmm")]
    # forward, backward and the tangent formulas: every matmul in bf16, primal and tangent alike
    assert len(mats) > 30 and all(set(d) == {torch.bfloat16} for d in mats)
    # softmax and layer norm in float32, as CUDA autocast runs them
    others = [dts for name, dts in rec.log if name in ("_softmax", "native_layer_norm")]
    assert others and all(set(d) == {torch.float32} for d in others)
    # the same Hessian to bf16 rounding: vs double backward under autocast and vs float32
    assert rel(hv, hv_db) < 2e-2 and rel(hv, exact32) < 2e-2


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA (bf16 autocast casts differently there)"
)
def test_forward_over_reverse_under_bf16_autocast_cuda():
    model, batch = _small_gpt32()
    model = model.cuda()
    batch = tuple(t.cuda() for t in batch)
    v = torch.randn(sum(p.numel() for p in model.parameters()), device="cuda")
    exact32 = hs.hvp(model, gpt_loss, batch, method="double_backward").matvec(v)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        hv = hs.hvp(model, gpt_loss, batch, method="forward").matvec(v)
        hv_db = hs.hvp(model, gpt_loss, batch, method="double_backward").matvec(v)
    assert hv.dtype == torch.float32
    assert rel(hv, hv_db) < 3e-2 and rel(hv, exact32) < 3e-2


# ------------------------------------------------------------------------------------------
# memory-lean products: micro-batches with accumulation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["forward", "double_backward"])
def test_micro_batches_give_the_full_batch_hvp(gpt_exact, mlp, method):
    model, batch, H = gpt_exact  # 3 sequences of 8 tokens: micro-batches of 2 + 1 rows
    h = hs.hvp(model, gpt_loss, batch, method=method, micro_batch=2)
    assert not h.cache_graph
    v = torch.randn(h.d, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert rel(h.matvec(v), H @ v) < 1e-10
    assert h.loss() == pytest.approx(hs.hvp(model, gpt_loss, batch).loss(), rel=1e-12)
    m2, batches = mlp  # a list of batches of 11 and 6 rows, micro-batches of 4
    hm = hs.hvp(m2, ce_loss, batches, method=method, micro_batch=4)
    u = torch.randn(hm.d, dtype=F64)
    assert rel(hm.matvec(u), hs.exact_hessian(m2, ce_loss, batches) @ u) < 1e-10
    assert rel(hm.gradient(), hs.hvp(m2, ce_loss, batches).gradient()) < 1e-12


def test_micro_batches_refused_with_batch_statistics():
    model = SmallCNN(track_running_stats=False).to(F64)
    batch = (torch.randn(6, 1, 5, 5, dtype=F64), torch.randint(0, 4, (6,)))
    with pytest.raises(ValueError, match="batch statistics"):
        hs.hvp(model, ce_loss, batch, micro_batch=2)
    with pytest.raises(ValueError, match="positive int"):
        hs.hvp(model.eval(), ce_loss, batch, micro_batch=1.5)


# ------------------------------------------------------------------------------------------
# error bands of the (1,1)-norm estimate
# ------------------------------------------------------------------------------------------
def test_l11_band_is_a_bootstrap_interval_around_the_estimate():
    H = heavy_rows(30, 4)
    e = hs.l11_norm(H, 40, seed=1, progress=False)
    assert e.band_method == "bootstrap" and e.band_level == 0.9
    assert e.lo < e.total < e.hi
    assert e.per_dim_lo == pytest.approx(e.lo / 30) and e.per_dim_hi == pytest.approx(e.hi / 30)
    wider = hs.l11_norm(H, 40, seed=1, progress=False, band_level=0.99)
    assert wider.lo < e.lo and wider.hi > e.hi and wider.total == e.total
    more = hs.l11_norm(H, 400, seed=1, progress=False, batch_probes=400)
    assert (more.hi - more.lo) / more.total < 0.6 * (e.hi - e.lo) / e.total  # ~ 1/sqrt(n)
    none = hs.l11_norm(H, 40, seed=1, progress=False, band_level=None)
    assert none.band_method == "none" and math.isnan(none.lo) and none.total == e.total
    # the band is the bootstrap of the probes' first-order terms Z_k, divided by the bias factor
    samples = torch.stack([hs.cauchy_probe(30, 1, k) for k in range(40)]) @ H.T
    lo_r, hi_r = hs.bootstrap_band(samples, "median", level=0.9, seed=1)
    c = hs.cauchy_bias_factor(40, "median")
    assert e.lo == pytest.approx(min(e.total, e.total * lo_r / c)) and e.hi == pytest.approx(
        e.total * hi_r / c
    )
    # Z_k by hand, and the bootstrap ratios are 1 - pi (mean Z* - mean Z) / N
    gam = samples.abs().quantile(0.5, dim=0)
    Z = (((samples.abs() <= gam).to(F64) - 0.5) * gam).sum(1)
    idx = torch.randint(
        0, 40, (2000, 40), generator=torch.Generator().manual_seed(hs._probe_seed(1, 1 << 40))
    )
    ratios = 1 - math.pi * (Z[idx].mean(1) - Z.mean()) / gam.sum()
    assert lo_r == pytest.approx(float(np.quantile(ratios.numpy(), 0.05)), rel=1e-10)


@pytest.mark.parametrize("variant", ["median", "iqr"])
def test_l11_band_covers_the_truth_at_its_level(variant):
    """Over 120 independent estimates (fixed seeds) of an exact 30x30 Hessian-like matrix, the
    90% band covers the exact (1,1)-norm in about 90% of them, and its width matches the spread
    of the repeated estimates."""
    H = heavy_rows(30, 6)
    df = est_study.band_coverage(H, 30, 120, level=0.9, variant=variant, n_boot=200)
    assert 0.8 <= df.covered.mean() <= 0.97
    spread = np.quantile(df.estimate, 0.95) - np.quantile(df.estimate, 0.05)
    assert 0.6 < float((df.hi - df.lo).median()) / spread < 1.6


def test_l11_norm_carries_the_band_and_micro_batches_agree(mlp):
    model, batches = mlp
    t = hs.l11_norm(hs.hvp(model, ce_loss, batches), 60, seed=0, partition=None, progress=False)
    assert t.lo <= t.total <= t.hi and t.band_level == 0.9
    tm = hs.l11_norm(
        hs.hvp(model, ce_loss, batches[0], micro_batch=3), 60, seed=0, partition=None, progress=False
    )
    t0 = hs.l11_norm(hs.hvp(model, ce_loss, batches[0]), 60, seed=0, partition=None, progress=False)
    assert tm.total == pytest.approx(t0.total, rel=1e-9)


# ------------------------------------------------------------------------------------------
# the Theorem 4.1 study: probe-count error table and verdicts
# ------------------------------------------------------------------------------------------
class _Diagonal:
    """A diagonal Hessian as an operator: its rows are independent Cauchy scales."""

    def __init__(self, diag):
        self.diag, self.d, self.dtype, self.device = diag, diag.shape[0], diag.dtype, diag.device

    def matvec(self, v):
        return self.diag * v


def test_l11_band_with_independent_rows_is_narrow_and_debiased():
    """Independent rows: sd(N) = pi * ||gamma||_2 / (2 sqrt(n)), far below one row's error, and the
    estimate's O(1/n) bias (the same factor c(n) on every row) dominates: the band corrects it."""
    g = torch.Generator().manual_seed(0)
    diag = torch.exp(torch.randn(20000, generator=g, dtype=F64))
    truth = float(diag.sum())
    n = 50
    sd = math.pi * float(diag.norm()) / (2 * math.sqrt(n))
    covered, biased = [], []
    for seed in range(8):
        e = hs.l11_norm(_Diagonal(diag), n, seed=seed, progress=False, partition=None)
        assert e.extra["bias_factor"] == pytest.approx(hs.cauchy_bias_factor(n, "median"))
        assert e.hi - e.lo < e.total - e.total / e.extra["bias_factor"] + 1.4 * 2 * 1.645 * sd
        covered.append(e.lo <= truth <= e.hi)
        biased.append(e.total > truth + 3 * sd)
    assert sum(covered) >= 6 and sum(biased) >= 6  # Algorithm 4 overestimates; the band does not


def test_cauchy_bias_factor_matches_monte_carlo():
    X = torch.empty((40000, 16), dtype=F64).cauchy_(generator=torch.Generator().manual_seed(0))
    med = X.abs().quantile(0.5, dim=1).mean()
    q = X.quantile(torch.tensor([0.25, 0.75], dtype=F64), dim=1)
    iqr = ((q[1] - q[0]) / 2).mean()
    assert hs.cauchy_bias_factor(16, "median") == pytest.approx(float(med), rel=5e-3)
    assert hs.cauchy_bias_factor(16, "iqr") == pytest.approx(float(iqr), rel=5e-3)
    assert hs.cauchy_bias_factor(50, "median") == pytest.approx(1.0257, abs=2e-4)
    assert hs.cauchy_bias_factor(1, "median") == 1.0  # infinite mean: no correction


# ------------------------------------------------------------------------------------------
# batched probes (issue 23): the same estimate as one probe at a time, for the same seed
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cache_graph", [True, False])
def test_batched_products_equal_one_at_a_time_on_a_gpt(cache_graph):
    model, batch = tiny_gpt()
    h = hs.hvp(model, gpt_loss, batch, cache_graph=cache_graph)
    V = torch.stack([hs.cauchy_probe(h.d, 3, k) for k in range(5)])
    rows = torch.stack([h.matvec(v) for v in V])
    H = hs.exact_hessian(model, gpt_loss, batch)
    assert rel(rows, V @ H.T) < 1e-10  # the one-at-a-time products are right
    assert rel(h.matmat(V), rows) < 1e-12


def test_batched_products_with_micro_batches_and_lists(mlp):
    model, batches = mlp
    H = hs.exact_hessian(model, ce_loss, batches)
    V = torch.randn(4, H.shape[0], dtype=F64)
    cached = hs.hvp(model, ce_loss, batches, cache_graph=True)  # one cached graph per batch
    for h in (hs.hvp(model, ce_loss, batches), hs.hvp(model, ce_loss, batches, micro_batch=4), cached):
        assert rel(h.matmat(V), V @ H.T) < 1e-12
        assert rel(h.matvec(V[0]), H @ V[0]) < 1e-12
    R = torch.linalg.qr(torch.randn(H.shape[0], H.shape[0], dtype=F64))[0]
    rot = hs.rotated(hs.hvp(model, ce_loss, batches), R)
    assert rel(rot.matmat(V), V @ (R.T @ H @ R).T) < 1e-12


@pytest.mark.parametrize("variant", ["median", "iqr"])
def test_l11_batched_equals_one_at_a_time_on_a_gpt(variant):
    model, batch = tiny_gpt()
    h = hs.hvp(model, gpt_loss, batch)
    one = hs.l11_norm(h, 12, seed=5, variant=variant, progress=False, batch_probes=1)
    for k in (4, 12, "auto"):
        many = hs.l11_norm(h, 12, seed=5, variant=variant, progress=False, batch_probes=k)
        assert many.total == pytest.approx(one.total, rel=1e-12)
        assert torch.allclose(many.rows, one.rows, rtol=1e-10, atol=1e-12 * float(one.rows.max()))
        assert many.lo == pytest.approx(one.lo, rel=1e-12) and many.hi == pytest.approx(one.hi, rel=1e-12)
    # the samples are those of the documented probe stream: probe k seeded by (seed, k)
    V = torch.stack([hs.cauchy_probe(h.d, 5, k) for k in range(12)])
    exact_samples = V @ hs.exact_hessian(model, gpt_loss, batch).T
    assert torch.allclose(one.rows, hs.row_scales(exact_samples, variant, 1 << 20), rtol=1e-8)


# ------------------------------------------------------------------------------------------
# honest estimates (issue 24, items 6 and 10)
# ------------------------------------------------------------------------------------------
def test_one_probe_gives_no_band():
    H = heavy_rows(50, 0)
    with pytest.warns(RuntimeWarning, match="no error band"):
        e = hs.l11_norm(H, 1, seed=0, progress=False)
    assert e.band_method == "none" and math.isnan(e.lo) and math.isnan(e.hi)
    assert "band needs 2" in e.extra["no_band"]
    two = hs.l11_norm(H, 2, seed=0, progress=False)
    assert two.band_method == "bootstrap" and two.lo <= two.total <= two.hi


def test_non_scalar_loss_is_refused():
    model, batch = tiny_gpt()
    with pytest.raises(ValueError, match="scalar"):
        hs.hvp(model, lambda m, b: m(b[0], b[1])[0], batch)  # the logits, not the loss


def test_meta_device_is_refused():
    model, batch = tiny_gpt()
    meta = model.to("meta")
    with pytest.raises(ValueError, match="meta"):
        hs.l11_norm(hs.hvp(meta, gpt_loss, tuple(t.to("meta") for t in batch)), 4, progress=False)
    with pytest.raises(ValueError, match="meta"):
        hs.l11_norm(torch.eye(3, device="meta"), 4, progress=False)


def test_empty_batch_is_refused(mlp):
    model, batch = tiny_gpt()
    empty = (batch[0][:0], batch[1][:0])
    with pytest.raises(ValueError, match="empty"):
        hs.l11_norm(hs.hvp(model, gpt_loss, empty), 4, progress=False)
    net, batches = mlp  # an MLP's mean loss over no rows is NaN; its "Hessian" read as 0 before
    x, y = batches[0]
    with pytest.raises(ValueError, match="empty"):
        hs.l11_norm(hs.hvp(net, ce_loss, (x[:0], y[:0])), 4, progress=False)
