"""GPT-2 model (adamlinf.models.gpt): shapes, GPT-2 init, loss at init, the two attention paths
(flash == math; math supports double backward and forward-mode AD for Hessian-vector products)."""

import math

import pytest
import torch

from adamlinf.models import GPT, GPTConfig, build

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=16)


def tiny(seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **kw})).to(dtype)


def test_shapes_and_loss_at_init_is_log_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, block_size=32, n_layer=2, n_head=4, n_embd=32))
    idx = torch.randint(0, 256, (4, 32))
    targets = torch.randint(0, 256, (4, 32))
    logits, loss = model(idx, targets)
    assert logits.shape == (4, 32, 256)
    # small N(0, 0.02) init: nearly uniform predictions, cross entropy ~ ln(vocab)
    assert abs(loss.item() - math.log(256)) < 0.05
    logits2, none = model(idx[:, :7])
    assert none is None and logits2.shape == (4, 7, 256)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_gpt2_init_and_tied_embeddings():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=512, block_size=64, n_layer=4, n_head=4, n_embd=64)
    model = GPT(cfg)
    assert model.lm_head.weight is model.transformer.wte.weight
    names = dict(model.named_parameters())
    assert not any(n.endswith("bias") for n in names)
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 0.001
    assert abs(names["transformer.h.0.attn.c_attn.weight"].std().item() - 0.02) < 0.001
    proj = torch.cat([p.reshape(-1) for n, p in names.items() if n.endswith("c_proj.weight")])
    assert abs(proj.std().item() - 0.02 / math.sqrt(2 * cfg.n_layer)) < 0.0005
    assert torch.equal(model.transformer.ln_f.weight, torch.ones(64))
    assert names["transformer.h.1.attn.c_attn.weight"].shape == (3 * 64, 64)


def test_gpt2_124m_preset_counts():
    with torch.device("meta"):
        model = GPT(GPTConfig.gpt2_124m())
    # no biases: per block 12 C^2 weights + 2 LayerNorm gains; tied wte/lm_head counted once
    C, L, V = 768, 12, 50304
    n = L * (12 * C * C + 2 * C) + V * C + C
    assert n == 123_587_328  # nanoGPT's 123.69M includes its biases (102,144 of them)
    assert model.num_params() == n
    assert model.num_params(non_embedding=False) == n + 1024 * C
    assert model.flops_per_token() == 6 * n + 12 * L * C * 1024
    mfu = model.estimate_mfu(tokens_per_iter=1e5, dt=1.0, peak_flops=1e15)
    assert mfu == pytest.approx(model.flops_per_token() * 1e5 / 1e15)


def test_flash_and_math_attention_agree_and_are_causal():
    model = tiny(dtype=torch.float64).eval()
    idx = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))
    flash, _ = model(idx)
    math_logits, _ = model.set_attention("math")(idx)
    assert model.config.attention == "math"
    torch.testing.assert_close(flash, math_logits, atol=1e-10, rtol=1e-10)
    model.set_attention("flash")
    f32 = tiny(attention="math").eval()
    a, _ = f32(idx)
    b, _ = f32.set_attention("flash")(idx)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # causality: changing token 10 leaves the logits of positions < 10 unchanged
    idx2 = idx.clone()
    idx2[:, 10] = (idx2[:, 10] + 1) % 64
    c, _ = model(idx2)
    torch.testing.assert_close(c[:, :10], flash[:, :10], atol=1e-12, rtol=0)
    assert not torch.allclose(c[:, 10:], flash[:, 10:])
    with pytest.raises(ValueError):
        model.set_attention("sparse")


def test_math_attention_hessian_vector_products():
    """H v by reverse-over-reverse and by forward-over-reverse (torch.func.jvp of grad) agree with
    each other and with a central difference of gradients (float64)."""
    model = tiny(dtype=torch.float64, n_layer=1).set_attention("math")
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 64, (2, 16), generator=g)
    tgt = torch.randint(0, 64, (2, 16), generator=g)
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    v = {n: torch.randn(p.shape, generator=g, dtype=torch.float64) for n, p in params.items()}

    def loss(p):
        return torch.func.functional_call(model, p, (idx, tgt))[1]

    # reverse over reverse
    leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    grads = torch.autograd.grad(loss(leaves), [leaves[n] for n in names], create_graph=True)
    dot = sum((gr * v[n]).sum() for gr, n in zip(grads, names, strict=True))
    hv_rr = torch.autograd.grad(dot, [leaves[n] for n in names])
    # forward over reverse
    _, hv_fr = torch.func.jvp(torch.func.grad(loss), (params,), (v,))
    # central difference of gradients
    h = 1e-5
    gp = torch.func.grad(loss)({n: params[n] + h * v[n] for n in names})
    gm = torch.func.grad(loss)({n: params[n] - h * v[n] for n in names})
    for k, n in enumerate(names):
        torch.testing.assert_close(hv_rr[k], hv_fr[n], atol=1e-10, rtol=1e-8)
        torch.testing.assert_close(hv_fr[n], (gp[n] - gm[n]) / (2 * h), atol=1e-6, rtol=1e-5)
    assert max(t.abs().max().item() for t in hv_rr) > 1e-3  # a non-trivial Hessian


def test_config_validation_and_build():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="attention"):
        GPTConfig(attention="fast")
    with pytest.raises(ValueError, match="positive"):
        GPTConfig(n_layer=0)
    model = build({"kind": "gpt", **TINY})
    assert isinstance(model, GPT) and model.config.n_embd == 16
    assert model.adamlinf_spec == {"kind": "gpt", **TINY}
    with pytest.raises(ValueError, match="unknown model kind"):
        build({"kind": "lstm"})
    with pytest.raises(ValueError, match="kind"):
        build(TINY)
    with torch.device("meta"):
        big = build({"kind": "gpt", "preset": "gpt2_124m", "block_size": 256})
    assert big.config.n_layer == 12 and big.config.block_size == 256


def test_unknown_gpt_key_is_named():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['n_layers'\] in a model spec of kind 'gpt'"):
        build({"kind": "gpt", **TINY, "n_layers": 2})
    with pytest.raises(ValueError, match="unknown GPT preset"):
        build({"kind": "gpt", "preset": "gpt3"})


def test_token_ids_outside_the_vocabulary_are_named():
    model = GPT(GPTConfig(**TINY))
    v = TINY["vocab_size"]
    with pytest.raises(ValueError, match=rf"token id {v} is outside the model's vocabulary \[0, {v}\)"):
        model(torch.tensor([[1, v, 2]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[1, -1, 2]]))
    logits, _ = model(torch.tensor([[0, v - 1]]))
    assert logits.shape == (1, 2, v)
