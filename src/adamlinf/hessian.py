r"""Hessian smoothness of a loss: Hessian-vector products, the (1,1)-norm by Cauchy probes
(Algorithm 4, Theorem 4.1), the spectral norm by Lanczos, and the blockwise bound of
Definition 3.9 / Lemma 3.13.

Everything here is about the Hessian :math:`H=\nabla^2 L(x)` of a **fixed** function at **fixed**
parameters: the mean loss over a fixed batch (or the average over a fixed list of batches),
with the parameters flattened in ``model.parameters()`` order (or the order of a given
``params`` list), i.e. the order of ``torch.cat([p.reshape(-1) for p in params])``.

=====================================  ===================================================
``hvp(model, loss_fn, batches)``       :class:`HVP`, ``v -> H v`` (forward-over-reverse or
                                       double backward), also as a SciPy ``LinearOperator``
``rotated(hvp, rotation)``             ``v -> R^T H R v``: the Hessian of :math:`L\circ R`
``exact_hessian(model, loss_fn, b)``   the dense :math:`d\times d` Hessian (small ``d``)
``l11_norm(hvp, n_probes)``            :math:`\|H\|_{1,1}` by Cauchy probes (Algorithm 4)
``spectral_norm(hvp)``                 :math:`\|H\|_2` by Lanczos (``eigsh``)
``blockwise_bound(H, block_index)``    :math:`\sum_{b,c}\sqrt{d_bd_c}\|H_{(b),(c)}\|_2`
``smoothness_table(...)``              the Table 2/4 metrics
``l11_error_study(n_grid, ...)``       Theorem 4.1 experiment: estimator error vs ``n``
``error_quantiles`` / ``fit_rate``     error quantiles over seeds; slope and constant of
                                       :math:`\sqrt{C\log(1/\delta)/n}`
=====================================  ===================================================

Which functions have a Hessian here
-----------------------------------
``loss_fn(model, batch)`` must be a deterministic, twice differentiable function of the
parameters. Three things commonly break this, and :class:`HVP` checks for them:

* **Fused attention.** ``torch.nn.functional.scaled_dot_product_attention`` dispatches to fused
  kernels (flash / memory-efficient) that have neither a double backward nor forward-mode AD.
  A model with a ``set_attention`` method (our :class:`adamlinf.models.gpt.GPT`) is switched to
  its explicit ``"math"`` attention (softmax of :math:`QK^\top/\sqrt{d_h}`), which both HVP
  methods differentiate; the switch is announced with a warning.
* **BatchNorm with running statistics in training mode** updates its buffers on every forward,
  so each HVP would see a different model state. Such a model is refused: call ``model.eval()``
  (normalise with the stored running statistics: a fixed function), or build the network with
  ``track_running_stats=False``, as the paper's ResNet18 runs do. BatchNorm without running
  statistics normalises with the statistics of the batch *in both modes*: that is a fixed
  deterministic function of a fixed batch (the batch statistics are differentiated through),
  and it is allowed.
* **Dropout in training mode** is random: refused (call ``model.eval()``).

Finally the loss is evaluated twice and must agree exactly (the determinism check of
curvlinops), which catches anything else random.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "HVP", "hvp", "rotated", "exact_hessian", "L11Estimate", "l11_norm", "l11_exact",
    "spectral_norm", "lanczos", "blockwise_bound", "block_diagonal_bound", "smoothness_table",
    "cauchy_probe", "check_fixed_function", "heavy_tailed_matrix", "l11_sweep", "rate_constant",
]

LossFn = Callable[[nn.Module, Any], Tensor]


# --------------------------------------------------------------------------------------------
# checks that the loss is a fixed function
# --------------------------------------------------------------------------------------------
def _switch_attention(model: nn.Module) -> None:
    """Switch every submodule that offers ``set_attention`` (our GPT) to the ``"math"`` path."""
    for m in model.modules():
        if hasattr(m, "set_attention") and callable(m.set_attention):
            cfg = getattr(m, "config", None)
            current = getattr(cfg, "attention", None)
            if current != "math":
                warnings.warn(
                    f"{type(m).__name__}: switching attention from {current!r} to 'math' for "
                    "Hessian-vector products (fused scaled_dot_product_attention has no double "
                    "backward / forward-mode AD); call model.set_attention(...) to switch back.",
                    stacklevel=3)
                m.set_attention("math")
            return  # the top-level GPT switches all its blocks


def check_fixed_function(model: nn.Module, loss_fn: LossFn | None = None,
                         batches: Sequence[Any] | None = None) -> None:
    """Raise ``ValueError`` unless ``loss_fn(model, batch)`` is a fixed function of the
    parameters: no BatchNorm that updates running statistics (training mode with
    ``track_running_stats=True``), no active dropout, and (if ``loss_fn``/``batches`` are given)
    the loss evaluates to the same number twice."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.training and m.track_running_stats:
            raise ValueError(
                f"module {name or type(m).__name__!r} is a {type(m).__name__} in training mode "
                "with track_running_stats=True: it normalises with batch statistics AND updates "
                "its running statistics on every forward, so repeated Hessian-vector products "
                "would not see one fixed function. Call model.eval() (use the running "
                "statistics) or build it with track_running_stats=False (batch statistics in "
                "both modes, a fixed function of a fixed batch).")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            raise ValueError(f"module {name!r} is active dropout (p={m.p}): the loss is random. "
                             "Call model.eval() before computing Hessians.")
    if loss_fn is not None and batches:
        with torch.no_grad():
            a = loss_fn(model, batches[0])
            b = loss_fn(model, batches[0])
        if not torch.equal(a, b) and not (torch.isnan(a).all() and torch.isnan(b).all()):
            raise ValueError(f"loss_fn(model, batch) is not deterministic ({a.item()!r} then "
                             f"{b.item()!r}): the Hessian of a random function is undefined. "
                             "Put the model in eval mode and fix the batch.")


