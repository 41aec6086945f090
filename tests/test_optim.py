"""Tests of adamlinf.optim: Algorithms 1-3 against torch.optim.Adam, closed forms and each other."""

import copy
import io
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adamlinf import optim
from adamlinf import partitions as P

SHAPES = [(5, 3), (7,), (4, 2, 3), ()]


def make_params(dtype=torch.float64, seed=1, shapes=SHAPES):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def loss_fn(ps, t):
    """A smooth, non-separable, time-varying loss (so the gradients change every step)."""
    return sum(((p - 0.3) ** 4).sum() + (p.sum() * (1 + 0.01 * t)) ** 2 + math.sin(t) * p.sum() for p in ps)


def run(make, steps=50, dtype=torch.float64, seed=1, shapes=SHAPES):
    ps = make_params(dtype, seed, shapes)
    opt = make(ps)
    for t in range(steps):
        opt.zero_grad()
        loss_fn(ps, t).backward()
        opt.step()
    return [p.detach() for p in ps], opt


def groups(ps):
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 3e-3}]


# ---------------------------------------------------------------------------------------------
# Adam vs torch
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_adam_matches_torch(dtype, tol):
    ours, _ = run(lambda ps: optim.Adam(groups(ps), lr=1e-2, betas=(0.9, 0.99), eps=1e-8,
                                        bias_correction=True, eps_inside_sqrt=False), 300, dtype)
    ref, _ = run(lambda ps: torch.optim.Adam(groups(ps), lr=1e-2, betas=(0.9, 0.99), eps=1e-8, foreach=True), 300, dtype)
    for a, b in zip(ours, ref):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    # and the paper form is a genuinely different trajectory
    paper, _ = run(lambda ps: optim.Adam(groups(ps), lr=1e-2, betas=(0.9, 0.99)), 300, dtype)
    assert max((a - b).abs().max().item() for a, b in zip(paper, ref)) > 1e-3


def test_first_step_closed_forms():
    """Step 1 by hand: m = (1-b1) g, v = b2 v0 + (1-b2) g^2 (Algorithm 1)."""
    lr, b1, b2, eps, v0 = 0.1, 0.9, 0.99, 1e-3, 0.5
    x0 = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    g = torch.tensor([0.3, -1.5, 0.0, 2.0], dtype=torch.float64)

    def one(**kw):
        x = x0.clone().requires_grad_()
        opt = optim.Adam([x], lr=lr, betas=(b1, b2), eps=eps, **kw)
        x.grad = g.clone()
        opt.step()
        return x.detach()

    m = (1 - b1) * g
    v = b2 * v0 + (1 - b2) * g * g
    torch.testing.assert_close(one(v0=v0), x0 - lr * m / torch.sqrt(v + eps), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(one(v0=v0, eps_inside_sqrt=False), x0 - lr * m / (torch.sqrt(v) + eps),
                               rtol=1e-14, atol=1e-15)
    # torch form, v0 = 0: the first step is lr * g / (|g| + eps)
    torch.testing.assert_close(one(bias_correction=True, eps_inside_sqrt=False),
                               x0 - lr * g / (g.abs() + eps), rtol=1e-14, atol=1e-15)
    # bias correction with eps inside: lr * g / sqrt(g^2 + eps)
    torch.testing.assert_close(one(bias_correction=True), x0 - lr * g / torch.sqrt(g * g + eps), rtol=1e-14, atol=1e-15)


def test_rmsprop_is_adam_beta1_zero():
    a, _ = run(lambda ps: optim.RMSProp(ps, lr=1e-2, beta2=0.95, v0=0.1))
    b, _ = run(lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.0, 0.95), v0=0.1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="beta1 = 0"):
        optim.RMSProp([{"params": make_params(), "betas": (0.5, 0.9)}])


