"""GPT-2 in the nanoGPT style: the model of the paper's Section 4.2 (Figures 1 and 3, Table 2).

One readable file, after nanoGPT's ``model.py`` {cite}`karpathy2022nanogpt` and GPT-2
{cite}`radford2019language`, with the settings of the paper's runs (Section 4.2; VERIFIED against its code):
no biases, tied token embedding / output head, learned position embeddings, pre-LayerNorm blocks,
GELU MLP of width 4·n_embd, vocabulary 50304 (50257 padded to a multiple of 64) at 124M.

Initialisation is GPT-2's: every ``Linear`` and ``Embedding`` weight ~ N(0, 0.02²), and the two
residual projections of each block (``attn.c_proj``, ``mlp.c_proj``) ~ N(0, (0.02/√(2·n_layer))²).
(With ``nn.Embedding``'s default N(0, 1) and a tied head the logits are huge, the softmax saturates
and gradients underflow to denormals: a CPU step becomes ~100x slower.)

Two attention paths compute the same function

    Attn(Q, K, V) = softmax(Q Kᵀ / √d_head + M) V,   M_ij = 0 if j ≤ i else -∞ (causal mask):

* ``"flash"``: :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels; training).
* ``"math"``: the formula written out with matmul/softmax. The fused kernels have no double
  backward and no forward-mode AD; this path supports both, so Hessian-vector products
  (reverse-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``) work — the Hessian estimators of
  Table 2 switch a trained model to it with :meth:`GPT.set_attention`.

Parameter names follow nanoGPT (``transformer.h.{i}.attn.c_attn.weight`` of shape
(3·n_embd, n_embd) holding Q, K, V stacked, ``c_proj`` for output projections) because the per-head
partition of :mod:`adamlinf.partitions` and the App. D.1 rotation split are defined on them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTENTION_KINDS = ("flash", "math")


@dataclass
class GPTConfig:
    """Size of a GPT. ``attention`` picks the attention path ("flash" or "math", see module doc)."""

    vocab_size: int = 50304
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    attention: str = "flash"

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")

    @classmethod
    def gpt2_124m(cls, **overrides) -> GPTConfig:
        """GPT-2 small as trained in the paper.

        Vocabulary 50304, 12 layers, 12 heads, width 768, context 1024 (Section 4.2; VERIFIED
        against the paper's code).
        """
        kw = dict(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768)
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict:
        """The configuration as a plain dict."""
        return asdict(self)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention.

    ``c_attn`` maps x to [Q; K; V] (rows 0..C-1 are Q, head h
    owning rows h·d_head..(h+1)·d_head-1 of each of Q, K, V), ``c_proj`` maps heads back.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.attention = config.attention
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attn(Q, K, V) of ``x`` (B, T, C), projected back to (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, n_head, T, d_head)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.attention == "flash":
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        else:  # "math": softmax(Q K^T / sqrt(d) + M) V, differentiable to any order
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(~self.causal_mask[:T, :T], float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """GELU MLP of width 4·n_embd without biases."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        """c_proj(GELU(c_fc(x)))."""
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=False)
        self.mlp = MLP(config)

    def forward(self, x):
        """Residual attention, then residual MLP: x + Attn(LN(x)), then + MLP(LN(·))."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 language model.

    ``forward(idx, targets=None) -> (logits, loss)`` with logits of shape
    (B, T, vocab) and loss the mean next-token cross entropy (``None`` without targets).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise ValueError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=False),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied embeddings
        self.apply(self._init_weights)
        proj_std = 0.02 / math.sqrt(2 * config.n_layer)  # GPT-2's scaled residual-projection init
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=proj_std)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # -- attention path -------------------------------------------------------------------------
    def set_attention(self, kind: str) -> GPT:
        """Switch every block to the ``"flash"`` or ``"math"`` attention path and return ``self``.

        Both compute the same function; only ``"math"`` supports double backward and forward-mode
        AD.
        """
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")
        self.config.attention = kind
        for block in self.transformer.h:
            block.attn.attention = kind
        return self

    # -- forward --------------------------------------------------------------------------------
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """``(logits, loss)`` of token ids ``idx`` (B, T); ``loss`` is ``None`` without targets.

        On the CPU, token ids outside ``[0, vocab_size)`` raise a ``ValueError`` naming the id
        (a reduction over B·T integers; on a GPU the check is left out, as it would wait for the
        device).
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        if idx.device.type == "cpu" and idx.numel() and not torch.compiler.is_compiling():
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= self.config.vocab_size:
                bad = hi if hi >= self.config.vocab_size else lo
                raise ValueError(
                    f"token id {bad} is outside the model's vocabulary [0, {self.config.vocab_size}): "
                    "build the model with a vocab_size above every token id of the data (a data set's "
                    "vocabulary is in its meta.json)"
                )
        pos = torch.arange(T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    # -- accounting -----------------------------------------------------------------------------
    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (tied weights counted once).

        With ``non_embedding`` the position
        embeddings are left out, as nanoGPT reports (the token embedding is the output head).
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward).

        The PaLM appendix B estimate used by nanoGPT: 6·N + 12·n_layer·n_embd·T (matmuls of the
        weights plus attention scores).
        """
        cfg = self.config
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    def estimate_mfu(self, tokens_per_iter: float, dt: float, peak_flops: float = 989e12) -> float:
        """Model FLOPs utilisation.

        Achieved FLOP/s (``flops_per_token · tokens_per_iter / dt``)
        over ``peak_flops`` (default: H100/H200 dense bf16, 989 TFLOP/s; A100: 312e12).
        """
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        return self.flops_per_token() * tokens_per_iter / dt / peak_flops