# --------------------------------------------------------------------------------------------
# Hessian-vector products
# --------------------------------------------------------------------------------------------
class _LossModule(nn.Module):
    """``forward(batch) = loss_fn(model, batch)``, so that ``torch.func.functional_call`` can
    substitute the model's parameters while ``loss_fn`` calls the model however it likes."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def _as_batch_list(batches) -> list:
    if isinstance(batches, list):
        if not batches:
            raise ValueError("batches is an empty list")
        return batches
    return [batches]  # one batch (a tensor, a tuple of tensors, a dict, ...)


class _Operator:
    """What every Hessian operator here shares, given ``d``, ``dtype``, ``device`` and
    ``matvec(v)`` (a flat ``(d,)`` vector to :math:`Hv`)."""

    d: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, v: Tensor) -> Tensor:
        return self.matvec(v)

    def matmat(self, V: Tensor) -> Tensor:
        """:math:`HV^\\top` row by row: ``V`` of shape ``(k, d)`` -> ``(k, d)``."""
        return torch.stack([self.matvec(v) for v in V])

    def dense(self) -> Tensor:
        """The dense Hessian by ``d`` products with the unit vectors (small ``d`` only)."""
        eye = torch.eye(self.d, dtype=self.dtype, device=self.device)
        return torch.stack([self.matvec(e) for e in eye], dim=1)

    def as_linear_operator(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (float64 NumPy vectors in and out)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x):
            x = np.asarray(x).reshape(-1)
            y = self.matvec(torch.from_numpy(np.ascontiguousarray(x)))
            return y.detach().to("cpu", torch.float64).numpy()

        return LinearOperator((self.d, self.d), matvec=mv, rmatvec=mv, dtype=np.float64)


class HVP(_Operator):
    r"""The Hessian :math:`H=\nabla^2 L(x)` of
    :math:`L(x)=\frac1{|\mathcal B|}\sum_{B\in\mathcal B}\texttt{loss\_fn}(\text{model}_x, B)`
    at the model's current parameters, as a matrix-free operator (Pearlmutter's trick
    {cite}`pearlmutter1994fast`).

    ``method``:

    * ``"forward"``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad`` of a
      ``functional_call``: one forward+backward pass carrying a tangent, no graph kept;
    * ``"double_backward"``: ``autograd.grad`` of :math:`\langle\nabla L, v\rangle`; with
      ``cache_graph=True`` (default when there is one batch) the first-order graph is built
      once and every product is one backward pass through it (fast for many probes, but the
      graph stays in memory);
    * ``"auto"``: ``"double_backward"``, the faster on CPU for both the ci GPT and an MLP
      (``benchmarks/bench_hessian.py``, 1 CPU thread: on the ci GPT forward-over-reverse costs
      ~5.1x a gradient, double backward ~3.9x uncached and ~2.7x with the cached graph; on an
      MLP 3.9x, 2.9x and 1.9x).

    Both agree to rounding (tested to 1e-8 relative in float64). ``d`` is the number of
    parameters; vectors are flat in ``params`` order, in the dtype/device of the parameters.

    The operator is the Hessian at the parameters the model holds when a product is taken; the
    cached graph (``cache_graph=True``) pins them at the first product, so call
    :meth:`clear_cache` (or build a new ``HVP``) after changing the parameters. Tied parameters
    (GPT's embedding / output head) appear once, as in ``model.parameters()``.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches, params: Sequence[Tensor] | None = None,
                 method: str = "auto", *, cache_graph: bool | None = None, check: bool = True):
        if method not in ("auto", "forward", "double_backward"):
            raise ValueError(f"method must be 'auto', 'forward' or 'double_backward', got {method!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.batches = _as_batch_list(batches)
        _switch_attention(model)
        if check:
            check_fixed_function(model, loss_fn, self.batches)
        named = dict(model.named_parameters())  # de-duplicated (tied weights appear once)
        if params is None:
            self.names = [n for n, p in named.items() if p.requires_grad]
        else:
            by_id = {id(p): n for n, p in named.items()}
            missing = [i for i, p in enumerate(params) if id(p) not in by_id]
            if missing:
                raise ValueError(f"params[{missing[0]}] is not a parameter of the model")
            self.names = [by_id[id(p)] for p in params]
        if not self.names:
            raise ValueError("no parameters to differentiate")
        self.params: list[Tensor] = [named[n] for n in self.names]
        self.shapes = [p.shape for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.d = int(sum(self.numels))
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.method = "double_backward" if method == "auto" else method
        self.cache_graph = (len(self.batches) == 1) if cache_graph is None else cache_graph
        self._loss_module = _LossModule(model, loss_fn)
        self._graph = None  # cached (grads) of the first-order graph, double backward only
        self.n_products = 0

    # ---- flat <-> per-tensor ---------------------------------------------------------------
    def flatten(self, tensors: Sequence[Tensor]) -> Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, v: Tensor) -> list[Tensor]:
        return [c.view(s) for c, s in zip(torch.split(v, self.numels), self.shapes)]

    def tensor_index(self) -> Tensor:
        """``(d,)`` block ids of the per-tensor partition (block ``i`` = ``params[i]``)."""
        return torch.repeat_interleave(torch.arange(len(self.numels)), torch.tensor(self.numels))

    def _check_v(self, v: Tensor) -> Tensor:
        v = torch.as_tensor(v)
        if v.shape != (self.d,):
            raise ValueError(f"expected a flat vector of shape ({self.d},), got {tuple(v.shape)}")
        return v.to(device=self.device, dtype=self.dtype)

    # ---- the loss, functionally -------------------------------------------------------------
    def _functional_loss(self, pdict: dict, batch) -> Tensor:
        full = {"model." + n: p for n, p in pdict.items()}
        return torch.func.functional_call(self._loss_module, full, (batch,), tie_weights=True,
                                          strict=False)

    def loss(self) -> float:
        """The loss averaged over the batches at the current parameters."""
        with torch.no_grad():
            return float(sum(self.loss_fn(self.model, b) for b in self.batches) / len(self.batches))

    def gradient(self) -> Tensor:
        """The flat gradient :math:`\\nabla L(x)` (averaged over the batches)."""
        total = torch.zeros(self.d, dtype=self.dtype, device=self.device)
        for b in self.batches:
            loss = self.loss_fn(self.model, b)
            g = torch.autograd.grad(loss, self.params, allow_unused=True)
            total += self.flatten([torch.zeros_like(p) if gi is None else gi
                                   for gi, p in zip(g, self.params)])
        return total / len(self.batches)

    # ---- products ---------------------------------------------------------------------------
    def _hvp_forward(self, v: Tensor) -> Tensor:
        primals = {n: p.detach() for n, p in zip(self.names, self.params)}
        tangents = dict(zip(self.names, self.unflatten(v)))
        out = torch.zeros(self.d, dtype=self.dtype, device=self.device)
        for b in self.batches:
            grad_fn = torch.func.grad(lambda pd, b=b: self._functional_loss(pd, b))
            _, hv = torch.func.jvp(grad_fn, (primals,), (tangents,))
            out += self.flatten([hv[n] for n in self.names])
        return out / len(self.batches)

    def _first_order(self, batch):
        loss = self.loss_fn(self.model, batch)
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.params)]

    def _hvp_double_backward(self, v: Tensor) -> Tensor:
        vs = self.unflatten(v)
        out = torch.zeros(self.d, dtype=self.dtype, device=self.device)
        for b in self.batches:
            if self.cache_graph:
                if self._graph is None:
                    self._graph = self._first_order(b)
                grads = self._graph
            else:
                grads = self._first_order(b)
            needs = [g.requires_grad for g in grads]
            if not any(needs):  # linear loss: H = 0
                continue
            hv = torch.autograd.grad([g for g, n in zip(grads, needs) if n],
                                     self.params, grad_outputs=[x for x, n in zip(vs, needs) if n],
                                     retain_graph=self.cache_graph, allow_unused=True)
            out += self.flatten([torch.zeros_like(p) if h is None else h
                                 for h, p in zip(hv, self.params)])
        return out / len(self.batches)

    def matvec(self, v: Tensor) -> Tensor:
        """:math:`Hv` for a flat ``v`` of shape ``(d,)``."""
        v = self._check_v(v)
        self.n_products += 1
        if self.method == "forward":
            return self._hvp_forward(v)
        return self._hvp_double_backward(v)

    def clear_cache(self) -> None:
        """Free the cached first-order graph (double backward)."""
        self._graph = None


