"""Tests of adamlinf.partitions (the map Phi of Definition 3.8)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adamlinf import partitions as P

SHAPES = [(3, 4), (5,), (2, 3, 2), ()]


def tensors(shapes=SHAPES):
    return [torch.zeros(s) for s in shapes]


def test_coordinate():
    ps = tensors()
    idx = P.coordinate().index(ps)
    assert [tuple(i.shape) for i in idx] == SHAPES
    d = 12 + 5 + 12 + 1
    assert torch.equal(P.coordinate().flat_index(ps), torch.arange(d))
    assert int(P.coordinate().flat_index(ps).max()) + 1 == d
    assert torch.equal(torch.bincount(P.coordinate().flat_index(ps)), torch.ones(d, dtype=torch.long))


def test_tensor_and_whole():
    ps = tensors()
    assert torch.equal(
        P.tensor().flat_index(ps), torch.repeat_interleave(torch.arange(4), torch.tensor([12, 5, 12, 1]))
    )
    assert torch.bincount(P.tensor().flat_index(ps)).tolist() == [12, 5, 12, 1]
    assert int(P.whole().flat_index(ps).max()) + 1 == 1
    assert torch.bincount(P.whole().flat_index(ps)).tolist() == [30]


def test_rows():
    ps = tensors()
    idx = P.rows().index(ps)
    # (3,4): rows 0,1,2 ; (5,): one block 3 ; (2,3,2): rows 4,5 ; (): block 6
    assert torch.equal(idx[0], torch.tensor([[0] * 4, [1] * 4, [2] * 4]))
    assert torch.equal(idx[1], torch.full((5,), 3))
    assert torch.equal(idx[2][0], torch.full((3, 2), 4)) and torch.equal(idx[2][1], torch.full((3, 2), 5))
    assert int(idx[3]) == 6
    assert torch.bincount(P.rows().flat_index(ps)).tolist() == [4, 4, 4, 5, 6, 6, 1]


def test_int_and_single_tensor_inputs():
    assert torch.equal(P.coordinate().flat_index(4), torch.arange(4))
    assert int(P.whole().flat_index(7).max()) + 1 == 1
    assert int(P.rows().flat_index(torch.zeros(3, 2)).max()) + 1 == 3


class TinyAttn(torch.nn.Module):
    def __init__(self, n_embd=8, bias=True):
        super().__init__()
        self.wte = torch.nn.Embedding(5, n_embd)
        self.c_attn = torch.nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = torch.nn.Linear(n_embd, n_embd, bias=False)
        self.ln = torch.nn.LayerNorm(n_embd)


def test_heads_nanogpt_layout():
    m = TinyAttn()
    part = P.heads(m, n_head=2)
    ps = list(m.parameters())
    idx = dict(zip([n for n, _ in m.named_parameters()], part.index(ps), strict=True))
    # wte: rows() -> 5 blocks 0..4
    assert torch.equal(idx["wte.weight"][:, 0], torch.arange(5))
    # c_attn.weight (24, 8): hd = 4; q-head0 rows 0-3, q-head1 4-7, k-head0 8-11, ... 6 blocks 5..10
    w = idx["c_attn.weight"]
    assert torch.equal(w[:, 0], 5 + torch.arange(24) // 4)
    assert (w == w[:, :1]).all()
    # bias split the same way, blocks 11..16
    assert torch.equal(idx["c_attn.bias"], 11 + torch.arange(24) // 4)
    # c_proj rows (8 blocks), ln weight and bias one block each
    assert torch.equal(idx["c_proj.weight"][:, 0], 17 + torch.arange(8))
    assert idx["ln.weight"].unique().tolist() == [25] and idx["ln.bias"].unique().tolist() == [26]
    assert int(part.flat_index(ps).max()) + 1 == 27


def test_heads_errors_and_default():
    m = TinyAttn()
    with pytest.raises(ValueError, match="no parameter name matches"):
        P.heads(m.c_proj, n_head=2)
    with pytest.raises(ValueError, match="divisible"):
        P.heads(m, n_head=3)
    with pytest.raises(ValueError, match="n_head"):
        P.heads(m, n_head=0)
    # a tensor that is not a parameter of the model is split by rows
    assert P.heads(m, n_head=2).index([torch.zeros(3, 2)])[0][:, 0].tolist() == [0, 1, 2]


def test_custom_forms():
    ps = [torch.zeros(2, 2), torch.zeros(3)]
    flat = torch.tensor([0, 1, 0, 1, 2, 2, 0])
    assert torch.equal(P.custom(flat).flat_index(ps), flat)
    mp = P.custom({ps[0]: torch.tensor([[1, 1], [0, 0]]), ps[1]: torch.tensor([1, 0, 0])})
    assert torch.bincount(mp.flat_index(ps)).tolist() == [4, 3]
    fn = P.custom(lambda qs: [torch.zeros(q.shape, dtype=torch.long) for q in qs])
    assert int(fn.flat_index(ps).max()) + 1 == 1


@pytest.mark.parametrize(
    "spec, msg",
    [
        (torch.tensor([0, 1, 0, 1, 3, 3, 0]), "empty"),  # id 2 unused
        (torch.tensor([0, 1, 0, 1, -1, 0, 0]), "negative"),
        (torch.tensor([0, 1, 0, 1, 0]), "cover"),  # too short
        (lambda qs: [torch.zeros(2, 2, dtype=torch.long)], "cover"),  # missing a tensor
        (lambda qs: [torch.zeros(4, dtype=torch.long), torch.zeros(3, dtype=torch.long)], "shape"),
        (lambda qs: [torch.zeros(q.shape) for q in qs], "integers"),
    ],
)
def test_custom_validation(spec, msg):
    ps = [torch.zeros(2, 2), torch.zeros(3)]
    with pytest.raises(ValueError, match=msg):
        P.custom(spec).index(ps)


def test_mapping_missing_param():
    a, b = torch.zeros(2), torch.zeros(3)
    with pytest.raises(ValueError, match="not in the mapping"):
        P.custom({a: torch.zeros(2, dtype=torch.long)}).index([a, b])


def test_norms_special_cases():
    x = torch.tensor([3.0, -4.0, 1.0, 0.5], dtype=torch.float64)
    # coordinate: l_inf and l_1
    assert P.coordinate().norm(x, 4).item() == 4.0
    assert P.coordinate().dual_norm(x, 4).item() == 8.5
    # whole: ||x||_2/sqrt(d), sqrt(d)||x||_2
    n2 = x.norm().item()
    assert P.whole().norm(x, 4).item() == pytest.approx(n2 / 2)
    assert P.whole().dual_norm(x, 4).item() == pytest.approx(2 * n2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=12), st.integers(0, 2**31 - 1))
def test_dual_norm_holder(labels, seed):
    """|<x, y>| <= ||x||_Phi * ||y||_{Phi,*} for every partition (Definition 3.8)."""
    labels = torch.tensor(labels)
    _, flat = torch.unique(labels, return_inverse=True)  # relabel to 0..B-1
    part = P.custom(flat)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(flat), generator=g, dtype=torch.float64)
    y = torch.randn(len(flat), generator=g, dtype=torch.float64)
    d = len(flat)
    assert abs(float(x @ y)) <= float(part.norm(x, d) * part.dual_norm(y, d)) * (1 + 1e-12)
    # block sizes add up to d, and the block norms to the 2-norm
    assert int(torch.bincount(part.flat_index(d)).sum()) == d
    assert float(part._block_stats(x, d)[0].pow(2).sum()) == pytest.approx(float(x.pow(2).sum()))


def test_heads_on_project_gpt():
    gpt = pytest.importorskip("adamlinf.models.gpt")
    m = gpt.GPT(gpt.GPTConfig(vocab_size=32, block_size=8, n_layer=2, n_head=2, n_embd=8))
    ps = list(m.parameters())
    part = P.heads(m, n_head=2)
    # per layer: c_attn 6 head blocks (4 rows x 8), c_proj 8 rows, c_fc 32 rows, mlp.c_proj 8 rows,
    # 2 LayerNorms
    # plus wte 32 rows, wpe 8 rows, ln_f 1
    per_layer = 6 + 8 + 32 + 8 + 2
    assert int(part.flat_index(ps).max()) + 1 == 2 * per_layer + 32 + 8 + 1
    sizes = torch.bincount(part.flat_index(ps))
    assert int(sizes.sum()) == sum(p.numel() for p in ps)
    assert (sizes == 32).sum() >= 12  # the 12 head blocks hold 4 rows x 8 columns each


def test_check_block_index():
    """The one block-id validator: returns a (d,) LongTensor; rejects floats, wrong length, negative
    ids and gaps; relabel=True maps any integer labels to 0..B-1 in increasing order."""
    assert torch.equal(P.check_block_index([0, 1, 1, 0], 4), torch.tensor([0, 1, 1, 0]))
    assert torch.equal(
        P.check_block_index(torch.tensor([[2], [7], [2]]), 3, relabel=True), torch.tensor([0, 1, 0])
    )
    for bad, msg in (
        ([0.0, 1.0], "integers"),
        ([0, 1, 1], "cover"),
        ([0, -1], "negative"),
        ([0, 2], "empty"),
    ):
        with pytest.raises(ValueError, match=msg):
            P.check_block_index(torch.tensor(bad), 2)


def test_norms_batched_match_rows():
    """Partition.norm / dual_norm on a batch (n, d) equal the norms of each row."""
    part = P.custom(torch.tensor([0, 0, 1, 2, 2, 2]))
    X = torch.randn(5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(part.norm(X, 6), torch.stack([part.norm(x, 6) for x in X]))
    assert torch.allclose(part.dual_norm(X, 6), torch.stack([part.dual_norm(x, 6) for x in X]))
    assert float(part.norm(X[0], 6)) == pytest.approx(
        max(float(X[0, :2].norm()) / 2**0.5, abs(float(X[0, 2])), float(X[0, 3:].norm()) / 3**0.5)
    )
