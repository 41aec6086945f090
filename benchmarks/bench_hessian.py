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
* the memory-lean path: ``micro_batch=B/4`` rows per micro-batch, products accumulated
  (double backward and forward-over-reverse; the peak memory is that of one micro-batch);
* with ``--autocast``: forward-over-reverse and double backward under bf16 autocast;
* ``l11_norm`` with the ``"auto"`` method: seconds per Cauchy probe (bootstrap band included);

and prints each as a ratio to the gradient time, plus the relative difference of the
micro-batched and the plain product (float32 rounding), and the peak memory on CUDA.
"""

from __future__ import annotations

import argparse
import time

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


def bench(case, repeats: int, n_probes: int, device, autocast: bool) -> tuple[list[dict], str]:
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
    fns = {"gradient (baseline)": grad, **{k: (lambda h=h: h.matvec(v)) for k, h in ops.items()}}
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
    h_auto = hs.hvp(model, loss_fn, batch)
    t0 = time.perf_counter()
    hs.l11_norm(h_auto, n_probes, seed=0, variant="iqr", progress=False)
    _sync(device)
    out.append(
        dict(
            model=name,
            d=d,
            what=f"l11_norm auto ({h_auto.method}), per probe",
            seconds=(time.perf_counter() - t0) / n_probes,
            peak_gib=float("nan"),
        )
    )
    for r in out:
        r["ratio_to_gradient"] = r["seconds"] / t_grad
    return out, note


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave as is)")
    ap.add_argument("--autocast", action="store_true", help="also time the products under bf16 autocast")
    ap.add_argument("--only", choices=["gpt", "mlp"], default=None)
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
        rows, note = bench(make(args.device), args.repeats, args.probes, args.device, args.autocast)
        print(f"\n{rows[0]['model']}: d = {rows[0]['d']:,}   ({note})")
        for r in rows:
            mem = "" if r["peak_gib"] != r["peak_gib"] else f"   peak {r['peak_gib']:.2f} GiB"
            ms, ratio = r["seconds"] * 1e3, r["ratio_to_gradient"]
            print(f"  {r['what']:<52s} {ms:9.1f} ms   {ratio:5.2f}x gradient{mem}")


if __name__ == "__main__":
    main()
