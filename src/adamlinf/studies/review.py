r"""Questions from the paper's public review {cite}`xie2025review`, answered by experiment.

:class:`Task` (a noisy quadratic, an MLP/CNN on digits, a GRU/GPT on Python's docs), :class:`Arm` (an
optimizer, optionally on :math:`L\circ R` or blockwise), :func:`tune` (lr tuned on one seed, measured on
the others), norms (:func:`basis_norms`, :func:`track_norms`, :func:`phi_table`); runs train in-process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from adamlinf import hessian, optim, partitions, theory
from adamlinf import rotations as rot
from adamlinf.diagnose import train_steps
from adamlinf.models.gpt import GPT, GPTConfig
from adamlinf.studies import sweeps
from adamlinf.studies.verdicts import BOOK, Claim, Measured, claims_table


@dataclass
class Task:
    """``make_model(seed)``, ``batch(generator)``, ``loss(model, batch)``; metric default: mean eval loss."""

    name: str
    make_model: Callable[[int], nn.Module]
    batch: Callable[[torch.Generator], object]
    loss: Callable[[nn.Module, object], Tensor]
    eval_batches: list = field(default_factory=list)
    metric: Callable[[nn.Module], float] | None = None

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        """The final metric of ``model`` (``inf`` when not finite)."""
        if self.metric is not None:
            value = float(self.metric(model))
        else:
            value = float(np.mean([float(self.loss(model, b)) for b in self.eval_batches]))
        return value if math.isfinite(value) else math.inf


def quadratic_task(lam: Tensor, sigma: float, *, device="cpu") -> Task:
    r"""$L(x)=\tfrac12\sum_i\lambda_ix_i^2$, gradients $\nabla L(x)+\xi$, $\xi\sim\mathcal N(0,\sigma^2I)$.

    Isotropic noise; a random sign vector $x_0\in\{\pm1\}^d$ starts; the metric is $\log_{10}(L(x_T)/L(x_0))$.
    """
    lam = torch.as_tensor(lam, dtype=torch.float64).to(device)
    d = lam.numel()

    def make_model(seed: int) -> nn.Module:
        g = torch.Generator().manual_seed(10_000 + seed)
        point = nn.Module()  # the parameter x, started at a random sign vector
        point.x = nn.Parameter(torch.randint(0, 2, (d,), generator=g).to(torch.float64) * 2 - 1)
        return point.to(device)

    def loss(model, noise):
        return 0.5 * (lam * model.x * model.x).sum() + (noise * model.x).sum()

    def metric(model):
        x = model.x.detach()
        return math.log10(float((lam * x * x).sum()) / float(lam.sum()))  # L(x0) = sum(lam) / 2

    def noise(g):
        return sigma * torch.randn(d, generator=g, dtype=torch.float64).to(device)

    return Task("quadratic", make_model, noise, loss, metric=metric)


def digits_task(kind: str, *, width: int, batch_size: int, device="cpu") -> Task:
    """An MLP (64 → ``width`` → 10) or a CNN (two 3×3 conv + ReLU + 2×2 pool, then linear) on 8×8 digits."""
    if kind not in ("mlp", "cnn"):
        raise ValueError(f"kind must be 'mlp' or 'cnn', got {kind!r}")
    from adamlinf.data.images import load_digits_images

    data = load_digits_images(size=8, seed=0)
    x = data["train_x"][:, :1].to(torch.float32) / 255.0
    mean, std = x.mean(), x.std()
    train_x, train_y = (x - mean) / std, data["train_y"]
    test_x = (data["test_x"][:, :1].to(torch.float32) / 255.0 - mean) / std
    n, c = len(train_y), width

    def make_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        if kind == "mlp":
            return nn.Sequential(nn.Flatten(), nn.Linear(64, c), nn.ReLU(), nn.Linear(c, 10)).to(device)
        conv = [nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        conv += [nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        return nn.Sequential(*conv, nn.Flatten(), nn.Linear(8 * c, 10)).to(device)

    def batch(g):
        i = torch.randint(0, n, (batch_size,), generator=g)
        return train_x[i].to(device), train_y[i].to(device)

    def loss(model, b):
        return nn.functional.cross_entropy(model(b[0]), b[1])

    return Task(f"{kind} (digits)", make_model, batch, loss, [(test_x.to(device), data["test_y"].to(device))])


class GRULM(nn.Module):
    """A byte-level GRU language model: embedding, one GRU layer, a linear read-out."""

    def __init__(self, vocab: int, embd: int, hidden: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, embd)
        self.gru = nn.GRU(embd, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx: Tensor, targets: Tensor):
        """``(logits, mean cross-entropy)`` of ``idx`` (B, T) against ``targets``."""
        h, _ = self.gru(self.emb(idx))
        logits = self.head(h)
        return logits, nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def text_task(kind: str, *, seq_len: int, batch_size: int, model: Mapping, device="cpu") -> Task:
    """A byte-level LM on Python's docs (``"gru"``: :class:`GRULM`, or ``"gpt"``), 4 held-out windows."""
    if kind not in ("gru", "gpt"):
        raise ValueError(f"kind must be 'gru' or 'gpt', got {kind!r}")
    from adamlinf.data.text import pydoc_corpus

    data = torch.as_tensor(np.frombuffer(pydoc_corpus().encode("utf-8"), dtype=np.uint8).astype(np.int64))
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]

    def windows(src, g, n):
        i = torch.randint(0, len(src) - seq_len - 1, (n,), generator=g)
        w = torch.stack([src[j : j + seq_len + 1] for j in i.tolist()])
        return w[:, :-1].to(device), w[:, 1:].to(device)

    def make_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        if kind == "gru":
            return GRULM(256, int(model["embd"]), int(model["hidden"])).to(device)
        return GPT(GPTConfig(vocab_size=256, block_size=seq_len, **dict(model))).to(device)

    def batch(g):
        return windows(train, g, batch_size)

    g_eval = torch.Generator().manual_seed(12345)
    fixed = [windows(val, g_eval, batch_size) for _ in range(4)]
    return Task(f"{kind} (pydoc bytes)", make_model, batch, lambda m, b: m(b[0], b[1])[1], fixed)


