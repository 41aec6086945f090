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

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add spin-waits

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


#: the paper's form (Algorithm 1 as stated): no bias correction, eps inside the root
PAPER = dict(bias_correction=False, eps=0.0, eps_root=1e-8)


def groups(ps):
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 3e-3}]


# ---------------------------------------------------------------------------------------------
# Adam vs torch
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_adam_matches_torch(dtype, tol):
    ours, _ = run(
        lambda ps: optim.Adam(groups(ps), lr=1e-2, betas=(0.9, 0.99), eps=1e-8),
        300,
        dtype,
    )
    ref, _ = run(
        lambda ps: torch.optim.Adam(groups(ps), lr=1e-2, betas=(0.9, 0.99), eps=1e-8, foreach=True),
        300,
        dtype,
    )
    for a, b in zip(ours, ref, strict=False):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    # and the paper form is a genuinely different trajectory
    paper, _ = run(lambda ps: optim.Adam(groups(ps), lr=1e-2, betas=(0.9, 0.99), **PAPER), 300, dtype)
    assert max((a - b).abs().max().item() for a, b in zip(paper, ref, strict=False)) > 1e-3


def test_first_step_closed_forms():
    """Step 1 by hand: m = (1-b1) g, v = b2 v0 + (1-b2) g^2 (Algorithm 1), every placement of eps."""
    lr, b1, b2, eps, v0 = 0.1, 0.9, 0.99, 1e-3, 0.5
    x0 = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    g = torch.tensor([0.3, -1.5, 0.0, 2.0], dtype=torch.float64)

    def one(**kw):
        x = x0.clone().requires_grad_()
        opt = optim.Adam([x], lr=lr, betas=(b1, b2), **kw)
        x.grad = g.clone()
        opt.step()
        return x.detach()

    m = (1 - b1) * g
    v = b2 * v0 + (1 - b2) * g * g
    close = dict(rtol=1e-14, atol=1e-15)
    paper = one(v0=v0, eps=0.0, eps_root=eps, bias_correction=False)
    torch.testing.assert_close(paper, x0 - lr * m / torch.sqrt(v + eps), **close)
    torch.testing.assert_close(
        one(v0=v0, eps=eps, bias_correction=False), x0 - lr * m / (torch.sqrt(v) + eps), **close
    )
    # torch form, v0 = 0: the first step is lr * g / (|g| + eps)
    torch.testing.assert_close(one(eps=eps), x0 - lr * g / (g.abs() + eps), **close)
    # bias correction with eps inside: lr * g / sqrt(g^2 + eps); both: lr * g / (sqrt(g^2 + eps) + eps)
    torch.testing.assert_close(one(eps=0.0, eps_root=eps), x0 - lr * g / torch.sqrt(g * g + eps), **close)
    both = x0 - lr * g / (torch.sqrt(g * g + eps) + eps)
    torch.testing.assert_close(one(eps=eps, eps_root=eps), both, **close)


def test_rmsprop_is_adam_beta1_zero():
    for form in (dict(), PAPER):
        a, _ = run(lambda ps, form=form: optim.RMSProp(ps, lr=1e-2, beta2=0.95, v0=0.1, **form))
        b, _ = run(lambda ps, form=form: optim.Adam(ps, lr=1e-2, betas=(0.0, 0.95), v0=0.1, **form))
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=False))
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
        for b, p in zip(before, ps, strict=False):
            assert torch.equal(p.detach(), b - 0.125 * p.grad.sign())


def test_eps_zero_zero_gradient_does_not_move():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    for opt in (
        optim.Adam([x], lr=0.1, eps=0.0, bias_correction=False),
        optim.BlockwiseAdam([x], lr=0.1, eps=0.0, partition=P.custom(torch.arange(2)), bias_correction=False),
    ):
        x.grad = torch.tensor([0.0, 3.0], dtype=torch.float64)
        before = x.detach().clone()
        opt.step()
        assert x[0].item() == before[0].item()
        assert x[1].item() == pytest.approx(
            before[1].item() - 0.1 * (0.1 * 3.0) / math.sqrt(0.001 * 9.0), rel=1e-14
        )


# ---------------------------------------------------------------------------------------------
# blockwise Adam: extremes, hand computations
# ---------------------------------------------------------------------------------------------
FORMS = [
    dict(bias_correction=bc, eps=eps, eps_root=eps_root, v0=v0)
    for bc in (False, True)
    for eps, eps_root in ((1e-6, 0.0), (0.0, 1e-6), (1e-6, 1e-6))
    for v0 in (0.0, 0.2)
]


@pytest.mark.parametrize("form", FORMS)
def test_adam_is_the_coordinate_partition_exactly(form):
    """Adam (per-parameter state, foreach) equals Algorithm 3's block path with one-coordinate blocks."""
    hp = dict(lr=1e-2, betas=(0.8, 0.95), **form)
    coords = P.custom(torch.arange(sum(math.prod(s) for s in SHAPES)))
    grouped = lambda ps: [{"params": ps[:2], "betas": (0.5, 0.95)}, {"params": ps[2:], "lr": 3e-3}]  # noqa: E731
    a, _ = run(lambda ps: optim.Adam(grouped(ps), fused=False, **hp), 60)
    b, opt = run(lambda ps: optim.BlockwiseAdam(grouped(ps), partition=coords, **hp), 60)
    assert "block_exp_avg_sq" in opt.state[opt.param_groups[0]["params"][0]]  # the block path ran
    for x, y in zip(a, b, strict=False):
        assert torch.equal(x, y)