def hvp(model: nn.Module, loss_fn: LossFn, batches, params: Sequence[Tensor] | None = None,
        method: str = "auto", **kwargs) -> HVP:
    """:class:`HVP` of ``loss_fn`` averaged over ``batches`` (a batch or a list of batches)."""
    return HVP(model, loss_fn, batches, params, method, **kwargs)


class RotatedHVP(_Operator):
    r"""The Hessian of :math:`L\circ R` at :math:`w`, where the model holds :math:`x = Rw`:
    :math:`\nabla^2(L\circ R)(w) = R^\top\,\nabla^2L(Rw)\,R`, so ``matvec(v) = R^T H R v``.
    This is the Hessian of the loss that rotated Adam optimises (Section 4.2, Appendix D.1).

    ``rotation`` is an object with ``apply(x) = R x`` and ``apply_T(x) = R^T x`` over the flat
    parameter vector (e.g. :class:`adamlinf.rotations.PermuteRotate`), or a dense orthogonal
    ``(d, d)`` tensor."""

    def __init__(self, base, rotation):
        self.base = base
        if isinstance(rotation, Tensor):
            if rotation.shape != (base.d, base.d):
                raise ValueError(f"rotation matrix must be ({base.d}, {base.d}), got {tuple(rotation.shape)}")
            R = rotation
            self._apply = lambda x: R.to(x) @ x
            self._apply_T = lambda x: R.to(x).T @ x
        elif hasattr(rotation, "apply") and hasattr(rotation, "apply_T"):
            self._apply, self._apply_T = rotation.apply, rotation.apply_T
        else:
            raise ValueError("rotation must be a (d, d) tensor or have apply/apply_T methods")
        self.rotation = rotation
        self.d, self.dtype, self.device = base.d, base.dtype, base.device

    def tensor_index(self) -> Tensor:
        return self.base.tensor_index()

    def _cast(self, x: Tensor) -> Tensor:
        """Run the rotation in its own dtype if it has one (e.g. float32 PermuteRotate)."""
        dt = getattr(self.rotation, "dtype", None)
        return x.to(dt) if isinstance(dt, torch.dtype) else x

    def matvec(self, v: Tensor) -> Tensor:
        v = torch.as_tensor(v).to(device=self.device, dtype=self.dtype)
        Rv = self._apply(self._cast(v)).to(self.dtype)
        HRv = self.base.matvec(Rv)
        return self._apply_T(self._cast(HRv)).to(self.dtype)


def rotated(hvp: HVP, rotation) -> RotatedHVP:
    """``v -> R^T H R v``: the Hessian of :math:`L\\circ R` (see :class:`RotatedHVP`)."""
    return RotatedHVP(hvp, rotation)


class _MatrixHVP(_Operator):
    """A dense symmetric matrix seen as an HVP (tests, the Theorem 4.1 notebook)."""

    def __init__(self, H: Tensor):
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise ValueError(f"H must be square, got {tuple(H.shape)}")
        self.H = H
        self.d, self.dtype, self.device = H.shape[0], H.dtype, H.device

    def matvec(self, v):
        return self.H @ torch.as_tensor(v).to(self.H)

    def matmat(self, V):
        return V.to(self.H) @ self.H.T

    def dense(self) -> Tensor:
        return self.H.clone()

    def tensor_index(self):
        return torch.zeros(self.d, dtype=torch.long)


def _as_operator(h):
    if isinstance(h, Tensor):
        return _MatrixHVP(h)
    if not hasattr(h, "matvec") or not hasattr(h, "d"):
        raise ValueError("expected an HVP (with .d and .matvec) or a dense (d, d) tensor")
    return h


def exact_hessian(model: nn.Module, loss_fn: LossFn, batches, params: Sequence[Tensor] | None = None,
                  method: str = "double_backward", chunk: int = 256) -> Tensor:
    r"""The dense ``(d, d)`` Hessian of the flat-parameter loss averaged over ``batches``; small
    ``d`` only (``d**2`` numbers).

    ``method="double_backward"`` (default): the first-order graph is built once and row ``i``
    is one more backward pass, :math:`H_{i,:}=\nabla(\partial_iL)`, ``chunk`` rows per call
    (``autograd.grad(..., is_grads_batched=True)``; falls back to one row per call).
    ``method="torch.func"``: ``torch.func.hessian`` (``jacfwd(jacrev)``, vectorised by
    ``vmap``): faster, but in torch 2.14 its ``vmap`` batching of the LayerNorm backward without
    bias returns wrong mixed second derivatives (the GPT Hessian comes out non-symmetric), so
    it is not the default."""
    if method == "torch.func":
        h = HVP(model, loss_fn, batches, params, method="forward", check=True)
        x0 = h.flatten([p.detach() for p in h.params])

        def f(flat):
            pdict = dict(zip(h.names, h.unflatten(flat)))
            return sum(h._functional_loss(pdict, b) for b in h.batches) / len(h.batches)

        return torch.func.hessian(f)(x0)
    if method != "double_backward":
        raise ValueError(f"method must be 'double_backward' or 'torch.func', got {method!r}")
    h = HVP(model, loss_fn, batches, params, method="double_backward", check=True)
    H = torch.zeros((h.d, h.d), dtype=h.dtype, device=h.device)
    eye = torch.eye(h.d, dtype=h.dtype, device=h.device)
    for b in h.batches:
        grads = h._first_order(b)
        if not any(g.requires_grad for g in grads):
            continue  # linear loss
        g = h.flatten(grads)
        for start in range(0, h.d, chunk):
            E = eye[start:start + chunk]
            try:
                rows = torch.autograd.grad(g, h.params, grad_outputs=E, retain_graph=True,
                                           is_grads_batched=True, allow_unused=True)
                rows = [torch.zeros((len(E),) + p.shape, dtype=h.dtype, device=h.device) if r is None
                        else r for r, p in zip(rows, h.params)]
                H[start:start + chunk] += torch.cat([r.reshape(len(E), -1) for r in rows], 1)
            except RuntimeError:  # an op without a batching rule: one row at a time
                for i in range(start, min(start + chunk, h.d)):
                    r = torch.autograd.grad(g, h.params, grad_outputs=eye[i], retain_graph=True,
                                            allow_unused=True)
                    H[i] += h.flatten([torch.zeros_like(p) if x is None else x for x, p in zip(r, h.params)])
    return H / len(h.batches)


