"""Tests of adamlinf.rotations: Haar, exp(theta S), PermuteRotate (App. D.1), training on L o R."""

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from adamlinf.rotations import (
    DenseRotation,
    Permutation,
    PermuteRotate,
    RotatedParametrization,
    as_rotation,
    exp_rotation,
    haar,
    random_permutation,
    split_pieces,
    to_dense,
)

F64 = torch.float64
AWKWARD = [1, 2, 3, 7, 8, 27, 97, 512, 513, 1009, 1024, 2310, 7919]


def _eye(n):
    return torch.eye(n, dtype=F64)


# ------------------------------------------------------------------ haar ----------------------


@pytest.mark.parametrize("d", [1, 2, 5, 64])
def test_haar_orthogonal_and_seeded(d):
    q = haar(d, seed=3, dtype=F64)
    assert q.shape == (d, d) and q.dtype == F64
    torch.testing.assert_close(q.T @ q, _eye(d), atol=1e-13, rtol=0)
    torch.testing.assert_close(q @ q.T, _eye(d), atol=1e-13, rtol=0)
    assert torch.equal(q, haar(d, seed=3, dtype=F64))
    assert not torch.equal(q, haar(d, seed=4, dtype=F64)) or d == 1 and q.abs().item() == 1
    # float32 output is the float64 sample cast
    assert torch.equal(haar(d, seed=3, dtype=torch.float32), q.float())


def test_haar_sign_correction_gives_haar_statistics():
    """For Haar Q in O(d): Q_11 is the first coordinate of a uniform unit vector, so E Q_11 = 0 and
    E Q_11^2 = 1/d; det Q = +-1 with probability 1/2; in O(2) the angle of the first column is
    uniform. Plain Householder QR (no sign correction) has Q_11 = -|Z_11|/||Z_:1|| < 0 always."""
    g = torch.Generator().manual_seed(0)
    d, m = 4, 1200
    qs = torch.stack([haar(d, generator=g, dtype=F64) for _ in range(m)])
    q11 = qs[:, 0, 0]
    se = math.sqrt(1.0 / d / m)
    assert abs(q11.mean().item()) < 4 * se
    assert abs((q11**2).mean().item() - 1.0 / d) < 0.03
    # every diagonal entry is symmetric around zero
    assert qs.diagonal(dim1=1, dim2=2).mean(0).abs().max().item() < 4 * se
    dets = torch.linalg.det(qs)
    torch.testing.assert_close(dets.abs(), torch.ones(m, dtype=F64), atol=1e-12, rtol=0)
    frac_pos = (dets > 0).double().mean().item()
    assert abs(frac_pos - 0.5) < 4 * math.sqrt(0.25 / m)
    # the uncorrected QR really is biased, so the test above can fail
    z = torch.randn(m, d, d, generator=g, dtype=F64)
    q_plain = torch.linalg.qr(z).Q
    assert q_plain[:, 0, 0].mean().item() < -0.3
    # O(2): the angle of the first column is uniform on [0, 2 pi)
    q2 = torch.stack([haar(2, generator=g, dtype=F64) for _ in range(1000)])
    ang = torch.atan2(q2[:, 1, 0], q2[:, 0, 0]).numpy() % (2 * np.pi)
    assert stats.kstest(ang / (2 * np.pi), "uniform").pvalue > 1e-3


def test_haar_bad_input():
    with pytest.raises(ValueError):
        haar(0)
    with pytest.raises(ValueError):
        haar(3, seed=0, generator=torch.Generator())


# ------------------------------------------------------------------ exp(theta S) --------------