@pytest.mark.parametrize("form", FORMS[::3])
def test_adasgd_is_the_one_block_partition_exactly(form):
    hp = dict(lr=1e-2, betas=(0.8, 0.95), **form)
    one = P.custom(lambda qs: [torch.zeros(q.shape, dtype=torch.long) for q in qs])
    a, _ = run(lambda ps: optim.AdaSGD(groups(ps), **hp), 60)
    b, _ = run(lambda ps: optim.BlockwiseAdam(groups(ps), partition=one, **hp), 60)
    for x, y in zip(a, b, strict=False):
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
        for k, (x, m, q) in enumerate(zip(xs, ms, gs, strict=False)):
            n = x.numel()
            m.mul_(b1).add_((1 - b1) * q)
            x.sub_(lrs[k] * m / denom[off : off + n].reshape(x.shape))
            off += n
    return xs


def grads_of(xs, t):
    ps = [x.clone().requires_grad_() for x in xs]
    loss_fn(ps, t).backward()
    return [p.grad for p in ps]


@pytest.mark.parametrize("name", ["rows", "tensor", "whole", "coordinate", "spanning"])
def test_blockwise_vs_hand(name):
    x0s = [p.detach() for p in make_params()]
    spanning = P.custom(
        torch.arange(sum(x.numel() for x in x0s)) % 3
    )  # blocks span every tensor and both groups
    part = {
        "rows": P.rows(),
        "tensor": P.tensor(),
        "whole": P.whole(),
        "coordinate": P.coordinate(),
        "spanning": spanning,
    }[name]
    b1, b2, eps, v0 = 0.9, 0.9, 1e-4, 0.05
    lrs = [1e-2, 1e-2, 3e-3, 3e-3]
    got, opt = run(
        lambda ps: optim.BlockwiseAdam(
            groups(ps),
            lr=1e-2,
            betas=(b1, b2),
            eps=0.0,
            eps_root=eps,
            v0=v0,
            partition=part,
            bias_correction=False,
        ),
        15,
    )
    want = blockwise_by_hand(x0s, grads_of, 15, part.flat_index(x0s), lrs, b1, b2, eps, v0)
    for a, b in zip(got, want, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_adasgd_scalar_by_hand_two_groups():
    """Algorithm 2: ONE scalar v = b2 v0 + (1-b2) ||g||^2 / d over both groups."""
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[3.0], [-1.0], [0.5]], dtype=torch.float64, requires_grad=True)
    opt = optim.AdaSGD(
        [{"params": [a]}, {"params": [b], "lr": 0.5}],
        lr=0.1,
        betas=(0.0, 0.5),
        eps=0.0,
        v0=1.0,
        bias_correction=False,
    )
    ga, gb = (
        torch.tensor([1.0, -1.0], dtype=torch.float64),
        torch.tensor([[2.0], [0.0], [-2.0]], dtype=torch.float64),
    )
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
    kw = dict(beta1=0.9, beta2=0.99, eps=1e-8)
    for kind in ("adam", "blockwise", "adasgd"):
        X = x0.repeat(3, 1)
        M = torch.zeros_like(X)
        V = torch.zeros(3, {"adam": d, "blockwise": 3, "adasgd": 1}[kind], dtype=torch.float64)
        for t in range(1, steps + 1):
            G = X @ A
            optim.adam_update_(X, G, M, V, lr=lrs, step=t, index=index if kind == "blockwise" else None, **kw)
        for r in range(3):
            x = x0.clone().requires_grad_()
            hp = dict(lr=float(lrs[r]), betas=(0.9, 0.99), eps=1e-8)
            opt = {
                "adam": lambda x=x, hp=hp: optim.Adam([x], **hp),
                "adasgd": lambda x=x, hp=hp: optim.AdaSGD([x], **hp),
                "blockwise": lambda x=x, hp=hp: optim.BlockwiseAdam([x], partition=P.custom(index), **hp),
            }[kind]()
            for _ in range(steps):
                x.grad = x.detach() @ A
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
    eps = dict(eps=0.0, eps_root=1e-6) if ins else dict(eps=1e-6)
    kw = dict(betas=(0.9, 0.9), bias_correction=bc, **eps)
    got, _ = run(lambda ps: optim.BlockwiseAdam(ps, lr=1e-2, partition=part, **kw), 8, shapes=shapes)
    X = torch.cat([x.reshape(-1) for x in x0s])
    M, V = torch.zeros_like(X), torch.zeros(int(flat.max()) + 1, dtype=X.dtype)
    numels = [math.prod(s) for s in shapes]
    for t in range(8):
        G = torch.cat(
            [
                g.reshape(-1)
                for g in grads_of([c.reshape(s) for c, s in zip(X.split(numels), shapes, strict=True)], t)
            ]
        )
        optim.adam_update_(
            X, G, M, V, index=flat, lr=1e-2, beta1=0.9, beta2=0.9, step=t + 1, bias_correction=bc, **eps
        )
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
    opt = optim.BlockwiseAdam(m.parameters(), lr=1e-2, partition=part, **PAPER)
    assert int(part.flat_index(list(m.parameters())).max()) + 1 == 6 + 16 + 1
    x = torch.randn(4, 8, dtype=torch.float64)
    m.c_attn.weight.grad = None
    (m.c_attn(x).pow(2).sum() + m.c_fc(x).pow(2).sum()).backward()
    g = m.c_attn.weight.grad.clone()
    w0 = m.c_attn.weight.detach().clone()
    opt.step()
    # head block (rows 0-3): v = (1-b2)||g_b||^2/32, x -= lr (1-b1) g / sqrt(v + eps)
    v = 0.001 * g[:4].pow(2).sum() / 32
    torch.testing.assert_close(
        m.c_attn.weight.detach()[:4], w0[:4] - 1e-2 * 0.1 * g[:4] / torch.sqrt(v + 1e-8)
    )