def test_signgd_exact():
    x0 = torch.tensor([1.0, -2.0, 0.5, 0.25], dtype=torch.float64)
    g = torch.tensor([0.3, -1e-30, 0.0, 7.0], dtype=torch.float64)
    x = x0.clone().requires_grad_()
    opt = optim.SignGD([x], lr=0.1)
    x.grad = g
    opt.step()
    assert torch.equal(x.detach(), x0 - 0.1 * torch.tensor([1.0, -1.0, 0.0, 1.0], dtype=torch.float64))
    # over a trajectory: every coordinate moves by exactly lr or 0 per step
    ps = make_params()
    opt = optim.SignGD(ps, lr=0.125)
    for t in range(20):
        before = [p.detach().clone() for p in ps]
        opt.zero_grad()
        loss_fn(ps, t).backward()
        opt.step()
        for b, p in zip(before, ps):
            assert torch.equal(p.detach(), b - 0.125 * p.grad.sign())


def test_eps_zero_zero_gradient_does_not_move():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    for opt in (optim.Adam([x], lr=0.1, eps=0.0), optim.BlockwiseAdam([x], lr=0.1, eps=0.0, partition=P.coordinate())):
        x.grad = torch.tensor([0.0, 3.0], dtype=torch.float64)
        before = x.detach().clone()
        opt.step()
        assert x[0].item() == before[0].item()
        assert x[1].item() == pytest.approx(before[1].item() - 0.1 * (0.1 * 3.0) / math.sqrt(0.001 * 9.0), rel=1e-14)


# ---------------------------------------------------------------------------------------------
# blockwise Adam: extremes, hand computations
# ---------------------------------------------------------------------------------------------
FORMS = [dict(bias_correction=bc, eps_inside_sqrt=ins, v0=v0) for bc in (False, True) for ins in (False, True)
         for v0 in (0.0, 0.2)]


@pytest.mark.parametrize("form", FORMS)
def test_coordinate_partition_equals_adam_exactly(form):
    hp = dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, **form)
    a, _ = run(lambda ps: optim.Adam([{"params": ps[:2], "betas": (0.5, 0.95)}, {"params": ps[2:], "lr": 3e-3}], **hp), 60)
    b, _ = run(lambda ps: optim.BlockwiseAdam([{"params": ps[:2], "betas": (0.5, 0.95)}, {"params": ps[2:], "lr": 3e-3}],
                                              partition=P.coordinate(), **hp), 60)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("form", FORMS[::3])
def test_whole_partition_equals_adasgd_exactly(form):
    hp = dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, **form)
    a, _ = run(lambda ps: optim.AdaSGD(groups(ps), **hp), 60)
    b, _ = run(lambda ps: optim.BlockwiseAdam(groups(ps), partition=P.whole(), **hp), 60)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def blockwise_by_hand(x0s, grads_fn, steps, flat_index, lrs, b1, b2, eps, v0):
    """Algorithm 3 written out with Python loops over blocks (float64), for the tests."""
    xs = [x.clone() for x in x0s]
    ms = [torch.zeros_like(x) for x in xs]
    B = int(flat_index.max()) + 1
    v = [v0] * B
    for t in range(steps):
        gs = grads_fn(xs, t)
        g = torch.cat([q.reshape(-1) for q in gs])
        for b in range(B):
            gb = g[flat_index == b]
            v[b] = b2 * v[b] + (1 - b2) * float(gb @ gb) / gb.numel()
        denom = torch.tensor([math.sqrt(v[int(b)] + eps) for b in flat_index], dtype=torch.float64)
        off = 0
        for k, (x, m, q) in enumerate(zip(xs, ms, gs)):
            n = x.numel()
            m.mul_(b1).add_((1 - b1) * q)
            x.sub_(lrs[k] * m / denom[off:off + n].reshape(x.shape))
            off += n
    return xs


def grads_of(xs, t):
    ps = [x.clone().requires_grad_() for x in xs]
    loss_fn(ps, t).backward()
    return [p.grad for p in ps]


