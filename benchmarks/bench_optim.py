"""Step time of adamlinf.optim against torch.optim.Adam(foreach=True), on the parameters of a small GPT.

Run:  .venv/bin/python benchmarks/bench_optim.py [--n-embd 256] [--n-layer 4] [--repeats 30] [--device cpu]

All optimizers are timed in the same run, interleaved round-robin (one step of each per round, so
background load hits all of them alike), on the same parameter shapes with fixed random gradients,
and the median of the repeats is reported with its ratio to torch.optim.Adam(foreach=True).
Targets (issue 23): the paper form <= 1.1; AdaSGD and blockwise Adam <= 0.7.
"""

from __future__ import annotations

import argparse

import torch

from _timing import timeit_interleaved
from adamlinf import optim
from adamlinf import partitions as P


def gpt_params(n_layer: int, n_head: int, n_embd: int, vocab: int, block: int, device: str):
    """The model's parameters (adamlinf.models.gpt if present, else the nanoGPT shapes by hand)."""
    try:
        from adamlinf.models.gpt import GPT, GPTConfig

        model = GPT(
            GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        )
        return model.to(device), "adamlinf.models.gpt.GPT"
    except Exception as err:  # pragma: no cover - fallback when the model module is missing
        print(f"(adamlinf.models.gpt unavailable: {err!r}; using hand-built nanoGPT shapes)")
        model = torch.nn.Module()
        model.wte = torch.nn.Embedding(vocab, n_embd)
        model.wpe = torch.nn.Embedding(block, n_embd)
        for i in range(n_layer):
            layer = torch.nn.Module()
            layer.ln_1 = torch.nn.LayerNorm(n_embd, bias=False)
            layer.c_attn = torch.nn.Linear(n_embd, 3 * n_embd, bias=False)
            layer.c_proj = torch.nn.Linear(n_embd, n_embd, bias=False)
            layer.ln_2 = torch.nn.LayerNorm(n_embd, bias=False)
            layer.c_fc = torch.nn.Linear(n_embd, 4 * n_embd, bias=False)
            layer.mlp_proj = torch.nn.Linear(4 * n_embd, n_embd, bias=False)
            model.add_module(f"h{i}", layer)
        model.ln_f = torch.nn.LayerNorm(n_embd, bias=False)
        return model.to(device), "hand-built nanoGPT shapes"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps a shared machine fair)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    model, source = gpt_params(args.n_layer, args.n_head, args.n_embd, args.vocab, args.block, args.device)
    params = list(model.parameters())
    d = sum(p.numel() for p in params)
    print(
        f"model: {source}; {len(params)} tensors, d = {d:,} parameters, device {args.device}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )

    # each optimizer gets its own copy of the parameters with fixed random gradients
    def copy_params():
        out = []
        for p in params:
            q = p.detach().clone().requires_grad_()
            q.grad = torch.randn_like(q) * 1e-2
            out.append(q)
        return out

    def heads_for(ps):
        named = [(n, q) for (n, _), q in zip(model.named_parameters(), ps, strict=False)]
        return P.heads(named, args.n_head)

    makers = {
        "torch.optim.Adam(foreach)": lambda ps: torch.optim.Adam(ps, lr=1e-4, foreach=True),
        "Adam (default = torch form)": lambda ps: optim.Adam(ps, lr=1e-4),
        "Adam (torch form, nonfinite=ignore)": lambda ps: optim.Adam(ps, lr=1e-4, nonfinite="ignore"),
        "Adam (torch form, fused=False)": lambda ps: optim.Adam(ps, lr=1e-4, fused=False),
        "Adam (paper form)": lambda ps: optim.Adam(
            ps, lr=1e-4, eps=0.0, eps_root=1e-8, bias_correction=False
        ),
        "AdaSGD": lambda ps: optim.AdaSGD(ps, lr=1e-4),
        "BlockwiseAdam(tensor)": lambda ps: optim.BlockwiseAdam(ps, lr=1e-4, partition=P.tensor()),
        "BlockwiseAdam(rows)": lambda ps: optim.BlockwiseAdam(ps, lr=1e-4, partition=P.rows()),
        "BlockwiseAdam(heads)": lambda ps: optim.BlockwiseAdam(ps, lr=1e-4, partition=heads_for(ps)),
        "BlockwiseAdam(coordinate)": lambda ps: optim.BlockwiseAdam(ps, lr=1e-4, partition=P.coordinate()),
        "BlockwiseAdam(coordinate, fused=False)": lambda ps: optim.BlockwiseAdam(ps, lr=1e-4, fused=False),
    }
    opts = {name: make(copy_params()) for name, make in makers.items()}
    for _ in range(args.warmup):
        for opt in opts.values():
            opt.step()
    med = timeit_interleaved({name: opt.step for name, opt in opts.items()}, args.repeats, args.device)
    base = med["torch.optim.Adam(foreach)"]
    print(f"{'optimizer':40s} {'median ms':>10s} {'ratio':>7s}")
    for name, t in med.items():
        print(f"{name:40s} {1e3 * t:10.3f} {t / base:7.3f}")


if __name__ == "__main__":
    main()