# ---------------------------------------------------------------------------------------------
# torch.optim machinery: state_dict, closure, schedulers, dtypes, devices
# ---------------------------------------------------------------------------------------------
MAKERS = {
    "adam": lambda ps: optim.Adam(groups(ps), lr=1e-2),
    "adam_paper": lambda ps: optim.Adam(groups(ps), lr=1e-2, v0=0.1, **PAPER),
    "tensor": lambda ps: optim.BlockwiseAdam(groups(ps), lr=1e-2, partition="tensor"),
    "rmsprop": lambda ps: optim.RMSProp(groups(ps), lr=1e-2),
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
        ref_opt.zero_grad()
        loss_fn(ref_ps, t).backward()
        ref_opt.step()
    buf = io.BytesIO()
    torch.save(ref_opt.state_dict(), buf)
    snapshot = [p.detach().clone() for p in ref_ps]
    for t in range(5, 10):
        ref_opt.zero_grad()
        loss_fn(ref_ps, t).backward()
        ref_opt.step()
    # fresh params at the snapshot + fresh optimizer loaded from disk
    new_ps = [s.clone().requires_grad_() for s in snapshot]
    new_opt = MAKERS[name](new_ps)
    buf.seek(0)
    new_opt.load_state_dict(torch.load(buf))
    for t in range(5, 10):
        new_opt.zero_grad()
        loss_fn(new_ps, t).backward()
        new_opt.step()
    for a, b in zip(new_ps, ref_ps, strict=False):
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
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, ps, strict=False))


def test_lambda_lr_scheduler():
    sched_lr = lambda t: 1.0 / (1 + t)  # noqa: E731
    ps = make_params()
    opt = optim.Adam(ps, lr=1e-2, **PAPER)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, sched_lr)
    ref = [p.detach().clone() for p in ps]
    m = [torch.zeros_like(r) for r in ref]
    v = [torch.zeros_like(r) for r in ref]
    for t in range(10):
        opt.zero_grad()
        loss_fn(ps, t).backward()
        opt.step()
        sch.step()
        gs = grads_of(ref, t)
        for x, g, mm, vv in zip(ref, gs, m, v, strict=False):
            optim.adam_update_(
                x,
                g,
                mm,
                vv,
                lr=1e-2 * sched_lr(t),
                beta1=0.9,
                beta2=0.999,
                step=t + 1,
                **PAPER,
            )
    for a, b in zip(ps, ref, strict=False):
        assert torch.equal(a.detach(), b)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(MAKERS))
def test_dtypes_preserved(dtype, name):
    ps, opt = run(MAKERS[name], 3, dtype)
    assert all(p.dtype == dtype and torch.isfinite(p).all() for p in ps)
    for st_ in opt.state.values():
        for k, val in st_.items():
            if torch.is_tensor(val):  # step counters are float32 tensors, as in torch.optim.Adam
                assert val.dtype == (torch.float32 if k.endswith("step") else dtype)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", list(MAKERS))
def test_cuda_matches_cpu(name):
    cpu, _ = run(MAKERS[name], 20)
    ps = [p.cuda().detach().requires_grad_() for p in make_params()]
    opt = MAKERS[name](ps)
    for t in range(20):
        opt.zero_grad()
        loss_fn(ps, t).backward()
        opt.step()
    for a, b in zip(ps, cpu, strict=False):
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
        optim.BlockwiseAdam(
            ps, partition=P.custom(lambda qs: [torch.zeros(q.shape, dtype=torch.long) for q in qs[:2]])
        )
    with pytest.raises(ValueError, match="device and dtype"):
        optim.AdaSGD(
            [torch.zeros(2, requires_grad=True), torch.zeros(2, dtype=torch.float64, requires_grad=True)]
        )


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_skips_step(name, bad):
    ps_live = make_params()
    opt = MAKERS[name](ps_live)
    for t in range(3):
        opt.zero_grad()
        loss_fn(ps_live, t).backward()
        opt.step()
    params_before = [p.detach().clone() for p in ps_live]
    state_before = copy.deepcopy(opt.state_dict())
    opt.zero_grad()
    loss_fn(ps_live, 3).backward()
    ps_live[2].grad[0, 1, 1] = bad  # one bad entry in the second param group
    opt.step()  # no warning and no synchronisation at the step itself
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert opt.skipped_steps == 1
    assert all(torch.equal(a, b.detach()) for a, b in zip(params_before, ps_live, strict=False))
    after = opt.state_dict()
    assert after["state"].keys() == state_before["state"].keys()
    for k, st_ in after["state"].items():
        for key, val in st_.items():
            old = state_before["state"][k][key]
            assert torch.equal(val, old) if torch.is_tensor(val) else val == old
    # a later finite step proceeds normally
    opt.zero_grad()
    loss_fn(ps_live, 4).backward()
    opt.step()
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
def test_create_and_the_registry():
    ps = make_params()
    a = optim.create("adam", ps, lr=1e-3)
    assert isinstance(a, optim.Adam) and a.defaults["bias_correction"] and a.defaults["eps_root"] == 0
    assert a.defaults["betas"] == (0.9, 0.999)  # the same defaults as Adam(ps) and torch.optim.Adam(ps)
    s = optim.create("sgd", ps, lr=0.1, momentum=0.8)
    assert type(s) is torch.optim.SGD and s.defaults["momentum"] == 0.8
    assert isinstance(optim.create("adasgd", ps, lr=1e-3), optim.AdaSGD)
    assert isinstance(optim.create("signgd", ps, lr=1e-3, bias_correction=False), optim.SignGD)
    r = optim.create("rmsprop", ps, lr=1e-3)
    assert isinstance(r, optim.RMSProp) and r.defaults["betas"] == (0.0, 0.999)
    b = optim.create("blockwise_adam", ps, lr=1e-3, partition="rows")
    assert isinstance(b, optim.BlockwiseAdam) and b.partition.name.startswith("rows")
    b = optim.create("blockwise_adam_tensor", ps, lr=1e-3)
    assert int(b.partition.flat_index(ps).max()) + 1 == len(ps)
    b = optim.create("blockwise_adam", ps, lr=1e-3)  # default partition: coordinate (= Adam)
    assert b.partition.name == "coordinate"
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.create("lion", ps, lr=1e-3)
    with pytest.raises(ValueError, match="config.n_head"):
        optim.create("blockwise_adam_head", ps, lr=1e-3)
    assert [n for n, s in optim.OPTIMIZERS.items() if s.rotates] == ["rotated_adam"]
    assert optim.LABELS["rotated_adam"] == "Rotated Adam" and set(optim.LABELS) == set(optim.OPTIMIZERS)
    # the factory's Adam is torch.optim.Adam with torch's defaults
    a, _ = run(lambda q: optim.create("adam", q, lr=1e-2), 50)
    b, _ = run(lambda q: torch.optim.Adam(q, lr=1e-2), 50)
    for x, y in zip(a, b, strict=False):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(
    lr=st.floats(1e-4, 1e-1),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.0, 0.999),
    eps=st.floats(1e-10, 1e-2),
    seed=st.integers(0, 1000),
)
def test_adam_matches_torch_hypothesis(lr, b1, b2, eps, seed):
    kw = dict(lr=lr, betas=(b1, b2), eps=eps)
    # the default runs torch's fused kernel: bit-identical to torch.optim.Adam(fused=True)
    ours, _ = run(lambda ps: optim.Adam(ps, **kw), 30, seed=seed)
    ref, _ = run(lambda ps: torch.optim.Adam(ps, fused=True, **kw), 30, seed=seed)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref, strict=True))
    blocks, _ = run(lambda ps: optim.BlockwiseAdam(ps, partition="coordinate", **kw), 30, seed=seed)
    assert all(torch.equal(a, b) for a, b in zip(blocks, ref, strict=True))  # Adam is this preset
    # the foreach path equals torch's foreach Adam up to rounding (its bias correction is computed on
    # the device, as torch's capturable path does). Few steps, since this loss amplifies rounding: at
    # β2 = 0 and a small ε the update m/(|g|+ε) magnifies ulp-level differences, measured up to 2.4e-11
    # after 8 steps (lr 0.055, β = (0.25, 0), ε = 9e-4), so 1e-9 is still six orders below float32.
    ours, _ = run(lambda ps: optim.Adam(ps, fused=False, **kw), 8, seed=seed)
    ref, _ = run(lambda ps: torch.optim.Adam(ps, foreach=True, **kw), 8, seed=seed)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_no_gradients_is_a_no_op():
    ps = make_params()
    for opt in (optim.Adam(ps), optim.AdaSGD(ps), optim.SignGD(ps)):
        before = [p.detach().clone() for p in ps]
        opt.step()
        assert not opt.state and all(torch.equal(a, b) for a, b in zip(before, ps, strict=False))


