"""adamlinf: the library behind a reproducible edition of a paper.

The paper: "Adam Exploits ℓ∞-geometry of Loss Landscape via Coordinate-wise Adaptivity"
(Xie, Mohamadi, Li; ICLR 2025; arXiv 2410.08198).

One module per concept (``ARCHITECTURE.md`` gives the layers; imports point downwards only):

==============  ==================================================================  ======================
module          concept                                                              paper
==============  ==================================================================  ======================
``results``     where results go, provenance, published GPU results                  —
``report``      the one table, figure and number format of the book                  —
``partitions``  how the parameters split into blocks; Φ-norms                        Definition 3.8
``rotations``   Haar, exp(θS), permute-and-rotate, training on L∘R, equivariance     Def. 2.1, App. D.1
``optim``       Adam (= torch.optim.Adam; paper form by flag), RMSProp, SignGD,      Algorithms 1-3
                AdaSGD, BlockwiseAdam
``theory``      smoothness constants, block norms, the bounds of Section 3           Theorems 3.2-3.11
``hessian``     HVPs, (1,1)-norm (Cauchy) with error bands, spectral norm            Algorithm 4, Def. 3.9
``problems``    quadratics (rotated, noisy), spectra, batched runners                Sections 3, 4.1
``models``      GPT-2 (nanoGPT style) and ResNet18 for CIFAR-10                      Sections 4.2, 4.3
``data``        OpenWebText, CIFAR-10 and offline corpora                            Sections 4.2, 4.3
``train``       the one training loop (DDP, checkpoints, exact resume, metrics)      —
``runs``        run specs, run folders keyed by spec, torchrun commands              —
``run``         papermill runner: executes the book's notebooks at a scale           —
``diagnose``    the geometry diagnostic of any PyTorch model (‖H‖₁,₁ against d‖H‖₂)    Def. 3.9, Alg. 4
``studies``     this paper's sweeps, claims, verdicts and cost models                Sections 2-4
==============  ==================================================================  ======================

The public names are importable from the package itself (loaded on first use, so ``import adamlinf``
stays light)::

    import adamlinf

    opt = adamlinf.BlockwiseAdam(model.parameters(), lr=1e-3, partition="tensor")
    diag = adamlinf.diagnose(model, loss_fn, batches)   # diag.advantage: d‖H‖₂ / ‖H‖₁,₁

==========================  ==============================================================
optimizers                  ``Adam``, ``AdaSGD``, ``BlockwiseAdam``, ``SignGD``, ``RMSProp``
partitions                  ``partitions`` (the module: ``tensor()``, ``rows()``, ``heads()``, ...)
rotations                   ``PermuteRotate``, ``haar``, ``rotate_model``, ``RotatedParametrization``
Hessians                    ``HVP``, ``l11_norm``, ``spectral_norm``
the diagnostic              ``diagnose``, ``Diagnosis``, ``race``
==========================  ==============================================================
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Adam": "optim",
    "AdaSGD": "optim",
    "BlockwiseAdam": "optim",
    "SignGD": "optim",
    "RMSProp": "optim",
    "PermuteRotate": "rotations",
    "haar": "rotations",
    "rotate_model": "rotations",
    "RotatedParametrization": "rotations",
    "HVP": "hessian",
    "l11_norm": "hessian",
    "spectral_norm": "hessian",
    "diagnose": "diagnose",
    "Diagnosis": "diagnose",
    "race": "diagnose",
}
_MODULES = ("partitions",)

__all__ = sorted(_PUBLIC) + list(_MODULES)


def __getattr__(name: str):
    """Load a public name (or the ``partitions`` module) on first use."""
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value  # later lookups skip __getattr__ (and the function replaces the module)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