# --------------------------------------------------------------------------------------------
# the (1,1)-norm: Algorithm 4
# --------------------------------------------------------------------------------------------
@dataclass
class L11Estimate:
    r"""Result of :func:`l11_norm`.

    ``total`` estimates :math:`\|H\|_{1,1}=\sum_{ij}|H_{ij}|`; ``per_dim = total / d`` (what the
    authors' code prints and Tables 2/4 compare with :math:`\|H\|_2`); ``rows[j]`` estimates
    :math:`\|H_{j,:}\|_1`; ``blocks[b]`` is the sum of ``rows`` over block ``b`` (``None`` if no
    partition); ``n_probes`` probes were used (``n_dropped`` more were dropped for NaN/inf)."""

    total: float
    per_dim: float
    rows: Tensor
    blocks: Tensor | None
    n_probes: int
    variant: str
    d: int
    n_dropped: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def _probe_seed(seed: int, k: int) -> int:
    """A seed for probe ``k`` that depends only on ``(seed, k)``: the same probes come out
    whatever the number of ranks or chunks."""
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def cauchy_probe(d: int, seed: int, k: int, *, dtype=torch.float64, device="cpu") -> Tensor:
    """Probe ``k`` of Algorithm 4: ``d`` i.i.d. standard Cauchy numbers, seeded by ``(seed, k)``."""
    g = torch.Generator(device=device)
    g.manual_seed(_probe_seed(seed, k))
    return torch.empty(d, dtype=dtype, device=device).cauchy_(generator=g)


def _quantiles_columns(S: Tensor, qs: Sequence[float], chunk: int, *, absolute: bool = False) -> list[Tensor]:
    """Column-wise quantiles of ``S`` (n, d) (of ``|S|`` if ``absolute``) with linear interpolation
    (NumPy's default), ``chunk`` columns at a time (``torch.quantile`` refuses large inputs), so
    only an ``n x chunk`` temporary is made. On CPU by ``numpy.quantile`` (partition, O(n) per
    column; dtypes NumPy lacks, e.g. bfloat16, are widened to float32); elsewhere by ``torch.sort``."""
    n, d = S.shape
    outs = [torch.empty(d, dtype=S.dtype, device=S.device) for _ in qs]
    for start in range(0, d, chunk):
        block = S[:, start:start + chunk]
        if absolute:
            block = block.abs()
        if S.device.type == "cpu":
            if block.dtype in (torch.bfloat16, torch.float16):
                block = block.float()
            a = np.ascontiguousarray(block.detach().T.numpy())
            res = np.quantile(a, list(qs), axis=1)
            for out, r in zip(outs, res):
                out[start:start + chunk] = torch.from_numpy(np.ascontiguousarray(r))
            continue
        s, _ = torch.sort(block, dim=0)
        for out, q in zip(outs, qs):
            pos = q * (n - 1)
            lo, frac = int(math.floor(pos)), pos - math.floor(pos)
            hi = min(lo + 1, n - 1)
            out[start:start + chunk] = s[lo] + frac * (s[hi] - s[lo])
    return outs


def _row_scales(samples: Tensor, variant: str, chunk: int) -> Tensor:
    """Per-coordinate estimate of the Cauchy scale :math:`\\gamma_j=\\|H_{j,:}\\|_1` from the
    samples ``h^{(k)}_j`` (rows of ``samples``)."""
    if variant == "median":  # median |Cauchy(0, gamma)| = gamma
        return _quantiles_columns(samples, [0.5], chunk, absolute=True)[0]
    q25, q75 = _quantiles_columns(samples, [0.25, 0.75], chunk)  # quartiles of Cauchy(0, gamma) = -+gamma
    return (q75 - q25) / 2


def _block_index(partition, h, d: int) -> Tensor | None:
    if partition is None:
        return None
    if isinstance(partition, str):
        if partition != "tensor":
            raise ValueError(f"partition string must be 'tensor', got {partition!r}")
        return h.tensor_index() if hasattr(h, "tensor_index") else None
    if isinstance(partition, Tensor):
        idx = partition.reshape(-1).long()
    elif hasattr(partition, "flat_index"):
        base = getattr(h, "base", h)
        if not hasattr(base, "params"):
            raise ValueError("a Partition needs an HVP built from a model (or pass a block-index tensor)")
        idx = partition.flat_index(base.params).long()
    else:
        raise ValueError("partition must be None, 'tensor', a Partition or a (d,) LongTensor")
    if idx.shape != (d,):
        raise ValueError(f"block index must have shape ({d},), got {tuple(idx.shape)}")
    return idx.cpu()