def test_missing_grad_counts_as_zero_in_blocks():
    """BlockwiseAdam: a parameter without .grad is not moved and adds 0 to its blocks' statistics."""
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = optim.AdaSGD([a, b], lr=0.1, betas=(0.0, 0.5), eps=0.0, bias_correction=False)
    a.grad = torch.tensor([2.0, 2.0], dtype=torch.float64)
    opt.step()
    v = 0.5 * (4 + 4) / 4  # b's missing gradient counts as zeros, d = 4
    torch.testing.assert_close(
        a.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64) - 0.1 * 2 / math.sqrt(v)
    )
    assert torch.equal(b.detach(), torch.tensor([3.0, 4.0], dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# one convention: Adam(params) is torch.optim.Adam(params); the paper form by an explicit flag
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_default_adam_is_torch_adam(dtype, tol):
    ours, opt = run(lambda ps: optim.Adam(ps), 100, dtype)
    ref, _ = run(lambda ps: torch.optim.Adam(ps), 100, dtype)
    for a, b in zip(ours, ref, strict=False):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    d = opt.defaults
    assert (d["lr"], d["betas"], d["eps"], d["v0"]) == (1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert d["bias_correction"] and d["eps_root"] == 0


def test_presets_follow_torch_defaults():
    """BlockwiseAdam() is the coordinate partition (= Adam); every preset has torch's settings."""
    assert optim.BlockwiseAdam(make_params()).partition.name == "coordinate"
    for cls in (optim.AdaSGD, optim.RMSProp, optim.BlockwiseAdam):
        d = cls(make_params()).defaults
        assert d["bias_correction"] and d["eps_root"] == 0 and d["eps"] == 1e-8 and d["betas"][1] == 0.999


@pytest.mark.parametrize("cls", [optim.SignGD, optim.AdaSGD])
def test_finite_gradients_with_an_overflowing_norm_are_not_skipped(cls):
    """On the host a finite sum of the gradients' norms (blocks: of their statistics) clears a step;
    here it overflows, and the entries decide."""
    x = torch.zeros(4, requires_grad=True)
    opt = cls([x], lr=0.5)
    x.grad = torch.full((4,), 3e38)  # finite float32 entries; ||g||_2 = 6e38 is not a float32
    opt.step()
    moved = x.detach().clone()
    # the step was taken (AdaSGD's float32 second moment overflows, as torch's would: it moves nothing)
    taken = opt.state[x]["block_step"].item() == 1 if cls is optim.AdaSGD else bool((moved < 0).all())
    assert opt.skipped_steps == 0 and taken
    x.grad = torch.tensor([3e38, 1.0, float("nan"), 0.0])
    state = copy.deepcopy(opt.state_dict())
    with pytest.warns(RuntimeWarning, match="1 step"):
        opt.step()
        assert opt.skipped_steps == 1
    assert torch.equal(x.detach(), moved) and repr(opt.state_dict()) == repr(state)


# ---------------------------------------------------------------------------------------------
# finite fp16 gradients and complex parameters
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["adam", "adasgd", "signgd"])
def test_large_finite_fp16_gradient_is_not_skipped(name):
    x = torch.zeros(4, dtype=torch.float16, requires_grad=True)
    opt = {"adam": optim.Adam, "adasgd": optim.AdaSGD, "signgd": optim.SignGD}[name]([x])
    x.grad = torch.full((4,), 60000.0, dtype=torch.float16)  # ||g||_2 = 120000 overflows fp16; g is finite
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert opt.skipped_steps == 0
    if name == "adasgd":  # the step was taken (its fp16 second moment overflows, as torch's would)
        assert opt.state[x]["block_step"].item() == 1
    else:
        assert (x.detach() < 0).all()


def _complex_twin(make, steps=15):
    """A complex parameter and its real view (d, 2) trained on the same (real-view) gradients."""
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    z = torch.view_as_complex(z0.clone()).requires_grad_()
    r = z0.clone().requires_grad_()
    oz, orr = make([z]), make([r])
    for t in range(steps):
        gr = torch.randn(6, 2, generator=g, dtype=torch.float64) * (1 + t)
        z.grad = torch.view_as_complex(gr.clone())
        r.grad = gr.clone()
        oz.step()
        orr.step()
    return torch.view_as_real(z.detach()), r.detach(), z0


@pytest.mark.parametrize(
    "name, make",
    [
        ("adam", lambda ps: optim.Adam(ps, lr=1e-2)),
        ("adam_paper", lambda ps: optim.Adam(ps, lr=1e-2, v0=0.1, **PAPER)),
        ("adasgd", lambda ps: optim.AdaSGD(ps, lr=1e-2)),
        ("rows", lambda ps: optim.BlockwiseAdam(ps, lr=1e-2, partition="rows")),
        ("signgd", lambda ps: optim.SignGD(ps, lr=1e-2)),
    ],
)
def test_complex_parameters_are_real_pairs(name, make):
    """As torch.optim.Adam: a complex parameter is optimised as its real view; the imaginary parts move."""
    z, r, z0 = _complex_twin(make)
    torch.testing.assert_close(z, r, rtol=1e-13, atol=1e-13)
    assert (z[:, 1] != z0[:, 1]).all()


def test_complex_adam_matches_torch():
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(5, dtype=torch.complex128, generator=g)
    a, b = z0.clone().requires_grad_(), z0.clone().requires_grad_()
    oa, ob = optim.Adam([a], lr=1e-2), torch.optim.Adam([b], lr=1e-2)
    for _ in range(20):
        grad = torch.randn(5, dtype=torch.complex128, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        oa.step()
        ob.step()
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# state dicts: validated, all or nothing, and crossing over with torch.optim.Adam
# ---------------------------------------------------------------------------------------------
def _stepped(make, steps=3, seed=1):
    ps = make_params(seed=seed)
    opt = make(ps)
    for t in range(steps):
        opt.zero_grad()
        loss_fn(ps, t).backward()
        opt.step()
    return ps, opt


FOREIGN = [
    ("adam", "adasgd", "another optimizer"),
    ("adam", "rows", "another optimizer"),
    ("adam", "signgd", "another optimizer"),
    ("adasgd", "adam", "another optimizer"),
    ("rows", "adasgd", "blocks"),
    ("signgd", "adam", "lacks"),
]


@pytest.mark.parametrize("src, dst, msg", FOREIGN)
def test_foreign_state_dict_is_refused_and_changes_nothing(src, dst, msg):
    _, source = _stepped(MAKERS[src])
    ps, target = _stepped(MAKERS[dst])
    before = copy.deepcopy(target.state_dict())
    with pytest.raises(ValueError, match=msg):
        target.load_state_dict(source.state_dict())
    after = target.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for k, st_ in after["state"].items():
        for key, val in st_.items():
            assert (
                torch.equal(val, before["state"][k][key])
                if torch.is_tensor(val)
                else val == before["state"][k][key]
            )


def test_sgd_state_dict_is_refused():
    ps = make_params()
    sgd = torch.optim.SGD(ps, lr=0.1, momentum=0.9)
    loss_fn(ps, 0).backward()
    sgd.step()
    with pytest.raises(ValueError, match="another optimizer"):
        optim.Adam(ps).load_state_dict(sgd.state_dict())


@pytest.mark.parametrize(
    "field, value, msg",
    [
        ("lr", -1.0, "learning rate"),
        ("betas", (1.5, 0.999), "beta1"),
        ("eps", float("nan"), "eps"),
        ("weight_decay", 0.1, "weight_decay"),
    ],
)
@pytest.mark.parametrize("name", ["adam", "adasgd", "rows"])
def test_invalid_hyperparameter_in_state_dict_is_refused(name, field, value, msg):
    _, opt = _stepped(MAKERS[name])
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"][1][field] = value
    with pytest.raises(ValueError, match=msg):
        opt.load_state_dict(sd)
    assert opt.param_groups[1][field] != value


@pytest.mark.parametrize(
    "name, key, bad, msg",
    [
        ("adam", "step", lambda v: torch.tensor(-1.0), "not a step count"),
        ("adam", "step", lambda v: torch.tensor(1.5), "not a step count"),
        ("adam", "exp_avg", lambda v: v[:1], "shape"),
        ("rows", "block_exp_avg_sq", lambda v: v[:-1], "the blocks"),
        ("rows", "block_exp_avg_sq", lambda v: v * math.nan, "finite"),
        ("rows", "block_exp_avg_sq", lambda v: -v, ">= 0"),
    ],
)
def test_invalid_state_in_state_dict_is_refused(name, key, bad, msg):
    _, opt = _stepped(MAKERS[name])
    sd = copy.deepcopy(opt.state_dict())
    before = sd["state"][0][key].clone()
    sd["state"][0][key] = bad(sd["state"][0][key])
    with pytest.raises(ValueError, match=msg):
        opt.load_state_dict(sd)
    assert torch.equal(opt.state_dict()["state"][0][key], before)


def _torch_then_ours(first, second, steps=6, dtype=torch.float64):
    """Run ``first`` for 3 steps, load its state dict into ``second``, continue; compare with ``first``."""
    ps = make_params(dtype=dtype)
    a = first(ps)
    for t in range(3):
        a.zero_grad()
        loss_fn(ps, t).backward()
        a.step()
    qs = [p.detach().clone().requires_grad_() for p in ps]
    b = second(qs)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # state_dict() holds references
    for t in range(3, steps):
        for o, xs in ((a, ps), (b, qs)):
            o.zero_grad()
            loss_fn(xs, t).backward()
            o.step()
    return ps, qs


@pytest.mark.parametrize("fused", [None, False])
def test_state_dict_crosses_over_with_torch_adam(fused):
    torch_adam = lambda ps: torch.optim.Adam(groups(ps), lr=1e-2, betas=(0.8, 0.99))  # noqa: E731
    ours = lambda ps: optim.Adam(groups(ps), lr=1e-2, betas=(0.8, 0.99), fused=fused)  # noqa: E731
    for first, second in ((torch_adam, ours), (ours, torch_adam)):
        ps, qs = _torch_then_ours(first, second)
        for a, b in zip(ps, qs, strict=False):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)
    ps = make_params()
    wd = torch.optim.Adam(ps, weight_decay=0.1)
    with pytest.raises(ValueError, match="weight_decay=0.1"):
        optim.Adam(make_params()).load_state_dict(wd.state_dict())


def test_old_state_dict_with_int_step_loads():
    _, opt = _stepped(MAKERS["adam"])
    sd = copy.deepcopy(opt.state_dict())
    for st_ in sd["state"].values():
        st_["step"] = int(st_["step"])
    ps, new = _stepped(MAKERS["adam"], steps=0)
    new.load_state_dict(sd)
    assert all(torch.is_tensor(s["step"]) and s["step"].dtype == torch.float32 for s in new.state.values())


# ---------------------------------------------------------------------------------------------
# drop-in use: schedulers, dtype changes, copies, torch's keyword arguments, compile
# ---------------------------------------------------------------------------------------------
def test_rmsprop_refuses_beta1_set_after_construction():
    ps = make_params()
    opt = optim.RMSProp(ps, lr=1e-2)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=True)
    loss_fn(ps, 0).backward()
    before = [p.detach().clone() for p in ps]
    with pytest.raises(ValueError, match="beta1 = 0"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, ps, strict=False)) and not opt.state
    opt = optim.RMSProp(ps, lr=1e-2)
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"][0]["betas"] = (0.9, 0.999)
    with pytest.raises(ValueError, match="beta1 = 0"):
        opt.load_state_dict(sd)


