"""The models of the paper's experiments: GPT-2 (Section 4.2) and ResNet18 for CIFAR-10 (Section 4.3).

``build(spec)`` makes one from a plain dict, so notebooks and checkpoints describe models as data:
``{"kind": "gpt", "n_layer": 4, "n_head": 4, ...}`` (:class:`GPTConfig`'s fields) or
``{"kind": "resnet18", ...}`` (the keyword arguments of ``adamlinf.models.resnet.resnet18_cifar``).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import torch.nn as nn

from adamlinf.models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "build", "MODEL_KINDS"]

MODEL_KINDS = ("gpt", "resnet18")


def build(spec: dict) -> nn.Module:
    """A ``GPT`` (``"preset": "gpt2_124m"`` allowed) or ``resnet18_cifar``, its spec as ``adamlinf_spec``."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"model spec must be a dict with a 'kind' key (one of {MODEL_KINDS}), got {spec!r}")
    kind, config = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    if kind == "resnet18":
        resnet = importlib.import_module("adamlinf.models.resnet")  # torchvision: only when asked for
        allowed = sorted(inspect.signature(resnet.resnet18_cifar).parameters)
    else:
        allowed = sorted(f.name for f in dataclasses.fields(GPTConfig)) + ["preset"]
    if unknown := sorted(set(config) - set(allowed)):
        raise ValueError(f"unknown option(s) {unknown} in a model spec of kind {kind!r}; allowed: {allowed}")
    if kind == "resnet18":
        model = resnet.resnet18_cifar(**config)
    else:
        if (preset := config.pop("preset", None)) not in (None, "gpt2_124m"):
            raise ValueError(f"unknown GPT preset {preset!r} (known: 'gpt2_124m')")
        model = GPT(GPTConfig(**config))  # "gpt2_124m" is GPTConfig's defaults (GPTConfig.gpt2_124m)
    model.adamlinf_spec = dict(spec)
    return model