def l11_norm(hvp, n_probes: int = 50, *, seed: int = 0, variant: str = "median", partition="tensor",
             params=None, progress: bool = True, chunk: int = 1 << 20, batch_probes: int = 1,
             storage_dtype: torch.dtype | None = None, storage_device=None,
             distributed: bool | None = None) -> L11Estimate:
    r"""Estimate :math:`\|H\|_{1,1}=\sum_{i,j}|H_{ij}|` with Cauchy probes (Algorithm 4,
    Theorem 4.1 {cite}`indyk2006stable`).

    Draw :math:`v^{(1..n)}` with i.i.d. standard Cauchy entries and compute :math:`h^{(k)}=Hv^{(k)}`.
    By 1-stability :math:`h^{(k)}_j\sim\mathrm{Cauchy}(0,\gamma_j)` with
    :math:`\gamma_j=\|H_{j,:}\|_1`, so each row norm is a Cauchy scale:

    * ``variant="median"`` (Algorithm 4): :math:`\hat\gamma_j=\mathrm{median}_k|h^{(k)}_j|`;
    * ``variant="iqr"`` (the authors' code): half the inter-quartile range of
      :math:`h^{(1..n)}_j`, :math:`\hat\gamma_j=(q_{0.75}-q_{0.25})/2`.

    and :math:`\widehat N=\sum_j\hat\gamma_j`. Theorem 4.1 (RECONSTRUCTED): with
    :math:`n\gtrsim\varepsilon^{-2}\log(1/\delta)+\log(d/\delta)` the relative error is at most
    :math:`\varepsilon` with probability :math:`1-\delta`.

    ``hvp``: an :class:`HVP`, :class:`RotatedHVP`, or a dense symmetric ``(d, d)`` tensor.
    ``partition``: ``"tensor"`` (per-parameter-tensor blocks, default), ``None``, a
    :class:`adamlinf.partitions.Partition`, or a ``(d,)`` block-index tensor; ``blocks`` holds
    the per-block sums of the row estimates. ``params`` is accepted for API symmetry and ignored
    (the HVP fixes the parameters).

    Probe ``k`` is seeded by ``(seed, k)`` alone (:func:`cauchy_probe`), so the estimate does
    not depend on how probes are batched or split across ranks. Probes whose product has a NaN
    or inf are dropped (like the authors' code).

    **Memory.** The exact coordinate-wise median needs all ``n`` samples of every coordinate,
    so the samples are stored: exactly ``n_probes x d`` numbers of ``storage_dtype`` (default
    the HVP dtype) on ``storage_device`` (default the HVP device; use ``"cpu"`` to keep a GPU
    free, e.g. GPT-2 124M with 50 probes needs 50 x 124M x 4 B = 25 GB). The reduction sorts
    ``chunk`` coordinates at a time (temporary ``n x chunk``). Nothing else of size ``n x d``
    is allocated.

    **Distributed.** Under ``torch.distributed`` (``distributed=None`` means "if initialised"),
    rank ``r`` of ``W`` computes probes ``k = r, r+W, ...`` and the samples are all-gathered,
    so every rank returns the estimate over all ``n`` probes. ``batch_probes > 1`` sends that
    many probes per ``matmat`` call (useful for dense matrices).
    """
    if variant not in ("median", "iqr"):
        raise ValueError(f"variant must be 'median' or 'iqr', got {variant!r}")
    if int(n_probes) < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    h = _as_operator(hvp)
    d, n = h.d, int(n_probes)
    block_idx = _block_index(partition, h, d)
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank, world = 0, 1
    if distributed:
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    mine = list(range(rank, n, world))
    sdtype = storage_dtype or h.dtype
    sdev = torch.device(storage_device) if storage_device is not None else torch.device(h.device)
    samples = torch.empty((len(mine), d), dtype=sdtype, device=sdev)
    ok = torch.zeros(len(mine), dtype=torch.bool)
    t0 = time.perf_counter()
    from tqdm.auto import tqdm
    bar = tqdm(total=len(mine), desc="Cauchy probes", disable=not progress or rank != 0, leave=False)
    for start in range(0, len(mine), max(1, batch_probes)):
        ks = mine[start:start + max(1, batch_probes)]
        V = torch.stack([cauchy_probe(d, seed, k, dtype=h.dtype, device=h.device) for k in ks])
        HV = h.matmat(V) if len(ks) > 1 else h.matvec(V[0])[None]
        for i, hv in enumerate(HV):
            good = bool(torch.isfinite(hv).all())
            ok[start + i] = good
            if good:
                samples[start + i] = hv.detach().to(device=sdev, dtype=sdtype)
        bar.update(len(ks))
    bar.close()
    samples = samples[ok.to(sdev)] if not bool(ok.all()) else samples
    n_dropped_local = int((~ok).sum())
    if distributed and world > 1:
        samples, n_dropped = _all_gather_rows(samples, n_dropped_local)
    else:
        n_dropped = n_dropped_local
    if samples.shape[0] == 0:
        raise ValueError("every Cauchy probe gave a non-finite Hessian-vector product")
    rows = _row_scales(samples, variant, chunk).to("cpu", torch.float64)
    total = float(rows.sum())
    blocks = None
    if block_idx is not None:
        nb = int(block_idx.max()) + 1 if d else 0
        blocks = torch.zeros(nb, dtype=torch.float64).index_add_(0, block_idx, rows)
    return L11Estimate(total=total, per_dim=total / d, rows=rows, blocks=blocks,
                       n_probes=int(samples.shape[0]), variant=variant, d=d, n_dropped=n_dropped,
                       seconds=time.perf_counter() - t0)


def _all_gather_rows(samples: Tensor, n_dropped: int) -> tuple[Tensor, int]:
    """All-gather the ``(n_r, d)`` sample blocks of every rank (padded to equal length)."""
    import torch.distributed as dist
    world = dist.get_world_size()
    # the collective's device: gloo needs CPU tensors, NCCL this rank's GPU (the samples may be
    # stored on the CPU, storage_device="cpu", to keep the GPU free)
    if dist.get_backend() == "nccl":
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    counts = torch.tensor([samples.shape[0], n_dropped], device=dev)
    all_counts = [torch.zeros_like(counts) for _ in range(world)]
    dist.all_gather(all_counts, counts)
    m = max(int(c[0]) for c in all_counts)
    padded = torch.zeros((m, samples.shape[1]), dtype=samples.dtype, device=dev)
    padded[:samples.shape[0]] = samples.to(dev)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = torch.cat([p[:int(c[0])] for p, c in zip(parts, all_counts)]).to(samples.device)
    return out, sum(int(c[1]) for c in all_counts)


def l11_exact(H: Tensor) -> float:
    """:math:`\\|H\\|_{1,1}=\\sum_{ij}|H_{ij}|` of a dense matrix."""
    return float(H.abs().sum())


# --------------------------------------------------------------------------------------------
# spectral norm
# --------------------------------------------------------------------------------------------
def lanczos(hvp, n_iter: int = 50, *, v0: Tensor | None = None, seed: int = 0) -> Tensor:
    """Ritz values (ascending) of ``n_iter`` steps of Lanczos with full reorthogonalisation
    {cite}`lanczos1950iteration` started from ``v0`` (default: a seeded Gaussian vector).
    Stores ``n_iter`` vectors of length ``d``; runs on the HVP's device."""
    from scipy.linalg import eigh_tridiagonal
    h = _as_operator(hvp)
    k = min(int(n_iter), h.d)
    if v0 is None:
        g = torch.Generator(device=h.device).manual_seed(int(seed))
        v0 = torch.randn(h.d, generator=g, dtype=h.dtype, device=h.device)
    q = v0.to(device=h.device, dtype=h.dtype)
    q = q / q.norm()
    Q = torch.empty((k, h.d), dtype=h.dtype, device=h.device)
    alpha, beta = [], []
    for j in range(k):
        Q[j] = q
        w = h.matvec(q)
        a = float(w @ q)
        alpha.append(a)
        w = w - Q[:j + 1].T @ (Q[:j + 1] @ w)  # full reorthogonalisation (twice is enough)
        w = w - Q[:j + 1].T @ (Q[:j + 1] @ w)
        b = float(w.norm())
        if j == k - 1 or b <= 1e-12 * max(1.0, abs(a)):
            break
        beta.append(b)
        q = w / b
    m = len(alpha)
    return torch.from_numpy(eigh_tridiagonal(np.array(alpha), np.array(beta[:m - 1]), eigvals_only=True))


