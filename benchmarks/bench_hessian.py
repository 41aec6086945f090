"""Cost of a Hessian-vector product relative to a gradient, and seconds per Cauchy probe.

    .venv/bin/python benchmarks/bench_hessian.py              # ci GPT + MLP on CPU
    .venv/bin/python benchmarks/bench_hessian.py --device cuda --repeats 10 --autocast

Models: the ci GPT (4 layers, width 128, 4 heads, vocab 256, context 128, batch 16, "math"
attention, float32) and an MLP (784-512-512-10, batch 256). For each model it times, in the
same run (medians over ``--repeats``, round-robin):

* the baseline: one gradient (forward + backward) of the loss on the whole batch;
* ``forward``: forward-over-reverse HVP (``torch.func.jvp`` of ``torch.func.grad``);
* ``double_backward`` (uncached): forward + backward with ``create_graph`` + second backward;
* ``double_backward`` (cached graph): the second backward only, the first-order graph built
  once per HVP object (what ``l11_norm`` pays per probe on one batch);
* the parts of the uncached product: the forward alone and the forward + ``create_graph``
  backward (the first-order graph), timed in the same round-robin;
* two batches (the batch split in halves): uncached (a forward and a first-order backward per
  batch and product) against ``cache_graph=True`` (one cached graph per batch);
* the memory-lean path: ``micro_batch=B/4`` rows per micro-batch, products accumulated
  (double backward and forward-over-reverse; the peak memory is that of one micro-batch);
* with ``--autocast``: forward-over-reverse and double backward under bf16 autocast;
* ``matmat`` of 4 probes in one batched backward (``is_grads_batched``), per probe;
* ``l11_norm`` (``--probes`` Cauchy probes, IQR, bootstrap band included), seconds per probe:
  one probe at a time (the baseline), 4 probes per batched pass, and ``batch_probes="auto"``
  (medians over ``--l11-repeats`` estimates, interleaved);

and prints each as a ratio to the gradient time, plus the relative difference of the
micro-batched and the plain product (float32 rounding), the largest relative difference of the
batched and the one-at-a-time estimates, and the peak memory on CUDA.

Where the time of an HVP goes (``--profile``: torch.profiler on the ci GPT, CPU, one thread; the
parts above): the uncached product is the forward (~0.4 gradients), the ``create_graph`` backward
(with the forward ~1.1-1.3 gradients) and the second backward (~2.3-2.9 gradients, the cached
product). Its self time is matrix products (``mm`` ~40%, ``bmm`` ~10%: the second backward
differentiates both operands of every backward matmul and goes back through the forward),
element-wise products of the double-backward formulas (``mul`` ~12%, ``add``/``sum`` ~14%),
softmax/GELU/LayerNorm double backwards and the causal mask (``masked_fill_`` ~2%). Nothing in it
repeats work beyond the two extra passes: the cached graph removes the forward and the first
backward, and on a list of batches ``cache_graph=True`` keeps one graph per batch. On the CPU the
batched pass is slower per probe (vmap's batched layouts add ``copy_`` of every batched operand),
so ``"auto"`` keeps one probe per pass there; on a GPU it fills half the free memory.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from _timing import sync as _sync
from _timing import timeit_interleaved
from adamlinf import hessian as hs
from adamlinf.models.gpt import GPT, GPTConfig


def gpt_case(device):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=256, block_size=128, n_layer=4, n_head=4, n_embd=128, attention="math")
    model = GPT(cfg).to(device).eval()
    idx = torch.randint(0, 256, (16, 129), device=device)
    batch = (idx[:, :-1], idx[:, 1:])
    return "gpt-ci (4x128, B=16, T=128)", model, (lambda m, b: m(b[0], b[1])[1]), batch, 16


def mlp_case(device):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 10)
    ).to(device)
    batch = (torch.randn(256, 784, device=device), torch.randint(0, 10, (256,), device=device))
    return (
        "mlp (784-512-512-10, B=256)",
        model,
        (lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])),
        batch,
        256,
    )


def _peak(device, fn) -> float:
    """Peak CUDA memory (GiB) of one call of ``fn`` (NaN on the CPU)."""
    if torch.device(device).type != "cuda":
        return float("nan")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**30


def bench(
    case,
    repeats: int,
    n_probes: int,
    device,
    autocast: bool,
    l11_repeats: int = 3,
    l11_batches: tuple = (1, 4, "auto"),
) -> tuple[list[dict], str]:
    name, model, loss_fn, batch, rows = case
    params = list(model.parameters())
    d = sum(p.numel() for p in params)
    micro = max(1, rows // 4)

    def grad():
        torch.autograd.grad(loss_fn(model, batch), params)

    v = torch.randn(d, device=device)
    ops = {
        "hvp forward-over-reverse": hs.hvp(model, loss_fn, batch, method="forward"),
        "hvp double backward": hs.hvp(model, loss_fn, batch, method="double_backward", cache_graph=False),
        "hvp double backward, cached graph": hs.hvp(
            model, loss_fn, batch, method="double_backward", cache_graph=True
        ),
        f"hvp double backward, micro-batches of {micro}": hs.hvp(
            model, loss_fn, batch, method="double_backward", micro_batch=micro
        ),
        f"hvp forward-over-reverse, micro-batches of {micro}": hs.hvp(
            model, loss_fn, batch, method="forward", micro_batch=micro
        ),
    }
    half = rows // 2
    two = [tuple(t[:half] for t in batch), tuple(t[half:] for t in batch)]
    ops["hvp double backward, 2 batches, uncached"] = hs.hvp(model, loss_fn, two, cache_graph=False)
    ops["hvp double backward, 2 batches, one cached graph each"] = hs.hvp(
        model, loss_fn, two, cache_graph=True
    )
    fns = {
        "gradient (baseline)": grad,
        "part: forward only": lambda: loss_fn(model, batch),
        "part: forward + create_graph backward": lambda: torch.autograd.grad(
            loss_fn(model, batch), params, create_graph=True
        ),
        **{k: (lambda h=h: h.matvec(v)) for k, h in ops.items()},
    }
    if autocast:
        kind = torch.device(device).type

        def under_autocast(h):
            def run():
                with torch.autocast(kind, dtype=torch.bfloat16):
                    h.matvec(v)

            return run

        fns["hvp forward-over-reverse, bf16 autocast"] = under_autocast(ops["hvp forward-over-reverse"])
        fns["hvp double backward, bf16 autocast"] = under_autocast(ops["hvp double backward"])
    t = timeit_interleaved(fns, repeats, device)
    t_grad = t["gradient (baseline)"]
    out = [dict(model=name, d=d, what=k, seconds=s, peak_gib=_peak(device, fns[k])) for k, s in t.items()]
    plain = ops["hvp double backward"].matvec(v)
    fwd = ops["hvp forward-over-reverse"].matvec(v)
    lean = ops[f"hvp double backward, micro-batches of {micro}"].matvec(v)
    note = (
        f"forward vs double backward rel. diff {float((fwd - plain).norm() / plain.norm()):.1e}, "
        f"micro-batched vs plain {float((lean - plain).norm() / plain.norm()):.1e} (float32)"
    )
    cached = ops["hvp double backward, cached graph"]
    V4 = torch.randn(4, d, device=device)
    t4 = timeit_interleaved({"matmat": lambda: cached.matmat(V4)}, max(1, repeats // 2), device)["matmat"]
    # (before the batched products, matmat stacked one matvec per row)
    out.append(dict(model=name, d=d, what="hvp matmat of 4 (batched backward), per probe", seconds=t4 / 4,
                    peak_gib=float("nan")))  # fmt: skip
    h_auto = hs.hvp(model, loss_fn, batch)
    estimates = {}

    def l11(k):
        def fn():
            estimates[k] = hs.l11_norm(
                h_auto, n_probes, seed=0, variant="iqr", progress=False, batch_probes=k
            )

        return fn

    names = {1: "one at a time (baseline)", "auto": "batch_probes='auto'"}
    ks = {names.get(k, f"{k} per batched pass"): k for k in l11_batches}
    # the gradient is timed again among the estimates, so that their ratios come from one round-robin
    t_l11 = timeit_interleaved({"grad": grad, **{lab: l11(k) for lab, k in ks.items()}}, l11_repeats, device)
    g_l11 = t_l11.pop("grad")
    for lab, sec in t_l11.items():
        what = f"l11_norm {n_probes} probes, {lab}, per probe"
        per = sec / n_probes
        out.append(dict(model=name, d=d, what=what, seconds=per, peak_gib=float("nan"), ratio=per / g_l11))
    base = estimates[1].total
    diff = max(abs(e.total - base) / base for e in estimates.values())
    note += f", batched vs one-at-a-time l11 estimate rel. diff {diff:.1e}"
    for r in out:
        r["ratio_to_gradient"] = r.pop("ratio", r["seconds"] / t_grad)
    return out, note


def profile_hvp(case, device, rows: int = 12) -> None:
    """Print where the time of one uncached HVP goes (torch.profiler, self time per operator)."""
    from torch.profiler import profile

    name, model, loss_fn, batch, _ = case
    h = hs.hvp(model, loss_fn, batch, method="double_backward", cache_graph=False)
    v = torch.randn(h.d, device=device)
    h.matvec(v)
    with profile() as prof:
        h.matvec(v)
    print(f"\n{name}: uncached double-backward HVP, self time by operator")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave as is)")
    ap.add_argument("--autocast", action="store_true", help="also time the products under bf16 autocast")
    ap.add_argument("--only", choices=["gpt", "mlp"], default=None)
    ap.add_argument("--l11-repeats", type=int, default=3, help="estimates per l11_norm variant (median)")
    ap.add_argument(
        "--l11-batches", default="1,4,auto", help="batch_probes values of l11_norm, comma-separated"
    )
    ap.add_argument("--profile", action="store_true", help="also print the operators of an uncached HVP")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    cases = {"gpt": gpt_case, "mlp": mlp_case}
    for key, make in cases.items():
        if args.only and key != args.only:
            continue
        case = make(args.device)
        batches = tuple(b if b == "auto" else int(b) for b in args.l11_batches.split(","))
        rows, note = bench(
            case, args.repeats, args.probes, args.device, args.autocast, args.l11_repeats, batches
        )
        print(f"\n{rows[0]['model']}: d = {rows[0]['d']:,}   ({note})")
        for r in rows:
            mem = "" if r["peak_gib"] != r["peak_gib"] else f"   peak {r['peak_gib']:.2f} GiB"
            ms, ratio = r["seconds"] * 1e3, r["ratio_to_gradient"]
            print(f"  {r['what']:<62s} {ms:9.1f} ms   {ratio:5.2f}x gradient{mem}")
        if args.profile:
            profile_hvp(case, args.device)


if __name__ == "__main__":
    main()