@pytest.mark.parametrize("name", ["rows", "tensor", "whole", "coordinate", "spanning"])
def test_blockwise_vs_hand(name):
    x0s = [p.detach() for p in make_params()]
    spanning = P.custom(torch.arange(sum(x.numel() for x in x0s)) % 3)  # blocks span every tensor and both groups
    part = {"rows": P.rows(), "tensor": P.tensor(), "whole": P.whole(), "coordinate": P.coordinate(),
            "spanning": spanning}[name]
    b1, b2, eps, v0 = 0.9, 0.9, 1e-4, 0.05
    lrs = [1e-2, 1e-2, 3e-3, 3e-3]
    got, opt = run(lambda ps: optim.BlockwiseAdam(groups(ps), lr=1e-2, betas=(b1, b2), eps=eps, v0=v0, partition=part), 15)
    want = blockwise_by_hand(x0s, grads_of, 15, part.flat_index(x0s), lrs, b1, b2, eps, v0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert opt.num_blocks == part.num_blocks(x0s)


def test_adasgd_scalar_by_hand_two_groups():
    """Algorithm 2: ONE scalar v = b2 v0 + (1-b2) ||g||^2 / d over both groups."""
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[3.0], [-1.0], [0.5]], dtype=torch.float64, requires_grad=True)
    opt = optim.AdaSGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, betas=(0.0, 0.5), eps=0.0, v0=1.0)
    ga, gb = torch.tensor([1.0, -1.0], dtype=torch.float64), torch.tensor([[2.0], [0.0], [-2.0]], dtype=torch.float64)
    a.grad, b.grad = ga, gb
    a0, b0 = a.detach().clone(), b.detach().clone()
    opt.step()
    v = 0.5 * 1.0 + 0.5 * (1 + 1 + 4 + 0 + 4) / 5  # = 1.5
    torch.testing.assert_close(a.detach(), a0 - 0.1 * ga / math.sqrt(v), rtol=0, atol=1e-15)
    torch.testing.assert_close(b.detach(), b0 - 0.5 * gb / math.sqrt(v), rtol=0, atol=1e-15)
    assert opt.state[a]["block_exp_avg_sq"].item() == pytest.approx(1.5, abs=1e-15)


def test_functional_forms_match_classes():
    """The batched functional updates (for the quadratic runner) equal the classes, per batch row."""
    d, steps = 6, 10
    lrs = torch.tensor([[1e-3], [1e-2], [5e-2]], dtype=torch.float64)
    x0 = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    A = torch.diag(torch.arange(1.0, d + 1, dtype=torch.float64))
    index = torch.tensor([0, 0, 1, 2, 2, 2])
    kw = dict(beta1=0.9, beta2=0.99, eps=1e-8, bias_correction=True, eps_inside_sqrt=False)
    for kind in ("adam", "blockwise", "adasgd"):
        X = x0.repeat(3, 1)
        M = torch.zeros_like(X)
        V = torch.zeros(3, {"adam": d, "blockwise": 3, "adasgd": 1}[kind], dtype=torch.float64)
        for t in range(1, steps + 1):
            G = X @ A
            if kind == "adam":
                optim.adam_update_(X, G, M, V, lr=lrs, step=t, **kw)
            elif kind == "blockwise":
                optim.blockwise_adam_update_(X, G, M, V, index, lr=lrs, step=t, **kw)
            else:
                optim.adasgd_update_(X, G, M, V, lr=lrs, step=t, **kw)
        for r in range(3):
            x = x0.clone().requires_grad_()
            hp = dict(lr=float(lrs[r]), betas=(0.9, 0.99), eps=1e-8, bias_correction=True, eps_inside_sqrt=False)
            opt = {"adam": lambda: optim.Adam([x], **hp), "adasgd": lambda: optim.AdaSGD([x], **hp),
                   "blockwise": lambda: optim.BlockwiseAdam([x], partition=P.custom(index), **hp)}[kind]()
            for _ in range(steps):
                x.grad = (x.detach() @ A)
                opt.step()
            torch.testing.assert_close(X[r], x.detach(), rtol=1e-12, atol=1e-13)
    # signgd
    X = x0.repeat(3, 1)
    optim.signgd_update_(X, X @ A, lr=lrs)
    assert torch.allclose(X, x0 - lrs * torch.sign(x0 @ A))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=30, max_size=30), st.booleans(), st.booleans())