def test_exp_rotation_identity_orthogonal_det_and_one_family():
    d = 12
    assert torch.equal(exp_rotation(d, 0.0, seed=5, dtype=F64), _eye(d))
    assert torch.equal(exp_rotation(d, 0.0, seed=5, dtype=torch.float32), torch.eye(d))
    m = torch.randn(d, d, generator=torch.Generator().manual_seed(5), dtype=F64)
    s = m - m.T  # the S of Section 4.1
    for theta in [0.01, 0.3, 2.0, 10.0]:
        r = exp_rotation(d, theta, seed=5, dtype=F64)
        torch.testing.assert_close(r.T @ r, _eye(d), atol=1e-10, rtol=0)
        assert abs(torch.linalg.det(r).item() - 1.0) < 1e-9
    # one S for every theta: R_a R_b = R_{a+b}
    ra, rb, rab = exp_rotation(d, [0.2, 0.5, 0.7], seed=5, dtype=F64)
    torch.testing.assert_close(ra @ rb, rab, atol=1e-12, rtol=0)
    torch.testing.assert_close(exp_rotation(d, 0.5, seed=5, dtype=F64), rb, atol=0, rtol=0)
    # small theta: R = I + theta S + O(theta^2)
    eps = 1e-6
    torch.testing.assert_close(
        (exp_rotation(d, eps, seed=5, dtype=F64) - _eye(d)) / eps, s, atol=1e-4, rtol=0
    )
    assert not torch.equal(exp_rotation(d, 0.5, seed=6, dtype=F64), rb)
    with pytest.raises(ValueError):
        exp_rotation(d, float("nan"))


# ------------------------------------------------------------------ PermuteRotate -------------


def test_split_pieces_exact_cover():
    for n in AWKWARD + [10**6, 124_439_808, 999_983]:
        pieces = split_pieces(n)
        assert sum(a * b * c for a, b, c in pieces) == n
        # all but the dense tail are near-cubes
        for a, b, c in pieces[:-1]:
            assert a == b and a <= c <= a + 4
    assert split_pieces(10**6) == [(100, 100, 100)]
    assert split_pieces(1009) == [(10, 10, 10), (1, 1, 9)]
    assert split_pieces(300) == [(1, 1, 300)]
    big = split_pieces(124_439_808)
    assert len(big) <= 5 and big[0][0] * big[0][1] * big[0][2] > 124_439_808 - 250_000


def _check_orthogonal(R, n, batch=3, seed=0, tol=1e-12):
    x = torch.randn(batch, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    x_copy = x.clone()
    y = R.apply(x)
    y_copy = y.clone()
    assert y.shape == x.shape
    torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1), atol=tol * math.sqrt(n), rtol=tol)
    torch.testing.assert_close(R.apply_T(y), x, atol=tol, rtol=0)
    torch.testing.assert_close(R.apply(R.apply_T(x)), x, atol=tol, rtol=0)
    # a 1-D input gives the same as one row of a batch
    torch.testing.assert_close(R.apply(x[1]), y[1], atol=tol, rtol=0)
    # inputs are never modified
    assert torch.equal(x, x_copy) and torch.equal(y, y_copy)


@pytest.mark.parametrize("n", AWKWARD)
@pytest.mark.parametrize("k", [1, 2])
def test_permute_rotate_orthogonal_awkward_sizes(n, k):
    R = PermuteRotate(n, k=k, seed=n, dtype=F64)
    _check_orthogonal(R, n)


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 4000),
    k=st.integers(0, 3),
    dense_max=st.sampled_from([1, 8, 64, 512]),
    seed=st.integers(0, 2**31),
)
def test_permute_rotate_orthogonal_property(n, k, dense_max, seed):
    R = PermuteRotate(n, k=k, seed=seed, dtype=F64, dense_max=dense_max)
    _check_orthogonal(R, n, batch=2)


@pytest.mark.parametrize("n,dense_max", [(30, 4), (64, 8), (97, 8), (200, 512), (343, 1)])
def test_permute_rotate_dense_matrix_is_orthogonal(n, dense_max):
    R = PermuteRotate(n, k=2, seed=1, dtype=F64, dense_max=dense_max)
    Q = to_dense(R)
    torch.testing.assert_close(Q.T @ Q, _eye(n), atol=1e-13, rtol=0)
    torch.testing.assert_close(Q @ Q.T, _eye(n), atol=1e-13, rtol=0)
    x = torch.randn(4, n, dtype=F64)
    torch.testing.assert_close(R.apply(x), x @ Q.T, atol=1e-13, rtol=0)
    torch.testing.assert_close(R.apply_T(x), x @ Q, atol=1e-13, rtol=0)
    # a real rotation, not a signed permutation: coordinates get mixed
    assert (Q.abs() > 1e-9).sum(1).float().mean() > 4


