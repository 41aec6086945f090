"""Cost of a Hessian-vector product relative to a gradient, and seconds per Cauchy probe.

    .venv/bin/python benchmarks/bench_hessian.py              # ci GPT + MLP on CPU
    .venv/bin/python benchmarks/bench_hessian.py --device cuda --repeats 10

Models: the ci GPT (4 layers, width 128, 4 heads, vocab 256, context 128, batch 16, "math"
attention, float32) and an MLP (784-512-512-10, batch 256). For each model it times, in the
same run (medians over ``--repeats``):

* the baseline: one gradient (forward + backward) of the loss;
* ``forward``: forward-over-reverse HVP (``torch.func.jvp`` of ``torch.func.grad``);
* ``double_backward`` (uncached): forward + backward with ``create_graph`` + second backward;
* ``double_backward`` (cached graph): the second backward only, the first-order graph built
  once per HVP object (what ``l11_norm`` pays per probe on one batch);
* ``l11_norm`` with the ``"auto"`` method: seconds per Cauchy probe;

and prints each as a ratio to the gradient time (the issue's target: HVP <= 3x gradient).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from adamlinf import hessian as hs
from adamlinf.models.gpt import GPT, GPTConfig
from _timing import sync as _sync, timeit_interleaved


def gpt_case(device):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=256, block_size=128, n_layer=4, n_head=4, n_embd=128, attention="math")
    model = GPT(cfg).to(device).eval()
    idx = torch.randint(0, 256, (16, 129), device=device)
    batch = (idx[:, :-1], idx[:, 1:])
    return "gpt-ci (4x128, B=16, T=128)", model, (lambda m, b: m(b[0], b[1])[1]), batch


def mlp_case(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                          nn.Linear(512, 10)).to(device)
    batch = (torch.randn(256, 784, device=device), torch.randint(0, 10, (256,), device=device))
    return "mlp (784-512-512-10, B=256)", model, (lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])), batch


def bench(case, repeats: int, n_probes: int, device) -> list[dict]:
    name, model, loss_fn, batch = case
    params = [p for p in model.parameters()]
    d = sum(p.numel() for p in params)

    def grad():
        loss = loss_fn(model, batch)
        torch.autograd.grad(loss, params)

    v = torch.randn(d, device=device)
    h_fwd = hs.hvp(model, loss_fn, batch, method="forward")
    h_db = hs.hvp(model, loss_fn, batch, method="double_backward", cache_graph=False)
    h_dbc = hs.hvp(model, loss_fn, batch, method="double_backward", cache_graph=True)
    t = timeit_interleaved({
        "gradient (baseline)": grad,
        "hvp forward-over-reverse": lambda: h_fwd.matvec(v),
        "hvp double backward": lambda: h_db.matvec(v),
        "hvp double backward, cached graph": lambda: h_dbc.matvec(v),
    }, repeats, device)
    t_grad = t["gradient (baseline)"]
    rows = [dict(model=name, d=d, what=k, seconds=sec) for k, sec in t.items()]
    # agreement of the two methods (float32 here; the tests check 1e-8 in float64)
    a, b = h_fwd.matvec(v), h_db.matvec(v)
    rel = float((a - b).norm() / b.norm())
    h_auto = hs.hvp(model, loss_fn, batch)
    t0 = time.perf_counter()
    hs.l11_norm(h_auto, n_probes, seed=0, variant="iqr", progress=False)
    _sync(device)
    rows.append(dict(model=name, d=d, what=f"l11_norm auto ({h_auto.method}), per probe",
                     seconds=(time.perf_counter() - t0) / n_probes))
    for r in rows:
        r["ratio_to_gradient"] = r["seconds"] / t_grad
    rows[0]["note"] = f"forward vs double backward rel. diff {rel:.1e} (float32)"
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave as is)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"median of {args.repeats}")
    for case in (gpt_case(args.device), mlp_case(args.device)):
        rows = bench(case, args.repeats, args.probes, args.device)
        print(f"\n{rows[0]['model']}: d = {rows[0]['d']:,}   ({rows[0]['note']})")
        for r in rows:
            print(f"  {r['what']:<45s} {r['seconds'] * 1e3:9.1f} ms   {r['ratio_to_gradient']:5.2f}x gradient")


if __name__ == "__main__":
    main()