def test_blockwise_random_partition_vs_functional(labels, bc, ins):
    """Class (blocks spanning tensors, general gather path) == flat functional form, any partition."""
    _, flat = torch.unique(torch.tensor(labels), return_inverse=True)
    part = P.custom(flat)
    shapes = [(2, 3), (4,), (2, 2, 2), (3, 2), (6,)]  # d = 30
    x0s = [p.detach() for p in make_params(shapes=shapes)]
    kw = dict(betas=(0.9, 0.9), eps=1e-6, bias_correction=bc, eps_inside_sqrt=ins)
    got, _ = run(lambda ps: optim.BlockwiseAdam(ps, lr=1e-2, partition=part, **kw), 8, shapes=shapes)
    X = torch.cat([x.reshape(-1) for x in x0s])
    M, V = torch.zeros_like(X), torch.zeros(int(flat.max()) + 1, dtype=X.dtype)
    for t in range(8):
        G = torch.cat([g.reshape(-1) for g in grads_of([c.reshape(s) for c, s in zip(X.split([math.prod(s) for s in shapes]), shapes)], t)])
        optim.blockwise_adam_update_(X, G, M, V, flat, lr=1e-2, beta1=0.9, beta2=0.9, eps=1e-6, step=t + 1,
                                     bias_correction=bc, eps_inside_sqrt=ins)
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in got]), X, rtol=1e-12, atol=1e-12)


def test_heads_partition_in_optimizer():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = torch.nn.Linear(8, 24, bias=False)
            self.c_fc = torch.nn.Linear(8, 16)

    torch.manual_seed(0)
    m = M().double()
    part = P.heads(m, n_head=2)
    opt = optim.BlockwiseAdam(m.parameters(), lr=1e-2, partition=part)
    assert opt.num_blocks == 6 + 16 + 1
    x = torch.randn(4, 8, dtype=torch.float64)
    m.c_attn.weight.grad = None
    (m.c_attn(x).pow(2).sum() + m.c_fc(x).pow(2).sum()).backward()
    g = m.c_attn.weight.grad.clone()
    w0 = m.c_attn.weight.detach().clone()
    opt.step()
    # head block (rows 0-3): v = (1-b2)||g_b||^2/32, x -= lr (1-b1) g / sqrt(v + eps)
    v = 0.001 * g[:4].pow(2).sum() / 32
    torch.testing.assert_close(m.c_attn.weight.detach()[:4], w0[:4] - 1e-2 * 0.1 * g[:4] / torch.sqrt(v + 1e-8))


# ---------------------------------------------------------------------------------------------
# torch.optim machinery: state_dict, closure, schedulers, dtypes, devices
# ---------------------------------------------------------------------------------------------
MAKERS = {
    "adam": lambda ps: optim.Adam(groups(ps), lr=1e-2, v0=0.1),
    "adasgd": lambda ps: optim.AdaSGD(groups(ps), lr=1e-2, bias_correction=True),
    "rows": lambda ps: optim.BlockwiseAdam(groups(ps), lr=1e-2, partition=P.rows()),
    "signgd": lambda ps: optim.SignGD(groups(ps), lr=1e-2),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip(name):
    # the reference: one optimizer object running 10 steps, its state saved after 5
    ref_ps = make_params()
    ref_opt = MAKERS[name](ref_ps)
    for t in range(5):
        ref_opt.zero_grad(); loss_fn(ref_ps, t).backward(); ref_opt.step()
    buf = io.BytesIO()
    torch.save(ref_opt.state_dict(), buf)
    snapshot = [p.detach().clone() for p in ref_ps]
    for t in range(5, 10):
        ref_opt.zero_grad(); loss_fn(ref_ps, t).backward(); ref_opt.step()
    # fresh params at the snapshot + fresh optimizer loaded from disk
    new_ps = [s.clone().requires_grad_() for s in snapshot]
    new_opt = MAKERS[name](new_ps)
    buf.seek(0)
    new_opt.load_state_dict(torch.load(buf))
    for t in range(5, 10):
        new_opt.zero_grad(); loss_fn(new_ps, t).backward(); new_opt.step()
    for a, b in zip(new_ps, ref_ps):
        assert torch.equal(a.detach(), b.detach())


@pytest.mark.parametrize("name", list(MAKERS))
def test_closure_returns_loss(name):
    ps = make_params()
    opt = MAKERS[name](ps)

    def closure():
        opt.zero_grad()
        loss = loss_fn(ps, 0)
        loss.backward()
        return loss

    before = [p.detach().clone() for p in ps]
    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.item() == pytest.approx(loss_fn([b for b in before], 0).item())
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, ps))