def test_permute_rotate_matches_explicit_construction():
    """One stage equals kron(Q1, Q2, Q3) @ P built by hand (row-major reshape)."""
    n, shape = 24, (2, 3, 4)
    R = PermuteRotate(n, k=1, seed=7, dtype=F64, pieces=[shape])
    q1, q2, q3 = R._q64[0][0]
    P = _eye(n)[R._perm[0].long()]  # (P x)_i = x_{pi(i)}
    K = torch.kron(torch.kron(q1, q2), q3)
    torch.testing.assert_close(to_dense(R), K @ P, atol=1e-14, rtol=0)


def test_permute_rotate_one_million():
    n = 10**6
    R = PermuteRotate(n, k=2, seed=0, dtype=torch.float32)
    assert R.pieces == [(100, 100, 100)]
    x = torch.randn(n)
    y = R.apply(x)
    assert abs(y.norm().item() / x.norm().item() - 1) < 1e-5
    assert (R.apply_T(y) - x).abs().max().item() < 1e-4
    # the rotation spreads a basis vector over many coordinates
    e = torch.zeros(n)
    e[12345] = 1.0
    assert (R.apply(e).abs() > 1e-6).sum().item() > 1000


def test_permute_rotate_seed_state_dict_roundtrip():
    n = 1009
    R = PermuteRotate(n, k=2, seed=11, dtype=F64)
    x = torch.randn(2, n, dtype=F64)
    assert torch.equal(R.apply(x), PermuteRotate(n, k=2, seed=11, dtype=F64).apply(x))
    other = PermuteRotate(n, k=1, seed=12, dtype=F64)
    assert not torch.allclose(other.apply(x), R.apply(x))
    other.load_state_dict(R.state_dict())
    assert other.k == 2 and other.seed == 11
    assert torch.equal(other.apply(x), R.apply(x)) and torch.equal(other.apply_T(x), R.apply_T(x))
    # with stored permutations
    other2 = PermuteRotate(n, k=3, seed=0, dtype=F64)
    other2.load_state_dict(R.state_dict(include_permutations=True))
    assert torch.equal(other2.apply(x), R.apply(x))
    # a float32 copy restored from a float64 state uses the float64 matrices cast
    r32 = PermuteRotate(n, k=2, seed=0, dtype=torch.float32)
    r32.load_state_dict(R.state_dict())
    torch.testing.assert_close(r32.apply(x.float()), R.apply(x).float(), atol=1e-5, rtol=0)
    # a corrupted permutation digest is refused
    sd = R.state_dict()
    sd["perm_digests"][0] = "0" * 32
    with pytest.raises(ValueError, match="permutations differ"):
        other.load_state_dict(sd)
    with pytest.raises(ValueError):
        PermuteRotate(n + 1).load_state_dict(R.state_dict())


