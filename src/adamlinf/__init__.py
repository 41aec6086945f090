"""adamlinf: the library behind a reproducible edition of Xie, Mohamadi, Li (ICLR 2025, arXiv 2410.08198).

The public names load on first use, so ``import adamlinf`` stays light (``ARCHITECTURE.md``: the layers)::

    opt = adamlinf.BlockwiseAdam(model.parameters(), lr=1e-3, partition="tensor")
    diag = adamlinf.diagnose(model, loss_fn, batches)   # diag.advantage: d‖H‖₂ / ‖H‖₁,₁

* optimizers: ``Adam``, ``AdaSGD``, ``BlockwiseAdam``, ``SignGD``, ``RMSProp``;
* ``partitions`` (the module: ``tensor()``, ``rows()``, ``heads()``, ...);
* rotations: ``PermuteRotate``, ``haar``, ``rotate_model``, ``RotatedParametrization``;
* Hessians: ``HVP``, ``l11_norm``, ``spectral_norm``; the diagnostic: ``diagnose``, ``Diagnosis``, ``race``.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "optim": ("Adam", "AdaSGD", "BlockwiseAdam", "SignGD", "RMSProp"),
    "rotations": ("PermuteRotate", "haar", "rotate_model", "RotatedParametrization"),
    "hessian": ("HVP", "l11_norm", "spectral_norm"),
    "diagnose": ("diagnose", "Diagnosis", "race"),
}
_PUBLIC = {name: module for module, names in _EXPORTS.items() for name in names}
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