def spectral_norm(hvp, *, tol: float = 1e-6, maxiter: int | None = None, ncv: int | None = None,
                  lanczos_iters: int | None = None, v0: Tensor | None = None, seed: int = 0) -> float:
    r""":math:`\|H\|_2=\max_i|\lambda_i(H)|` by ``scipy.sparse.linalg.eigsh`` (implicitly
    restarted Lanczos, ARPACK) on :meth:`HVP.as_linear_operator` with ``k=1, which="LM"``,
    converged to relative accuracy ``tol``.

    ``lanczos_iters=50`` instead runs exactly that many Lanczos steps (:func:`lanczos`), as the
    authors' code does (50 iterations, Appendix D.2), and returns the largest |Ritz value|: a
    lower bound on :math:`\|H\|_2` that is typically accurate for the extreme eigenvalue.
    ``v0`` is the start vector (the authors start from the normalised gradient); default a
    seeded Gaussian."""
    h = _as_operator(hvp)
    if lanczos_iters is not None:
        return float(lanczos(h, lanczos_iters, v0=v0, seed=seed).abs().max())
    if h.d == 1:
        return float(h.matvec(torch.ones(1, dtype=h.dtype, device=h.device)).abs())
    if h.d <= 2:  # ARPACK needs k < d - 1... use the dense route
        H = torch.stack([h.matvec(e) for e in torch.eye(h.d, dtype=h.dtype, device=h.device)], 1)
        return float(torch.linalg.eigvalsh((H + H.T) / 2).abs().max())
    from scipy.sparse.linalg import eigsh
    if v0 is None:
        v0 = np.random.default_rng(seed).standard_normal(h.d)
    else:
        v0 = v0.detach().to("cpu", torch.float64).numpy()
    vals = eigsh(h.as_linear_operator(), k=1, which="LM", tol=tol, maxiter=maxiter, ncv=ncv,
                 v0=v0, return_eigenvectors=False)
    return float(np.abs(vals).max())


# --------------------------------------------------------------------------------------------
# blockwise smoothness (Definition 3.9, Lemma 3.13)
# --------------------------------------------------------------------------------------------
def _block_norms(H: Tensor, block_index: Tensor) -> tuple[Tensor, Tensor]:
    """``(N, sizes)``: ``N[b, c] = ||H_(b),(c)||_2`` (spectral norms of all sub-blocks, computed
    batched over blocks of equal size) and ``sizes[b] = d_b``."""
    d = H.shape[0]
    if H.shape != (d, d):
        raise ValueError(f"H must be square, got {tuple(H.shape)}")
    idx = torch.as_tensor(block_index).reshape(-1).long().to(H.device)
    if idx.shape != (d,):
        raise ValueError(f"block_index must have shape ({d},), got {tuple(idx.shape)}")
    uniq, idx = torch.unique(idx, return_inverse=True)  # relabel 0..B-1
    B = len(uniq)
    sizes = torch.bincount(idx, minlength=B)
    order = torch.argsort(idx, stable=True)
    members = {}  # size -> (block ids, (nb, size) coordinate indices)
    starts = torch.cumsum(sizes, 0) - sizes
    for s in torch.unique(sizes).tolist():
        ids = torch.nonzero(sizes == s).reshape(-1)
        coords = order[starts[ids][:, None] + torch.arange(s, device=H.device)[None, :]]
        members[s] = (ids, coords)
    N = torch.zeros((B, B), dtype=H.dtype, device=H.device)
    for s, (ib, cb) in members.items():
        for t, (ic, cc) in members.items():
            sub = H[cb[:, None, :, None], cc[None, :, None, :]]  # (nb, nc, s, t)
            if s == 1 or t == 1:
                norms = torch.linalg.vector_norm(sub, dim=(-2, -1))
            else:
                norms = torch.linalg.matrix_norm(sub, ord=2)
            N[ib[:, None], ic[None, :]] = norms
    return N, sizes.to(H.dtype)


def block_diagonal_bound(H: Tensor, block_index: Tensor) -> Tensor:
    r"""The diagonal ``D`` (as a ``(d,)`` vector) that follows :math:`\Phi` with
    :math:`D_{(b)} = r_b = \sum_c\sqrt{d_c/d_b}\,\|H_{(b),(c)}\|_2` and satisfies
    :math:`-D\preceq H\preceq D`.

    Proof: for any :math:`\Delta`, by Cauchy-Schwarz in each block pair and
    :math:`2ab\le\lambda a^2+b^2/\lambda` with :math:`\lambda=\sqrt{d_c/d_b}`,

    .. math::
        |\Delta^\top H\Delta|\le\sum_{b,c}\|H_{(b),(c)}\|_2\|\Delta_{(b)}\|\|\Delta_{(c)}\|
        \le\sum_{b,c}\tfrac12\|H_{(b),(c)}\|_2\Big(\sqrt{\tfrac{d_c}{d_b}}\|\Delta_{(b)}\|^2
        +\sqrt{\tfrac{d_b}{d_c}}\|\Delta_{(c)}\|^2\Big)=\sum_b r_b\|\Delta_{(b)}\|^2=\Delta^\top D\Delta,

    using :math:`\|H_{(b),(c)}\|_2=\|H_{(c),(b)}\|_2` (``H`` symmetric). This is Lemma 3.13
    with :math:`H_b = d_b r_b` (RECONSTRUCTED), and :math:`\mathrm{Tr}(D)=\sum_b d_br_b` is
    :func:`blockwise_bound`."""
    N, sizes = _block_norms(H, block_index)
    r = (N * torch.sqrt(sizes[None, :] / sizes[:, None])).sum(1)
    _, inv = torch.unique(torch.as_tensor(block_index).reshape(-1).long().to(H.device), return_inverse=True)
    return r[inv]


def blockwise_bound(H: Tensor, block_index) -> float:
    r"""The computable upper bound on the :math:`\Phi`-smoothness at one point
    (Definition 3.9 / Lemma 3.13, RECONSTRUCTED):

    .. math:: H(L,\Phi)\le\sum_{b=1}^B\sum_{c=1}^B\sqrt{d_bd_c}\,\|H_{(b),(c)}\|_2=\mathrm{Tr}(D),

    with ``D`` from :func:`block_diagonal_bound` (which dominates ``H``, so it is feasible in
    Eq. (1)). The two extreme partitions:

    * coordinates (:math:`\Phi(i)=i`, Adam): every :math:`d_b=1` and
      :math:`\|H_{(i),(j)}\|_2=|H_{ij}|`, so the bound is :math:`\sum_{ij}|H_{ij}|=\|H\|_{1,1}`;
    * one block (:math:`\Phi\equiv1`, AdaSGD): one term :math:`\sqrt{d\cdot d}\,\|H\|_2=d\|H\|_2`.

    ``block_index``: a ``(d,)`` integer tensor of block ids (any labels), e.g.
    ``Partition.flat_index(params)``."""
    N, sizes = _block_norms(H, block_index)
    s = torch.sqrt(sizes)
    return float((s[:, None] * N * s[None, :]).sum())