def test_lambda_lr_scheduler():
    sched_lr = lambda t: 1.0 / (1 + t)  # noqa: E731
    ps = make_params()
    opt = optim.Adam(ps, lr=1e-2)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, sched_lr)
    ref = [p.detach().clone() for p in ps]
    m = [torch.zeros_like(r) for r in ref]
    v = [torch.zeros_like(r) for r in ref]
    for t in range(10):
        opt.zero_grad(); loss_fn(ps, t).backward(); opt.step(); sch.step()
        gs = grads_of(ref, t)
        for x, g, mm, vv in zip(ref, gs, m, v):
            optim.adam_update_(x, g, mm, vv, lr=1e-2 * sched_lr(t), beta1=0.9, beta2=0.999, eps=1e-8, step=t + 1)
    for a, b in zip(ps, ref):
        assert torch.equal(a.detach(), b)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(MAKERS))
def test_dtypes_preserved(dtype, name):
    ps, opt = run(MAKERS[name], 3, dtype)
    assert all(p.dtype == dtype and torch.isfinite(p).all() for p in ps)
    for st_ in opt.state.values():
        for k, val in st_.items():
            if torch.is_tensor(val):
                assert val.dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", list(MAKERS))
def test_cuda_matches_cpu(name):
    cpu, _ = run(MAKERS[name], 20)
    ps = [p.cuda().detach().requires_grad_() for p in make_params()]
    opt = MAKERS[name](ps)
    for t in range(20):
        opt.zero_grad(); loss_fn(ps, t).backward(); opt.step()
    for a, b in zip(ps, cpu):
        torch.testing.assert_close(a.detach().cpu(), b, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# validation and non-finite gradients
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(lr=-1.0), "learning rate"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(betas=(1.0, 0.9)), "beta1"),
        (dict(betas=(0.9, -0.1)), "beta2"),
        (dict(betas=(0.9,)), "pair"),
        (dict(eps=-1e-8), "eps"),
        (dict(v0=-1.0), "v0"),
        (dict(nonfinite="bogus"), "nonfinite"),
    ],
)
@pytest.mark.parametrize("cls", [optim.Adam, optim.AdaSGD, optim.BlockwiseAdam])
def test_validation(cls, kw, msg):
    with pytest.raises(ValueError, match=msg):
        cls(make_params(), **kw)


def test_validation_groups_and_partitions():
    ps = make_params()
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": -1}])
    with pytest.raises(ValueError, match="learning rate"):
        optim.SignGD(ps, lr=-0.1)
    with pytest.raises(ValueError, match="must agree"):
        optim.AdaSGD([{"params": ps[:1]}, {"params": ps[1:], "betas": (0.9, 0.5)}])
    with pytest.raises(ValueError, match="empty"):
        optim.BlockwiseAdam(ps, partition=P.custom(lambda qs: [torch.full(q.shape, 1) for q in qs]))
    with pytest.raises(ValueError, match="cover"):
        optim.BlockwiseAdam(ps, partition=P.custom(lambda qs: [torch.zeros(q.shape, dtype=torch.long) for q in qs[:2]]))
    with pytest.raises(ValueError, match="device and dtype"):
        optim.AdaSGD([torch.zeros(2, requires_grad=True), torch.zeros(2, dtype=torch.float64, requires_grad=True)])


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_skips_step(name, bad):
    ps_live = make_params()
    opt = MAKERS[name](ps_live)
    for t in range(3):
        opt.zero_grad(); loss_fn(ps_live, t).backward(); opt.step()
    params_before = [p.detach().clone() for p in ps_live]
    state_before = copy.deepcopy(opt.state_dict())
    opt.zero_grad()
    loss_fn(ps_live, 3).backward()
    ps_live[2].grad[0, 1, 1] = bad  # one bad entry in the second param group
    with pytest.warns(RuntimeWarning, match="non-finite"):
        opt.step()
    assert opt.skipped_steps == 1
    assert all(torch.equal(a, b.detach()) for a, b in zip(params_before, ps_live))
    after = opt.state_dict()
    assert after["state"].keys() == state_before["state"].keys()
    for k, st_ in after["state"].items():
        for key, val in st_.items():
            old = state_before["state"][k][key]
            assert torch.equal(val, old) if torch.is_tensor(val) else val == old
    # a later finite step proceeds normally
    opt.zero_grad(); loss_fn(ps_live, 4).backward(); opt.step()
    assert all(torch.isfinite(p).all() for p in ps_live)