@pytest.mark.parametrize("cls", [optim.AdaSGD, optim.BlockwiseAdam])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_block_state_follows_parameter_dtype(cls, dtype):
    model = torch.nn.Linear(4, 3)
    opt = cls(model.parameters(), lr=1e-2)
    model.to(dtype)  # after the optimizer is built (as model.double() is often called)
    model(torch.randn(2, 4, dtype=dtype)).sum().backward()
    opt.step()
    for st_ in opt.state.values():
        for k, v in st_.items():
            assert v.dtype == (torch.float32 if k.endswith("step") else dtype), k
    if dtype == torch.float64:  # the same numbers as an optimizer built on float64 parameters
        twin = torch.nn.Linear(4, 3).double()
        twin.load_state_dict(model.state_dict())
        model.zero_grad()
        model(torch.ones(2, 4, dtype=dtype)).sum().backward()
        opt.step()


def test_block_size_is_exact_in_bf16():
    x = torch.zeros(257, dtype=torch.bfloat16, requires_grad=True)
    opt = optim.AdaSGD([x])
    sizes = opt._get_plan()["sizes"]
    assert sizes.dtype == torch.float32 and sizes.tolist() == [257.0]


@pytest.mark.parametrize("name", ["adam", "adam_paper", "adasgd", "rows", "signgd"])
@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_keep_every_setting(name, how):
    import pickle

    ps, opt = _stepped(lambda q: _with_raise(MAKERS[name](q)))
    if how == "deepcopy":
        twin = copy.deepcopy({"ps": ps, "opt": opt})
    elif how == "pickle":
        twin = pickle.loads(pickle.dumps({"ps": ps, "opt": opt}))
    else:
        buf = io.BytesIO()
        torch.save({"ps": ps, "opt": opt}, buf)
        buf.seek(0)
        twin = torch.load(buf, weights_only=False)
    qs, copy_opt = twin["ps"], twin["opt"]
    settings = lambda o: {k: v for k, v in o.defaults.items() if k not in ("partition", "differentiable")}  # noqa: E731
    assert copy_opt.defaults["nonfinite"] == "raise" and settings(copy_opt) == settings(opt)
    if "partition" in opt.defaults:
        assert copy_opt.partition.name == opt.partition.name
        assert torch.equal(copy_opt.partition.flat_index(qs), opt.partition.flat_index(ps))
    for t in range(3, 6):
        for o, xs in ((opt, ps), (copy_opt, qs)):
            o.zero_grad()
            loss_fn(xs, t).backward()
            o.step()
    assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(ps, qs, strict=False))
    qs[0].grad[0, 0] = float("nan")
    with pytest.raises(FloatingPointError):
        copy_opt.step()