RotationBuilder = Callable[[nn.Module, Task, int], rot.Rotation]


def _offsets(model: nn.Module) -> dict[str, tuple[int, int]]:
    out, start = {}, 0
    for name, p in model.named_parameters():
        out[name] = (start, start + p.numel())
        start += p.numel()
    return out


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _grad_samples(model: nn.Module, task: Task, n_batches: int, seed: int) -> list[list[Tensor]]:
    g = torch.Generator().manual_seed(777 + seed)
    grads = []
    for _ in range(n_batches):
        model.zero_grad(set_to_none=True)
        task.loss(model, task.batch(g)).backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return grads


def rotation_builders(*, tensor: str, n_head: int, group: int, n_batches: int) -> dict[str, RotationBuilder]:
    r"""The rotations of question 3, each ``(model, task, seed) -> Rotation``.

    ``"tensor"``: the coordinates of the parameter ``tensor``; ``"head"``: head 0's q, k, v (first GPT
    layer); ``"model"``: :func:`rotated`; ``"similar"``: Haar within groups of ``group`` coordinates of
    alike mean squared gradient (``n_batches`` at init); ``"eigen"``: per weight matrix, the eigenbases of
    :math:`\sum GG^\top` and :math:`\sum G^\top G` at init (Shampoo's, SOAP's basis, fixed).
    """

    def one_tensor(model, task, seed):
        a, b = _offsets(model)[tensor]
        return rot.random_block_rotation(_n(model), [torch.arange(a, b)], seed=seed, device=_device(model))

    def one_head(model, task, seed):
        off = _offsets(model)
        e = model.config.n_embd
        rows = torch.cat([torch.arange(p * e, p * e + e // n_head) for p in range(3)])  # q, k, v of head 0
        a, _ = off["transformer.h.0.attn.c_attn.weight"]
        parts = [(a + rows[:, None] * e + torch.arange(e)[None, :]).reshape(-1)]
        if "transformer.h.0.attn.c_attn.bias" in off:  # a GPT built with biases
            parts.append(off["transformer.h.0.attn.c_attn.bias"][0] + rows)
        return rot.random_block_rotation(_n(model), [torch.cat(parts)], seed=seed, device=_device(model))

    def similar(model, task, seed):
        grads = _grad_samples(model, task, n_batches, seed)
        v = torch.stack([torch.cat([x.reshape(-1) for x in gs]) ** 2 for gs in grads]).mean(0)
        order = torch.argsort(v.cpu())
        sets = list(order[: (len(order) // group) * group].reshape(-1, group))
        return rot.random_block_rotation(_n(model), sets, seed=seed, device=_device(model))

    def eigen(model, task, seed):
        grads = _grad_samples(model, task, n_batches, seed)
        blocks, start = [], 0
        for k, p in enumerate(model.parameters()):
            if p.dim() >= 2:
                G = [gs[k].reshape(p.shape[0], -1).double() for gs in grads]
                left = rot.eigenbasis(sum(x @ x.T for x in G), dtype=p.dtype)
                right = rot.eigenbasis(sum(x.T @ x for x in G), dtype=p.dtype)
                blocks.append((torch.arange(start, start + p.numel()), rot.KroneckerRotation(left, right)))
            start += p.numel()
        return rot.BlockRotation(_n(model), blocks)

    return {"tensor": one_tensor, "head": one_head, "model": rotated(), "similar": similar, "eigen": eigen}


def _n(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_partition(model: nn.Module) -> partitions.Partition:
    """One block per layer: embeddings, each transformer block, the final norm (GPT); else each module."""
    keys = []
    for n, _ in model.named_parameters():
        parts = n.split(".")
        if parts[:2] == ["transformer", "h"]:
            keys.append(".".join(parts[:3]))  # one transformer block
        elif parts[0] == "transformer":
            keys.append("transformer." + ("emb" if parts[1] in ("wte", "wpe") else parts[1]))
        else:
            keys.append(parts[0])
    label = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    table = {p: torch.full(p.shape, label[k]) for p, k in zip(model.parameters(), keys, strict=True)}
    return partitions.custom(table, name="layers")


@dataclass(frozen=True)
class Arm:
    r"""An optimizer and :math:`\beta_1`, on :math:`L\circ R` for ``rotation``, blockwise by ``partition``."""

    optimizer: str
    rotation: RotationBuilder | None = None
    partition: Callable[[nn.Module], partitions.Partition] | None = None
    beta1: float = 0.9


def lr_factor(t: int, steps: int, warmup: float = 0.05) -> float:
    """Linear warm-up over ``warmup`` of the steps, then cosine decay to a tenth."""
    w = max(1, int(round(warmup * steps)))
    if t < w:
        return (t + 1) / w
    return 0.1 + 0.45 * (1 + math.cos(math.pi * (t - w) / max(1, steps - w)))


def train(
    task: Task, arm: Arm, lr: float, *, steps: int, seed: int, beta2: float = 0.999, callback=None
) -> tuple[float, nn.Module, object]:
    """``(final metric, model, rotated parametrization or None)``; ``inf`` on a non-finite loss.

    ``callback(t, model, rp)`` runs before step ``t`` and after the last (``t = steps``).
    """
    model = task.make_model(seed)
    rp = None
    if arm.rotation is not None:
        rp = rot.RotatedParametrization(model, arm.rotation(model, task, seed))
    params = rp.parameters() if rp is not None else list(model.parameters())
    kw = {"partition": arm.partition(model)} if arm.partition is not None else {}
    opt = optim.create(arm.optimizer, params, lr=lr, betas=(arm.beta1, beta2), **kw)
    g = torch.Generator().manual_seed(1_000_003 * (seed + 1))

    def before_step(t: int) -> None:
        if callback is not None:
            callback(t, model, rp)
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(t, steps)

    if not train_steps(
        model, opt, lambda t: task.loss(model, task.batch(g)), steps, rp=rp, before_step=before_step
    ):
        return math.inf, model, rp
    if callback is not None:
        callback(steps, model, rp)
    return task.evaluate(model), model, rp


@dataclass
class Tuned:
    """The tuned comparison of arms on one task: every run (``finals``), a value per arm, kept models."""

    sweep: sweeps.Sweep
    finals: pd.DataFrame
    values: dict[str, Measured]
    seconds: float
    models: dict[tuple[str, int], tuple[nn.Module, object]] = field(default_factory=dict)

    def table(self, task: str = "") -> pd.DataFrame:
        """Per arm: tuned lr, grid, whether the optimum is interior, the measured value."""
        rows = []
        for arm, lr in self.sweep.best_lr.items():
            grid, m = self.sweep.grids[arm], self.values[arm]
            span = f"{min(grid):.3g} … {max(grid):.3g} ({len(grid)})"
            row = {"task": task, "arm": arm, "tuned lr": lr, "grid": span}
            row |= {"interior": arm not in self.sweep.on_edge, "final (measuring seeds)": m.text(4)}
            rows.append(row | {"mean": m.value, "std": m.spread})
        return pd.DataFrame(rows)


def tune(
    task: Task,
    arms: Mapping[str, Arm],
    grids: Mapping[str, Sequence[float]],
    *,
    steps: int,
    tune_seed: int,
    seeds: Sequence[int],
    beta2: float = 0.999,
    max_extensions: int = 3,
    keep: Sequence[str] = (),
) -> Tuned:
    """Tune each arm's lr on ``tune_seed`` (extended grids), measure on ``seeds``; models of ``keep`` kept."""
    if tune_seed in seeds:
        raise ValueError(f"the tuning seed {tune_seed} must not also measure (seeds={list(seeds)})")
    t0 = time.perf_counter()
    rows: dict[tuple[str, float, int], dict] = {}
    models: dict[tuple[str, int], tuple[nn.Module, object]] = {}

    def run(arm: str, lr: float, seed: int, role: str) -> None:
        key = (arm, float(lr), int(seed))
        if key not in rows:
            t = time.perf_counter()
            final, model, rp = train(task, arms[arm], lr, steps=steps, seed=seed, beta2=beta2)
            if role == "measure" and arm in keep:
                models[(arm, int(seed))] = (model, rp)
            row = dict(optimizer=arm, lr=float(lr), seed=int(seed), final=final, role=role)
            rows[key] = row | {"seconds": time.perf_counter() - t}

    def evaluate(grids_now):
        for arm, lrs in grids_now.items():
            for lr in lrs:
                run(arm, lr, tune_seed, "tune")
        return pd.DataFrame([r for r in rows.values() if r["seed"] == tune_seed])

    sweep = sweeps.tune_grid(grids, evaluate, max_extensions=max_extensions)
    for arm, lr in sweep.best_lr.items():
        for s in seeds:
            run(arm, lr, s, "measure")
    finals = pd.DataFrame(list(rows.values()))
    measure = finals[finals.role == "measure"]
    values = {arm: Measured.from_seeds(measure[measure.optimizer == arm].final) for arm in arms}
    return Tuned(sweep, finals, values, time.perf_counter() - t0, models)


def claims(values: Mapping[str, Measured], pairs: Sequence[tuple], *, q: int, **table) -> pd.DataFrame:
    """Verdict rows (origin book) of question ``q``'s ``(text, better, worse)`` claims, lower better."""
    cs = [Claim(*pair, paper="not claimed", where=f"Review Q{q}", origin=BOOK) for pair in pairs]
    return claims_table(values, cs, **table)


def _math_attention(model: nn.Module) -> nn.Module:
    """The model, a GPT switched to its "math" attention (whose double backward exists)."""
    return model.set_attention("math") if isinstance(model, GPT) else model


def basis_norms(
    model: nn.Module, task: Task, batches: list, rotation=None, *, n_probes: int, seed: int = 0, spectral=True
) -> dict:
    r"""‖H‖₁,₁/d (band) and ‖H‖₂ on ``batches`` at the model's point; with ``rotation``: :math:`R^\top HR`."""
    h = hessian.HVP(_math_attention(model), task.loss, batches)
    op = hessian.rotated(h, rotation) if rotation is not None else h
    est = hessian.l11_norm(op, n_probes, seed=seed, partition=None, progress=False)
    out = {"d": est.d, "l11_per_d": est.per_dim, "l11_lo": est.per_dim_lo, "l11_hi": est.per_dim_hi}
    if spectral:
        out["spectral"] = hessian.spectral_norm(h, tol=1e-3, seed=seed)
    return out


def checkpoint_norms(
    task: Task, batches: list, *, adam: nn.Module, rotated_adam, adasgd: nn.Module, n_probes: int, seed=0
) -> pd.DataFrame:
    """Table 2's norms: ‖H‖₁,₁/d, ‖H‖₂ at Adam's, ‖RᵀHR‖₁,₁/d at rotated Adam's, ‖H‖₂ at AdaSGD's model."""
    rot_model, rp = rotated_adam
    a = basis_norms(adam, task, batches, n_probes=n_probes, seed=seed)
    r = basis_norms(rot_model, task, batches, rp.rotation, n_probes=n_probes, seed=seed, spectral=False)
    h_adasgd = hessian.HVP(_math_attention(adasgd), task.loss, batches)
    spec_adasgd = hessian.spectral_norm(h_adasgd, tol=1e-3, seed=seed)

    def l11(optimizer, which, m):
        v = m["l11_per_d"]
        row = dict(optimizer=optimizer, hessian=which, quantity="l11_per_dim", value=v)
        return row | dict(lo=min(m["l11_lo"], v), hi=max(m["l11_hi"], v), n_probes=n_probes, d=m["d"])

    def spec(optimizer, value):
        row = dict(optimizer=optimizer, hessian="H", quantity="spectral_norm", value=value)
        return row | dict(n_probes=0, d=a["d"])

    rows = [l11("adam", "H", a), spec("adam", a["spectral"]), l11("rotated_adam", "RHR", r)]
    return pd.DataFrame([*rows, spec("adasgd", spec_adasgd)])


def track_norms(
    task: Task, lr: float, *, steps: int, at: Sequence[int], seed: int, n_probes: int, n_batches: int
) -> pd.DataFrame:
    """Train Adam; at the steps ``at``, ‖H‖₂ and ‖H‖₁,₁/d (also after :func:`rotated`), held-out batches."""
    rows = []
    batches = task.eval_batches[:n_batches]

    def measure(t, model, rp):
        if t not in at:
            return
        R = rotated()(model, task, seed)
        std = basis_norms(model, task, batches, n_probes=n_probes, seed=seed)
        rnd = basis_norms(model, task, batches, R, n_probes=n_probes, seed=seed, spectral=False)
        row = dict(seed=seed, step=t, d=std["d"], spectral=std["spectral"], l11_per_d=std["l11_per_d"])
        row |= dict(l11_lo=std["l11_lo"], l11_hi=std["l11_hi"], rotated_l11_per_d=rnd["l11_per_d"])
        rows.append(row | dict(rotated_lo=rnd["l11_lo"], rotated_hi=rnd["l11_hi"]))

    train(task, Arm("adam"), lr, steps=steps, seed=seed, callback=measure)
    out = pd.DataFrame(rows)
    out["ratio"] = out.l11_per_d / out.spectral  # below 1: the standard basis favours Adam over AdaSGD
    out["rotated_ratio"] = out.rotated_l11_per_d / out.spectral
    return out


def phi_table(model: nn.Module, task: Task, batches: list, parts: Mapping) -> pd.DataFrame:
    r"""The blockwise smoothness bound :math:`H(L,\Phi)` (Lemma 3.13) of each partition, exact Hessian.

    ``parts``: name → :class:`~adamlinf.partitions.Partition`. Per d: ``coordinate`` ‖H‖₁,₁, ``whole`` d‖H‖₂.
    """
    H = hessian.exact_hessian(_math_attention(model), task.loss, batches)
    params = list(model.parameters())
    rows = []
    for name, part in parts.items():
        ids = part.flat_index(params)
        bound = theory.blockwise_bound(H, ids) / H.shape[0]
        rows.append({"partition": name, "blocks": int(ids.max()) + 1, "H_phi_per_d": bound})
    return pd.DataFrame(rows)


def plot_sweeps(axes, tuned: Mapping[str, Tuned], labels: Mapping[str, str]) -> None:
    """One sweep panel per task: tuning-seed curve, measuring seeds as error bars at the tuned lr."""
    for ax, (name, tu) in zip(np.atleast_1d(axes).ravel(), tuned.items(), strict=False):
        sweeps.plot_sweep(ax, tu.finals, labels=labels, best_lr=tu.sweep.best_lr)
        ax.set_title(name, fontsize=9)


def make_task(spec: Mapping, device="cpu") -> Task:
    """A task from a page's parameter dict: ``kind`` (mlp, cnn, gru, gpt) and its sizes, on ``device``."""
    kind = spec["kind"]
    if kind in ("mlp", "cnn"):
        return digits_task(kind, width=int(spec["width"]), batch_size=int(spec["batch_size"]), device=device)
    keys = ("embd", "hidden") if kind == "gru" else ("n_layer", "n_head", "n_embd")
    model = {k: int(spec[k]) for k in keys}
    size = {"seq_len": int(spec["seq_len"]), "batch_size": int(spec["batch_size"])}
    return text_task(kind, **size, model=model, device=device)


def rotated(k: int = 2) -> RotationBuilder:
    """Rotated Adam's rotation: :class:`adamlinf.rotations.PermuteRotate` of all coordinates."""
    return lambda model, task, seed: rot.PermuteRotate(_n(model), k=k, seed=seed, device=_device(model))
