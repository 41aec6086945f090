"""The models of the paper's experiments: GPT-2 (Section 4.2) and ResNet18 for CIFAR-10 (Section 4.3).

``build(spec)`` makes one from a plain dict, so notebooks and checkpoints describe models as data:
``{"kind": "gpt", "n_layer": 4, "n_head": 4, ...}`` (:class:`GPTConfig`'s fields) or
``{"kind": "resnet18", ...}`` (the keyword arguments of ``adamlinf.models.resnet.resnet18_cifar``).
"""

from __future__ import annotations

import dataclasses
import importlib

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
    gpt_keys = sorted(f.name for f in dataclasses.fields(GPTConfig)) + ["preset"]
    allowed = gpt_keys if kind == "gpt" else ["blocks", "in_channels", "num_classes", "seed", "width"]
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in a model spec of kind {kind!r}; allowed: {allowed}")
    if kind == "resnet18":
        model = importlib.import_module("adamlinf.models.resnet").resnet18_cifar(**config)
    else:
        preset = config.pop("preset", None)
        if preset not in (None, "gpt2_124m"):
            raise ValueError(f"unknown GPT preset {preset!r} (known: 'gpt2_124m')")
        model = GPT(GPTConfig.gpt2_124m(**config) if preset else GPTConfig(**config))
    model.adamlinf_spec = dict(spec)
    return model