def test_permute_rotate_bad_input():
    with pytest.raises(ValueError):
        PermuteRotate(0)
    with pytest.raises(ValueError):
        PermuteRotate(10, k=-1)
    with pytest.raises(ValueError):
        PermuteRotate(10, pieces=[(2, 2, 2)])
    R = PermuteRotate(10, dtype=F64)
    with pytest.raises(ValueError):
        R.apply(torch.zeros(11, dtype=F64))
    with pytest.raises(ValueError):
        R.apply(torch.zeros(10, dtype=torch.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_permute_rotate_cuda_matches_cpu():
    n = 5003
    x = torch.randn(2, n)
    rc = PermuteRotate(n, k=2, seed=3, device="cuda")
    r = PermuteRotate(n, k=2, seed=3)
    torch.testing.assert_close(rc.apply(x.cuda()).cpu(), r.apply(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(rc.apply_T(rc.apply(x.cuda())).cpu(), x, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ small wrappers ------------


def test_permutation_and_dense_wrappers():
    n = 9
    P = random_permutation(n, seed=2, dtype=F64)
    M = to_dense(P)
    assert torch.equal(M.abs().sum(0), torch.ones(n, dtype=F64)) and torch.equal(M @ M.T, _eye(n))
    x = torch.randn(n, dtype=F64)
    assert torch.equal(P.apply(x), x[P.perm.long()])
    assert torch.equal(P.apply_T(P.apply(x)), x)
    Q = haar(n, seed=0, dtype=F64)
    D = as_rotation(Q)
    assert isinstance(D, DenseRotation) and as_rotation(D) is D
    torch.testing.assert_close(D.apply(x), Q @ x, atol=1e-15, rtol=0)
    torch.testing.assert_close(D.apply_T(D.apply(x)), x, atol=1e-14, rtol=0)
    torch.testing.assert_close(to_dense(D), Q, atol=0, rtol=0)
    P2 = Permutation(torch.arange(n))
    P2.load_state_dict(P.state_dict())
    assert torch.equal(P2.apply(x), P.apply(x))
    with pytest.raises(ValueError):
        Permutation(torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError):
        DenseRotation(torch.ones(3, 3, dtype=F64))
    with pytest.raises(ValueError):
        as_rotation("nope")


# ------------------------------------------------------------------ RotatedParametrization ----


def _mlp(seed, dtype=F64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def _batch(dtype=F64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 5, generator=g, dtype=dtype), torch.randn(16, 3, generator=g, dtype=dtype)


def _loss(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-13), (torch.float32, 1e-6)])
def test_rotated_initial_loss_equals_unrotated(dtype, tol):
    model = _mlp(0, dtype)
    batch = _batch(dtype)
    x0 = torch.nn.utils.parameters_to_vector(model.parameters()).clone()
    loss0 = _loss(model, batch).item()
    rp = RotatedParametrization(model, k=2, seed=3)
    assert rp.n == x0.numel() and rp.w.dtype == dtype and rp.parameters() == [rp.w]
    assert not torch.allclose(rp.w.detach(), x0)  # w0 = R^T x0 is a different vector
    rp.push()
    x1 = torch.nn.utils.parameters_to_vector(model.parameters())
    torch.testing.assert_close(x1, x0, atol=tol, rtol=0)
    assert abs(_loss(model, batch).item() - loss0) < tol * 10


def test_rotated_gradient_is_RT_grad_via_autograd():
    """pull_grad gives the gradient of w -> L(R w), computed here by autograd through dense R."""
    model = _mlp(1)
    batch = _batch()
    rp = RotatedParametrization(model, k=2, seed=5)
    Q = to_dense(rp.rotation)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss_of_w(w):
        x = Q @ w
        chunks = torch.split(x, [math.prod(s) for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=False)}
        return _loss(lambda inp: torch.func.functional_call(model, params, (inp,)), batch)

    w = rp.w.detach().clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(loss_of_w(w), w)
    rp.push()
    model.zero_grad(set_to_none=True)
    _loss(model, batch).backward()
    rp.pull_grad()
    torch.testing.assert_close(rp.w.grad, g_ref, atol=1e-13, rtol=0)
    # and equals R^T times the module gradient
    gx = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(rp.w.grad, Q.T @ gx, atol=1e-13, rtol=0)


def test_rotated_missing_grads_are_zero_and_frozen_params_are_skipped():
    model = nn.ModuleDict({"a": nn.Linear(3, 2), "unused": nn.Linear(2, 2), "frozen": nn.Linear(2, 1)})
    model = model.to(F64)
    model["frozen"].weight.requires_grad_(False)
    frozen_before = model["frozen"].weight.detach().clone()
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    R = haar(n_trainable, seed=0, dtype=F64)
    rp = RotatedParametrization(model, rotation=R)
    assert rp.n == n_trainable
    rp.push()
    model["a"](torch.ones(4, 3, dtype=F64)).sum().backward()
    rp.pull_grad()
    g = torch.cat([model["a"].weight.grad.reshape(-1), model["a"].bias.grad, torch.zeros(6 + 1, dtype=F64)])
    torch.testing.assert_close(rp.w.grad, R.T @ g, atol=1e-13, rtol=0)
    assert torch.equal(model["frozen"].weight, frozen_before)
    with pytest.raises(ValueError, match="rotation acts on"):
        RotatedParametrization(model, rotation=haar(n_trainable + 1, seed=0, dtype=F64))


def _train(rp, opt, model, batches):
    losses = []
    for b in batches:
        rp.push()
        model.zero_grad(set_to_none=True)
        loss = _loss(model, b)
        loss.backward()
        rp.pull_grad()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_rotated_state_dict_resume_is_exact():
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(8, 5, generator=g, dtype=F64), torch.randn(8, 3, generator=g, dtype=F64))
        for _ in range(10)
    ]
    model = _mlp(2)
    rp = RotatedParametrization(model, k=2, seed=9)
    opt = torch.optim.Adam(rp.parameters(), lr=1e-2)
    _train(rp, opt, model, batches[:5])
    ckpt = copy.deepcopy({"rp": rp.state_dict(), "opt": opt.state_dict()})  # as if saved to disk
    ref = _train(rp, opt, model, batches[5:])
    w_ref = rp.w.detach().clone()

    model2 = _mlp(3)  # a different initialization and a different rotation seed
    rp2 = RotatedParametrization(model2, k=1, seed=0)
    opt2 = torch.optim.Adam(rp2.parameters(), lr=1e-2)
    rp2.load_state_dict(ckpt["rp"])
    opt2.load_state_dict(ckpt["opt"])
    assert rp2.rotation.seed == 9 and rp2.rotation.k == 2
    assert _train(rp2, opt2, model2, batches[5:]) == ref
    assert torch.equal(rp2.w.detach(), w_ref)
    with pytest.raises(ValueError):
        RotatedParametrization(nn.Linear(2, 2).to(F64)).load_state_dict(ckpt["rp"])


def test_rotated_training_decreases_loss_float32():
    model = _mlp(4, torch.float32)
    batch = _batch(torch.float32)
    rp = RotatedParametrization(model, k=2, seed=0)
    opt = torch.optim.Adam(rp.parameters(), lr=3e-2)
    losses = _train(rp, opt, model, [batch] * 100)
    assert losses[-1] < 0.5 * losses[0]


def test_rotated_parametrization_bad_input():
    with pytest.raises(ValueError):
        RotatedParametrization("not a module")
    with pytest.raises(ValueError):
        RotatedParametrization(nn.ReLU())


def test_rotated_parametrization_on_tiny_gpt_with_tied_weights():
    from adamlinf.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=8, attention="math"))
    model = model.to(F64)
    n_unique = sum(p.numel() for p in model.parameters())  # the tied lm_head counts once
    idx = torch.randint(32, (2, 8), generator=torch.Generator().manual_seed(1))
    _, loss0 = model(idx, idx)
    rp = RotatedParametrization(model, k=2, seed=0)
    assert rp.n == n_unique
    rp.push()
    _, loss1 = model(idx, idx)
    assert abs(loss1.item() - loss0.item()) < 1e-12
    loss1.backward()
    rp.pull_grad()
    gx = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(rp.rotation.apply(rp.w.grad), gx, atol=1e-13, rtol=0)