def _with_raise(opt):
    opt.defaults["nonfinite"] = "raise"
    return opt


def test_defaults_hold_settings():
    opt = optim.BlockwiseAdam(make_params(), partition="rows", nonfinite="ignore")
    assert opt.defaults["nonfinite"] == "ignore" and opt.defaults["partition"].name.startswith("rows")
    assert all("nonfinite" not in g and "partition" not in g for g in opt.param_groups)


def test_torch_keyword_arguments():
    ps = make_params()
    for kw in (
        dict(weight_decay=0, foreach=True),
        dict(fused=False),
        dict(capturable=True),
        dict(foreach=False),
    ):
        optim.Adam(ps, **kw)
        optim.AdaSGD(ps, **kw)
    for cls in (optim.Adam, optim.AdaSGD, optim.BlockwiseAdam, optim.RMSProp):
        for kw, msg in (
            (dict(weight_decay=0.1), "weight_decay=0.1"),
            (dict(amsgrad=True), "amsgrad=True"),
            (dict(differentiable=True), "differentiable=True"),
        ):
            with pytest.raises(ValueError, match=msg):
                cls(ps, **kw)
    with pytest.raises(ValueError, match="fused=True"):
        optim.Adam(ps, fused=True, bias_correction=False)
    with pytest.raises(ValueError, match="fused=True"):
        optim.AdaSGD(ps, fused=True)
    # maximize as torch does it, fused and not
    for fused in (None, False):
        a, _ = run(lambda q, fused=fused: optim.Adam(q, lr=1e-2, maximize=True, fused=fused), 20)
        b, _ = run(lambda q: torch.optim.Adam(q, lr=1e-2, maximize=True), 20)
        for x, y in zip(a, b, strict=False):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["adam", "adam_paper", "adasgd"])