# --------------------------------------------------------------------------------------------
# Table 2 / Table 4
# --------------------------------------------------------------------------------------------
def smoothness_table(model: nn.Module, loss_fn: LossFn, batches, *, rotation=None, n_probes: int = 50,
                     seed: int = 0, variant: str = "iqr", params=None, method: str = "auto",
                     spectral: bool = True, lanczos_iters: int | None = None, tol: float = 1e-4,
                     progress: bool = True) -> dict:
    r"""The smoothness metrics of Tables 2 and 4 at the model's current parameters.

    Returns a dict with ``d``; ``l11`` and ``l11_per_dim`` (:math:`\|H\|_{1,1}` and
    :math:`/d`: the Adam row; with ``rotation`` given, :math:`\|R^\top HR\|_{1,1}` of the loss
    rotated Adam optimised, evaluated at its own iterate, i.e. ``model`` holds :math:`x = Rw`);
    ``spectral_norm`` (:math:`\|H\|_2`, rotation invariant: the AdaSGD row, whose bound is
    :math:`d\|H\|_2`) and ``d_spectral_norm``; ``rotated``, ``n_probes``, ``variant``, timings.
    Defaults follow the authors' code: 50 probes, the IQR variant."""
    h = hvp(model, loss_fn, batches, params, method)
    op = rotated(h, rotation) if rotation is not None else h
    t0 = time.perf_counter()
    est = l11_norm(op, n_probes, seed=seed, variant=variant, partition=None, progress=progress)
    out = {"d": h.d, "rotated": rotation is not None, "l11": est.total, "l11_per_dim": est.per_dim,
           "n_probes": est.n_probes, "variant": variant, "l11_seconds": time.perf_counter() - t0}
    if spectral:
        t0 = time.perf_counter()
        s = spectral_norm(h, tol=tol, lanczos_iters=lanczos_iters, seed=seed)
        out.update(spectral_norm=s, d_spectral_norm=h.d * s, spectral_seconds=time.perf_counter() - t0)
    out["loss"] = h.loss()
    return out


# --------------------------------------------------------------------------------------------
# Theorem 4.1 experiments: error of the estimator against an exact matrix
# --------------------------------------------------------------------------------------------
def heavy_tailed_matrix(d: int, seed: int = 0, sigma: float = 1.0, *, dtype=torch.float64) -> Tensor:
    r"""A random symmetric test matrix with heavy-tailed rows: :math:`H = S(G+G^\top)S` with
    :math:`G_{ij}\sim\mathcal N(0,1)` and :math:`S=\mathrm{diag}(e^{\sigma z_i})`,
    :math:`z_i\sim\mathcal N(0,1)`, so the row norms :math:`\|H_{j,:}\|_1\propto s_j` are
    log-normal (a few rows carry much of :math:`\|H\|_{1,1}`, the hard case for Theorem 4.1)."""
    g = torch.Generator().manual_seed(int(seed))
    s = torch.exp(sigma * torch.randn(d, generator=g, dtype=torch.float64))
    G = torch.randn(d, d, generator=g, dtype=torch.float64)
    return (s[:, None] * (G + G.T) * s[None, :]).to(dtype)


def l11_sweep(H: Tensor, n_grid: Sequence[int], seeds: Iterable[int], *,
              variants: Sequence[str] = ("median", "iqr"), chunk: int = 1 << 16):
    r"""Relative error of the Algorithm 4 estimate of :math:`\|H\|_{1,1}` for a dense ``H`` as a
    function of the number of probes: for every seed, draw ``max(n_grid)`` Cauchy probes at once
    (one ``torch.Generator`` seeded with the seed), form all products ``V H`` in one matrix
    product, and evaluate the estimate on the first ``n`` probes for each ``n`` in ``n_grid``
    (nested prefixes). Returns a tidy ``pandas.DataFrame`` with columns
    ``seed, n, variant, estimate, exact, rel_error`` (``rel_error = |est/exact - 1|``)."""
    import pandas as pd
    H = torch.as_tensor(H)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be square, got {tuple(H.shape)}")
    for v in variants:
        if v not in ("median", "iqr"):
            raise ValueError(f"variant must be 'median' or 'iqr', got {v!r}")
    n_grid = sorted(int(n) for n in n_grid)
    if not n_grid or n_grid[0] < 1:
        raise ValueError("n_grid must hold positive integers")
    exact = l11_exact(H)
    d = H.shape[0]
    rows = []
    for seed in seeds:
        g = torch.Generator(device=H.device).manual_seed(int(seed))
        V = torch.empty((n_grid[-1], d), dtype=H.dtype, device=H.device).cauchy_(generator=g)
        HV = V @ H.T
        for n in n_grid:
            for variant in variants:
                est = float(_row_scales(HV[:n], variant, chunk).sum())
                rows.append(dict(seed=int(seed), n=n, variant=variant, estimate=est, exact=exact,
                                 rel_error=abs(est / exact - 1)))
    return pd.DataFrame(rows)


def rate_constant(n, eps, delta: float) -> float:
    r"""Fit the constant of Theorem 4.1's rate :math:`\varepsilon(n)=\sqrt{C\log(1/\delta)/n}`
    (the :math:`\log(d/\delta)` term is negligible for :math:`n\gg\log d`) to measured
    :math:`(1-\delta)`-quantiles ``eps`` of the relative error at probe counts ``n``: least
    squares in log space, :math:`\log C=\mathrm{mean}(\log(\varepsilon^2 n/\log(1/\delta)))`."""
    n = np.asarray(n, dtype=float)
    eps = np.asarray(eps, dtype=float)
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return float(np.exp(np.mean(np.log(eps ** 2 * n / np.log(1 / delta)))))


def small_gpt_hessian(gpt: dict, batch_size: int, *, seed: int = 0, device="cpu") -> Tensor:
    r"""The exact float64 Hessian of a small GPT's mean next-token loss at its GPT-2
    initialisation, on one fixed batch of ``batch_size`` uniformly random token sequences: the
    network test case (b) of Theorem 4.1's experiment.

    ``gpt`` holds :class:`adamlinf.models.gpt.GPTConfig` keyword arguments (``vocab_size``,
    ``block_size``, ``n_layer``, ``n_head``, ``n_embd``); attention is forced to ``"math"`` (the
    fused kernels have no second derivative). ``torch.manual_seed(seed)`` seeds both the weights
    and the tokens. Returns the ``(d, d)`` Hessian from :func:`exact_hessian` (``d`` = number of
    parameters, so keep the model tiny)."""
    from adamlinf.models.gpt import GPT, GPTConfig
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cfg = {k: v for k, v in dict(gpt).items() if k != "attention"}
    torch.manual_seed(int(seed))
    model = GPT(GPTConfig(**cfg, attention="math")).to(device=device, dtype=torch.float64).eval()
    tokens = torch.randint(0, cfg["vocab_size"], (batch_size, cfg["block_size"] + 1), device=device)
    batch = (tokens[:, :-1], tokens[:, 1:])
    return exact_hessian(model, lambda m, b: m(b[0], b[1])[1], batch)