# ------------------------------------------------------------------ defaults and loading -------


def test_permute_rotate_follows_default_dtype():
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        assert PermuteRotate(10).dtype == torch.float64
    finally:
        torch.set_default_dtype(old)
    assert PermuteRotate(10).dtype == old


def _bad_states(sd):
    """Corruptions of a PermuteRotate state, each refused."""
    digest = copy.deepcopy(sd)
    digest["seed"] = 5  # a different seed: its permutations do not match the digests
    shapes = copy.deepcopy(sd)
    shapes["matrices"][0][0][2] = torch.eye(3, dtype=F64)
    missing = {k: v for k, v in sd.items() if k != "perm_digests"}
    pieces = copy.deepcopy(sd)
    pieces["pieces"] = [[2, 2, 2]]
    return {
        "digest": digest,
        "shapes": shapes,
        "missing": missing,
        "pieces": pieces,
        "kind": {"kind": "dense"},
    }


@pytest.mark.parametrize("case", ["digest", "shapes", "missing", "pieces", "kind"])
def test_permute_rotate_failed_load_changes_nothing(case):
    n = 1009
    src = PermuteRotate(n, k=2, seed=11, dtype=F64)
    R = PermuteRotate(n, k=1, seed=0, dtype=F64)
    x = torch.randn(2, n, dtype=F64)
    y = R.apply(x)
    before = (R.k, R.seed, R.pieces, R.dense_max)
    with pytest.raises(ValueError):
        R.load_state_dict(_bad_states(src.state_dict())[case])
    assert (R.k, R.seed, R.pieces, R.dense_max) == before
    assert torch.equal(R.apply(x), y)