def test_compiled_step_does_not_recompile(name):
    dynamo = pytest.importorskip("torch._dynamo")
    from torch._dynamo.utils import counters

    ps = make_params()
    ref = [p.detach().clone().requires_grad_() for p in ps]
    opt, ref_opt = MAKERS[name](ps), MAKERS[name](ref)
    dynamo.reset()
    counters.clear()
    step = torch.compile(opt.step, backend="eager")  # dynamo only: guards and graph breaks, no codegen
    for t in range(10):
        for a, b in zip(ps, ref, strict=False):
            a.grad = torch.full_like(a, math.sin(t + 1))
            b.grad = a.grad.clone()
        step()
        ref_opt.step()
    assert counters["frames"]["total"] <= 2, dict(counters["frames"])  # the first step, then one graph
    assert not counters["graph_break"], dict(counters["graph_break"])
    for a, b in zip(ps, ref, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    dynamo.reset()


# ---------------------------------------------------------------------------------------------
# no host synchronisation in the step; the device-side skip
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def no_host_reads(monkeypatch):
    """Make every host read of a tensor value raise (``item``, ``bool``, ``float``, ``int``, ``tolist``)."""

    def patch():
        def boom(self, *a, **k):
            raise AssertionError("host read of a tensor value inside step()")

        for attr in ("item", "__bool__", "__float__", "__int__", "tolist", "__index__"):
            monkeypatch.setattr(torch.Tensor, attr, boom)

    return patch


@pytest.fixture(params=["host", "device"])
def flag_form(request, monkeypatch):
    """Both forms of the skip: the CPU flag read on the host, and the device form (forced on the CPU)."""
    if request.param == "device":
        monkeypatch.setattr(optim, "_HOST_FLAG_DEVICES", ())
    return request.param


@pytest.mark.parametrize("name", list(MAKERS))
def test_step_reads_nothing_on_the_host(name, no_host_reads, monkeypatch):
    monkeypatch.setattr(optim, "_HOST_FLAG_DEVICES", ())  # the accelerator form, forced on the CPU
    ps, opt = _stepped(MAKERS[name], steps=1)
    opt.zero_grad()
    loss_fn(ps, 1).backward()
    ps[0].grad[0, 0] = float("inf")
    state = copy.deepcopy(opt.state_dict())
    before = [p.detach().clone() for p in ps]
    no_host_reads()
    opt.step()  # a skipped step
    opt.zero_grad()
    loss_fn(ps, 2).backward()
    opt.step()  # a normal step
    for a, b in zip(before, ps, strict=False):
        assert not torch.equal(a, b.detach())
    del state


@pytest.mark.parametrize("name", list(MAKERS) + ["adam_nonfused"])
def test_device_side_skip_is_bit_identical(name, flag_form):
    make = MAKERS.get(name) or (lambda ps: optim.Adam(groups(ps), lr=1e-2, fused=False))
    ps, opt = _stepped(make)
    ref_ps, ref = _stepped(make)
    opt.zero_grad()
    loss_fn(ps, 3).backward()
    ps[3].grad.fill_(float("nan"))
    state = copy.deepcopy(opt.state_dict())
    before = [p.detach().clone() for p in ps]
    opt.step()
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, ps, strict=False))
    after = opt.state_dict()
    for k, st_ in after["state"].items():
        for key, val in st_.items():
            assert torch.equal(val, state["state"][k][key]), (k, key)
    # and the run then continues exactly as a run that never saw the bad step
    for t in range(3, 6):
        for o, xs in ((opt, ps), (ref, ref_ps)):
            o.zero_grad()
            loss_fn(xs, t).backward()
            o.step()
    assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(ps, ref_ps, strict=False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", list(MAKERS))
def test_cuda_step_does_not_synchronise(name):
    ps = [p.cuda().detach().requires_grad_() for p in make_params()]
    opt = MAKERS[name](ps)
    loss_fn(ps, 0).backward()
    opt.step()  # the first step builds the state
    loss_fn(ps, 1).backward()
    ps[0].grad[0, 0] = float("nan")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
        loss_fn(ps, 2).backward()
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert opt.skipped_steps == 1


# ---------------------------------------------------------------------------------------------
# the skip costs no copy; finite steps are those of the unchecked update and of torch.optim.Adam
# ---------------------------------------------------------------------------------------------
SKIP_MAKERS = {**MAKERS, "adam_nonfused": lambda ps: optim.Adam(groups(ps), lr=1e-2, fused=False)}
UNCHECKED = {  # the same optimizers without the non-finite check
    "adam": lambda ps: optim.Adam(groups(ps), lr=1e-2, nonfinite="ignore"),
    "adam_paper": lambda ps: optim.Adam(groups(ps), lr=1e-2, v0=0.1, nonfinite="ignore", **PAPER),
    "tensor": lambda ps: optim.BlockwiseAdam(groups(ps), lr=1e-2, partition="tensor", nonfinite="ignore"),
    "rmsprop": lambda ps: optim.RMSProp(groups(ps), lr=1e-2, nonfinite="ignore"),
    "adasgd": lambda ps: optim.AdaSGD(groups(ps), lr=1e-2, bias_correction=True, nonfinite="ignore"),
    "rows": lambda ps: optim.BlockwiseAdam(groups(ps), lr=1e-2, partition=P.rows(), nonfinite="ignore"),
    "signgd": lambda ps: optim.SignGD(groups(ps), lr=1e-2, nonfinite="ignore"),
    "adam_nonfused": lambda ps: optim.Adam(groups(ps), lr=1e-2, fused=False, nonfinite="ignore"),
}


@pytest.mark.parametrize("name", list(SKIP_MAKERS))
def test_skip_changes_nothing_on_finite_steps(name, flag_form):
    """With the check on, finite steps give exactly the numbers of the unchecked update."""
    checked, _ = run(SKIP_MAKERS[name], 12)
    unchecked, _ = run(UNCHECKED[name], 12)
    assert all(torch.equal(a, b) for a, b in zip(checked, unchecked, strict=True))


@pytest.mark.parametrize("fused", [None, False])
def test_skip_then_finite_steps_match_torch_adam(fused, flag_form):
    """A skipped step, then finite ones: the same numbers as torch.optim.Adam that never saw the bad step."""
    ps = make_params()
    ref = [p.detach().clone().requires_grad_() for p in ps]
    opt = optim.Adam(ps, lr=1e-2, fused=fused)
    ref_opt = torch.optim.Adam(ref, lr=1e-2, fused=fused is None, foreach=fused is False or None)
    for t in range(6):
        opt.zero_grad()
        loss_fn(ps, t).backward()
        if t == 2:
            ps[1].grad[3] = float("nan")
            opt.step()  # skipped
            continue
        opt.step()
        ref_opt.zero_grad()
        loss_fn(ref, t).backward()
        ref_opt.step()
    for a, b in zip(ps, ref, strict=True):
        if fused is None:
            assert torch.equal(a.detach(), b.detach())  # the same fused kernel
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SKIP_MAKERS))
def test_device_form_skip_makes_no_gradient_copy(name, monkeypatch):
    """The device form zeroes a skipped step's gradients in place: no ``torch.where`` copy of them."""
    monkeypatch.setattr(optim, "_HOST_FLAG_DEVICES", ())
    ps, opt = _stepped(SKIP_MAKERS[name])
    opt.zero_grad()
    loss_fn(ps, 3).backward()
    ps[0].grad[0, 0] = float("inf")
    real_where = torch.where
    big = []

    def where(cond, *args, **kw):
        if args and isinstance(args[0], torch.Tensor) and args[0].numel() > 1:
            big.append(args[0].shape)
        return real_where(cond, *args, **kw)

    monkeypatch.setattr(torch, "where", where)
    before = [p.detach().clone() for p in ps]
    opt.step()
    assert big == []
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, ps, strict=True))


