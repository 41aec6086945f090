"""GPT-2 in the nanoGPT style {cite}`karpathy2022nanogpt,radford2019language` (Section 4.2).

The paper's settings (VERIFIED against its code): no biases, tied token embedding and head, learned
positions, pre-LayerNorm blocks, GELU MLP of width 4·n_embd, vocabulary 50304 at 124M; init N(0, 0.02²),
``c_proj`` N(0, (0.02/√(2·n_layer))²). Attention softmax(Q Kᵀ / √d_head + M) V (causal mask M) is
``"flash"`` (``F.scaled_dot_product_attention``) or ``"math"`` (written out: double backward and
forward-mode AD, so Hessian-vector products, work). ``c_attn`` holds Q, K, V stacked (``partitions.heads``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTENTION_KINDS = ("flash", "math")


@dataclass
class GPTConfig:
    """Size of a GPT; ``attention``: ``"flash"`` or ``"math"``."""

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
        """GPT-2 small as the paper trains it (the defaults): 50304 tokens, 12 layers and heads, width 768."""
        return cls(**overrides)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``c_attn`` x = [Q; K; V] (head h: rows h·d_head.. of each)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.dropout, self.attention = config.dropout, config.attention
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``c_proj`` Attn(Q, K, V) of ``x`` (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.attention == "flash":
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
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
        """``x + Attn(LN(x))``, then ``+ MLP(LN(·))``."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2: ``forward(idx, targets=None) -> (logits, loss)``, loss the mean next-token cross entropy."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise ValueError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict()
        self.transformer.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.transformer.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.transformer.drop = nn.Dropout(config.dropout)
        self.transformer.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.transformer.ln_f = nn.LayerNorm(config.n_embd, bias=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied embeddings
        for module in self.modules():  # the leaves in the order of nanoGPT's self.apply
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def set_attention(self, kind: str) -> GPT:
        """Switch every block to the ``"flash"`` or ``"math"`` path (the same function); return ``self``."""
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")
        self.config.attention = kind
        for block in self.transformer.h:
            block.attn.attention = kind
        return self

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """``(logits, loss)`` of token ids ``idx`` (B, T); on the CPU an id outside the vocabulary raises."""
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

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters, tied ones once (without the position embeddings if ``non_embedding``, as nanoGPT)."""
        wpe = self.transformer.wpe.weight.numel() if non_embedding else 0
        return sum(p.numel() for p in self.parameters()) - wpe

    def flops_per_token(self) -> float:
        """Training FLOPs per token, 6·N + 12·n_layer·n_embd·T (PaLM appendix B, as nanoGPT)."""
        return 6 * self.num_params() + 12 * self.config.n_layer * self.config.n_embd * self.config.block_size

    def estimate_mfu(self, tokens_per_iter: float, dt: float, peak_flops: float = 989e12) -> float:
        """Achieved FLOP/s over ``peak_flops`` (default H100/H200 dense bf16, 989e12; A100: 312e12)."""
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        return self.flops_per_token() * tokens_per_iter / dt / peak_flops