def test_other_rotations_failed_load_changes_nothing():
    n = 7
    P = random_permutation(n, seed=1, dtype=F64)
    x = torch.randn(n, dtype=F64)
    y = P.apply(x)
    for bad in (
        {"kind": "permutation", "perm": torch.tensor([0, 0, 1, 2, 3, 4, 5])},
        {"kind": "dense"},
        {"kind": "permutation", "perm": torch.arange(n + 1)},
    ):
        with pytest.raises(ValueError):
            P.load_state_dict(bad)
        assert torch.equal(P.apply(x), y)
    D = DenseRotation(haar(n, seed=0, dtype=F64))
    m = D.matrix.clone()
    for bad in ({"kind": "dense", "matrix": torch.eye(n + 1, dtype=F64)}, {"kind": "permutation"}, {}):
        with pytest.raises(ValueError):
            D.load_state_dict(bad)
        assert torch.equal(D.matrix, m)
    model = _mlp(0)
    rp = RotatedParametrization(model, k=2, seed=3)
    sd = rp.state_dict()
    sd["w"] = sd["w"][:-1]
    seed_before, w_before = rp.rotation.seed, rp.w.detach().clone()
    other = RotatedParametrization(_mlp(1), k=2, seed=4)
    with pytest.raises(ValueError):
        other.load_state_dict(sd)
    assert other.rotation.seed == 4 and seed_before == 3 and torch.equal(rp.w.detach(), w_before)


def test_rotate_model_trains_on_the_rotated_loss():
    import adamlinf

    model = _mlp(5)
    batch = _batch()
    loss0 = _loss(model, batch).item()
    rp = adamlinf.rotate_model(model, k=2, seed=7)
    assert isinstance(rp, RotatedParametrization) and rp.rotation.seed == 7
    rp.push()
    assert abs(_loss(model, batch).item() - loss0) < 1e-13  # starts where the unrotated model is
    _loss(model, batch).backward()
    rp.pull_grad()
    gx = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    R = to_dense(rp.rotation)
    torch.testing.assert_close(rp.w.grad, R.T @ gx, atol=1e-13, rtol=0)  # grad of L o R at w
    names = {"Adam", "AdaSGD", "BlockwiseAdam", "SignGD", "RMSProp", "partitions", "PermuteRotate", "haar"}
    names |= {"rotate_model", "RotatedParametrization", "HVP", "l11_norm", "spectral_norm", "diagnose"}
    names |= {"Diagnosis", "race"}
    assert names <= set(adamlinf.__all__) and all(getattr(adamlinf, n) is not None for n in names)