# ---------------------------------------------------------------------------------------------
# gradient layouts (issue 24, item 10): any layout gives torch.optim.Adam's numbers
# ---------------------------------------------------------------------------------------------
def _layout_run(make, layout, steps=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_()
    opt = make([x])
    for t in range(steps):
        grad = torch.randn(4, 3, generator=g, dtype=torch.float64) * (1 + t)
        x.grad = layout(grad)
        opt.step()
    return x.detach()


LAYOUTS = {
    "contiguous": lambda g: g,
    "transposed": lambda g: g.t().contiguous().t(),  # strides (1, 4) beside the parameter's (3, 1)
    "sliced": lambda g: torch.cat([g, g], 1)[:, ::2],  # non-dense
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("fused", [None, True, False])
def test_any_gradient_layout_gives_torch_adam(layout, fused):
    ours = _layout_run(lambda ps: optim.Adam(ps, lr=0.1, fused=fused), LAYOUTS[layout])
    ref = _layout_run(lambda ps: torch.optim.Adam(ps, lr=0.1), LAYOUTS[layout])
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SKIP_MAKERS))
def test_stride_zero_gradient_is_accepted(name):
    """``p.grad = torch.ones(1).expand(2)`` is a valid gradient to torch: every optimizer takes it."""
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    make = SKIP_MAKERS[name]
    opt = make([x, y])  # groups() puts x and y in the first group
    for _ in range(3):
        x.grad = torch.ones(1, dtype=torch.float64).expand(2)
        y.grad = torch.ones(2, dtype=torch.float64)
        opt.step()
    # the same gradient, contiguous, moves both alike
    torch.testing.assert_close(x.detach(), y.detach(), rtol=0, atol=0)
    assert bool((x != 0).all())
    if name.startswith("adam") and name != "adam_paper":
        z = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        ref = torch.optim.Adam([z], lr=1e-2)
        for _ in range(3):
            z.grad = torch.ones(1, dtype=torch.float64).expand(2)
            ref.step()
        torch.testing.assert_close(x.detach(), z.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SKIP_MAKERS))
def test_stride_zero_nonfinite_gradient_is_skipped(name, flag_form):
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = SKIP_MAKERS[name]([x, y])
    x.grad = torch.full((1,), float("inf"), dtype=torch.float64).expand(2)
    y.grad = torch.ones(2, dtype=torch.float64)
    opt.step()
    assert bool((x == 0).all()) and bool((y == 0).all())
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert opt.skipped_steps == 1