def l11_error_study(n_grid: Sequence[int], *, matrix_d: int = 200, matrix_tails: Sequence[float] = (0.0, 1.0),
                    matrix_seeds: int = 50, gpt: dict | None = None, gpt_batch: int = 4,
                    gpt_seeds: int = 20, variants: Sequence[str] = ("median", "iqr"), seed: int = 0,
                    device="cpu"):
    r"""The Theorem 4.1 experiment: relative error of the Cauchy estimate (Algorithm 4) of
    :math:`\|H\|_{1,1}` against the exact value, as a function of the number of probes ``n``, on

    (a) one :func:`heavy_tailed_matrix` of size ``matrix_d`` per row-scale ``sigma`` in
        ``matrix_tails`` (seed ``seed``), with ``matrix_seeds`` probe seeds each, and
    (b) if ``gpt`` is given, the exact Hessian of a small GPT (:func:`small_gpt_hessian` with
        ``gpt_batch`` sequences), with ``gpt_seeds`` probe seeds,

    each through :func:`l11_sweep` (nested prefixes of ``max(n_grid)`` probes; probe seeds
    ``seed, seed+1, ...``).

    Returns ``(sweep, problems)``, two tidy ``pandas.DataFrame``:

    * ``sweep``: one row per problem, seed, ``n`` and variant, columns
      ``problem, seed, n, variant, estimate, exact, rel_error, d, row_norm_max_over_median``;
    * ``problems``: one row per problem, columns ``problem, kind`` (``"matrix"``/``"gpt"``),
      ``sigma`` (NaN for the GPT), ``d, l11_per_d`` (:math:`\|H\|_{1,1}/d`), ``spectral_norm``
      (:math:`\|H\|_2` by ``eigvalsh``), ``row_norm_max_over_median`` (largest over median row
      :math:`\ell_1` norm, the heavy-tail indicator), ``n_seeds, wall_time_s``."""
    import pandas as pd
    if matrix_d < 1 or matrix_seeds < 0 or gpt_seeds < 0:
        raise ValueError("matrix_d must be >= 1 and the seed counts >= 0")
    cases = [(f"random d={matrix_d}, sigma={s:g}", "matrix", float(s), matrix_seeds) for s in matrix_tails]
    if gpt is not None:
        cases.append((None, "gpt", float("nan"), gpt_seeds))
    frames, info = [], []
    for name, kind, sigma, n_seeds in cases:
        t0 = time.perf_counter()
        if kind == "matrix":
            H = heavy_tailed_matrix(matrix_d, seed=seed, sigma=sigma).to(device)
        else:
            H = small_gpt_hessian(gpt, gpt_batch, seed=seed, device=device)
            name = f"GPT Hessian d={H.shape[0]}"
        d = H.shape[0]
        gam = H.abs().sum(1)
        ratio = float(gam.max() / gam.median())
        df = l11_sweep(H, n_grid, range(seed, seed + n_seeds), variants=variants)
        df.insert(0, "problem", name)
        df["d"] = d
        df["row_norm_max_over_median"] = ratio
        frames.append(df)
        info.append(dict(problem=name, kind=kind, sigma=sigma, d=d, l11_per_d=l11_exact(H) / d,
                         spectral_norm=float(torch.linalg.eigvalsh(H).abs().max()),
                         row_norm_max_over_median=ratio, n_seeds=n_seeds,
                         wall_time_s=time.perf_counter() - t0))
    return pd.concat(frames, ignore_index=True), pd.DataFrame(info)


def error_quantiles(sweep, quantiles: Sequence[float] = (0.5, 0.9, 0.99)):
    r"""The ``quantiles`` of ``rel_error`` over seeds in a :func:`l11_sweep` /
    :func:`l11_error_study` table, per ``problem`` (if present), ``variant`` and ``n``: a tidy
    ``pandas.DataFrame`` with columns ``[problem,] variant, n, quantile, rel_error``."""
    for q in quantiles:
        if not 0 < q < 1:
            raise ValueError(f"quantiles must lie in (0, 1), got {q}")
    keys = [k for k in ("problem", "variant", "n") if k in sweep.columns]
    if "variant" not in keys or "n" not in keys or "rel_error" not in sweep.columns:
        raise ValueError("sweep needs columns variant, n and rel_error")
    return (sweep.groupby(keys).rel_error.quantile(list(quantiles)).rename("rel_error").reset_index()
            .rename(columns={f"level_{len(keys)}": "quantile"}))


def fit_rate(qtab, *, n_min: int = 100, n_ref: int | None = 50):
    r"""Fit Theorem 4.1's rate to measured error quantiles (the output of :func:`error_quantiles`).

    For every ``(problem, variant, quantile)`` group with :math:`q=1-\delta`, on the points with
    ``n >= n_min``: the constant ``C`` of :math:`\varepsilon_\delta(n)=\sqrt{C\log(1/\delta)/n}`
    (:func:`rate_constant`), and the least-squares slope of :math:`\log\varepsilon` against
    :math:`\log n` (the theorem predicts :math:`-1/2`). If ``n_ref`` is given, also the error at
    ``n = n_ref`` (log-linear interpolation in ``n``; the authors use 50 probes).

    Returns a ``pandas.DataFrame`` with columns ``[problem,] variant, quantile, delta, C, slope,
    n_points[, rel_error_at_n_ref]``. Raises ``ValueError`` if a group has fewer than two points
    with ``n >= n_min`` or a non-positive error there (no log)."""
    import pandas as pd
    keys = [k for k in ("problem", "variant", "quantile") if k in qtab.columns]
    if "quantile" not in keys:
        raise ValueError("qtab needs a 'quantile' column (see error_quantiles)")
    fits = []
    for key, g in qtab.groupby(keys):
        g = g.sort_values("n")
        q = float(g["quantile"].iloc[0])
        big = g[g.n >= n_min]
        if len(big) < 2 or (big.rel_error <= 0).any():
            raise ValueError(f"group {key}: need >= 2 positive errors with n >= {n_min}, got {len(big)}")
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row.update(delta=1 - q, C=rate_constant(big.n, big.rel_error, delta=1 - q),
                   slope=float(np.polyfit(np.log(big.n), np.log(big.rel_error), 1)[0]),
                   n_points=len(big))
        if n_ref is not None:
            row["rel_error_at_n_ref"] = float(np.interp(np.log(n_ref), np.log(g.n), g.rel_error))
        fits.append(row)
    return pd.DataFrame(fits)