def test_nonfinite_raise_and_ignore():
    ps = make_params()
    opt = optim.Adam(ps, lr=1e-2, nonfinite="raise")
    loss_fn(ps, 0).backward()
    ps[0].grad[0, 0] = float("nan")
    with pytest.raises(FloatingPointError):
        opt.step()
    assert not opt.state
    opt2 = optim.AdaSGD(ps, lr=1e-2, nonfinite="ignore")  # like torch: the NaN propagates
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt2.step()
    assert torch.isnan(ps[0]).all()


# ---------------------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------------------
def test_create():
    ps = make_params()
    a = optim.create("adam", ps, lr=1e-3)
    assert isinstance(a, optim.Adam) and a.defaults["bias_correction"] and not a.defaults["eps_inside_sqrt"]
    assert a.defaults["betas"] == (0.9, 0.95)
    a = optim.create("adam", ps, lr=1e-3, torch_form=False)
    assert not a.defaults["bias_correction"] and a.defaults["eps_inside_sqrt"]
    s = optim.create("sgd", ps, lr=0.1, momentum=0.8)
    assert type(s) is torch.optim.SGD and s.defaults["momentum"] == 0.8
    assert isinstance(optim.create("adasgd", ps, lr=1e-3), optim.AdaSGD)
    assert isinstance(optim.create("signgd", ps, lr=1e-3), optim.SignGD)
    r = optim.create("rmsprop", ps, lr=1e-3)
    assert isinstance(r, optim.RMSProp) and r.defaults["betas"] == (0.0, 0.95)
    b = optim.create("blockwise_adam", ps, lr=1e-3, partition="rows")
    assert isinstance(b, optim.BlockwiseAdam) and b.num_blocks == P.rows().num_blocks(ps)
    with pytest.raises(ValueError, match="partition"):
        optim.create("blockwise_adam", ps, lr=1e-3)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.create("lion", ps, lr=1e-3)
    # torch_form Adam from the factory is torch.optim.Adam
    a, _ = run(lambda q: optim.create("adam", q, lr=1e-2), 50)
    b, _ = run(lambda q: torch.optim.Adam(q, lr=1e-2, betas=(0.9, 0.95)), 50)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(lr=st.floats(1e-4, 1e-1), b1=st.floats(0.0, 0.99), b2=st.floats(0.0, 0.999), eps=st.floats(1e-10, 1e-2),
       seed=st.integers(0, 1000))
def test_adam_matches_torch_hypothesis(lr, b1, b2, eps, seed):
    kw = dict(lr=lr, betas=(b1, b2), eps=eps)
    ours, _ = run(lambda ps: optim.Adam(ps, bias_correction=True, eps_inside_sqrt=False, **kw), 30, seed=seed)
    ref, _ = run(lambda ps: torch.optim.Adam(ps, foreach=True, **kw), 30, seed=seed)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_no_gradients_is_a_no_op():
    ps = make_params()
    for opt in (optim.Adam(ps), optim.AdaSGD(ps), optim.SignGD(ps)):
        before = [p.detach().clone() for p in ps]
        opt.step()
        assert not opt.state and all(torch.equal(a, b) for a, b in zip(before, ps))


def test_missing_grad_counts_as_zero_in_blocks():
    """BlockwiseAdam: a parameter without .grad is not moved and adds 0 to its blocks' statistics."""
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = optim.AdaSGD([a, b], lr=0.1, betas=(0.0, 0.5), eps=0.0)
    a.grad = torch.tensor([2.0, 2.0], dtype=torch.float64)
    opt.step()
    v = 0.5 * (4 + 4) / 4  # b's missing gradient counts as zeros, d = 4
    torch.testing.assert_close(a.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64) - 0.1 * 2 / math.sqrt(v))
    assert torch.equal(b.detach(), torch.tensor([3.0, 4.0], dtype=torch.float64))
