"""ResNet18 for 32x32 images (CIFAR-10), as in Section 4.3 of the paper.

The paper trains "ResNet18 on CIFAR-10" (He et al., 2016) with "track running stats set to
false at initialization". We build it from torchvision's ResNet18 (``torchvision.models.resnet``:
the same ``BasicBlock`` modules, ``_make_layer`` and forward pass) with the usual adaptation to
32x32 inputs (the "CIFAR variant"):

* the 7x7 stride-2 stem convolution becomes a **3x3 stride-1** convolution (padding 1, no bias);
* the 3x3 stride-2 **max-pool is removed** (``nn.Identity``);
* the classifier has ``num_classes = 10`` outputs.

So a 32x32 image keeps its resolution through ``layer1`` (64 channels), then ``layer2`` to
``layer4`` halve it (16, 8, 4) while doubling the channels (128, 256, 512), followed by global
average pooling and a linear layer: 11,173,962 parameters for 10 classes.

**BatchNorm.** Every ``BatchNorm2d`` has ``track_running_stats=False``, so it normalises with the
statistics of the current batch in training *and* in evaluation mode. Two consequences: the
network is a fixed function of a fixed batch (so its Hessian on a fixed batch is well defined,
which Table 4 needs), and evaluation results depend on how the evaluation set is cut into batches
(``adamlinf.data.images`` always uses the same fixed cut).

**Smaller networks for the ``ci`` scale.** ``ResNetConfig(width=w, blocks=(b1, b2, b3, b4))``
keeps the architecture (stem, four stages of ``BasicBlock``s with strides 1, 2, 2, 2, channels
``w, 2w, 4w, 8w``) but scales the width (torchvision: 64) and the number of blocks per stage
(ResNet18: ``(2, 2, 2, 2)``). ``ResNetConfig()`` is exactly the ResNet18 CIFAR variant. The
network accepts any input size (global average pooling), e.g. 16x16 images at ``ci``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.resnet import BasicBlock, ResNet

__all__ = ["ResNetConfig", "CifarResNet", "resnet18_cifar", "build", "batchnorm_layer"]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def batchnorm_layer(num_features: int) -> nn.BatchNorm2d:
    """``BatchNorm2d`` with ``track_running_stats=False`` (Section 4.3): always batch statistics."""
    return nn.BatchNorm2d(num_features, track_running_stats=False)


@dataclass
class ResNetConfig:
    """Configuration of the CIFAR ResNet.

    ``num_classes``: outputs of the final linear layer (CIFAR-10: 10).
    ``width``: channels of the first stage; stages have ``width * (1, 2, 4, 8)`` channels
    (ResNet18: 64).
    ``blocks``: ``BasicBlock``s per stage, four stages (ResNet18: ``(2, 2, 2, 2)``).
    ``in_channels``: image channels (3).
    ``zero_init_residual``: torchvision's option to zero the last BN scale of each block (off, as
    in torchvision's default and the paper's setup).
    """

    num_classes: int = 10
    width: int = 64
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    in_channels: int = 3
    zero_init_residual: bool = False

    def __post_init__(self):
        blocks = self.blocks
        if (
            not isinstance(blocks, (tuple, list))
            or len(blocks) != 4
            or not all(_is_int(b) and b >= 1 for b in blocks)
        ):
            raise ValueError(
                f"ResNetConfig.blocks must be four positive integers (blocks per stage), got {blocks!r}"
            )
        self.blocks = tuple(int(b) for b in blocks)
        for name in ("num_classes", "width", "in_channels"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"ResNetConfig.{name} must be a positive integer, got {value!r}")


class CifarResNet(ResNet):
    """torchvision's ``ResNet`` with the CIFAR stem, a width multiplier and batch-statistics BN.

    The CIFAR stem: a 3x3 stride-1 convolution and no max-pool. BatchNorm keeps no running
    statistics.

    It reuses torchvision's ``BasicBlock``, ``ResNet._make_layer`` and ``ResNet.forward``;
    only ``__init__`` differs (torchvision hard-codes the 7x7 stem, the max-pool and the
    64/128/256/512 widths). The initialisation is torchvision's: Kaiming-normal (fan-out, ReLU)
    convolutions, BN scale 1 and shift 0, PyTorch's default for the linear layer.
    """

    def __init__(self, config: ResNetConfig | None = None):
        nn.Module.__init__(self)  # ResNet.__init__ would build the ImageNet stem; we build ours
        cfg = config or ResNetConfig()
        self.config = cfg
        self._norm_layer = batchnorm_layer
        self.groups, self.base_width, self.dilation = 1, 64, 1  # what BasicBlock requires
        w = cfg.width
        self.inplanes = w
        self.conv1 = nn.Conv2d(cfg.in_channels, w, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = batchnorm_layer(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, w, cfg.blocks[0])
        self.layer2 = self._make_layer(BasicBlock, 2 * w, cfg.blocks[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * w, cfg.blocks[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * w, cfg.blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * w * BasicBlock.expansion, cfg.num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if cfg.zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)


def resnet18_cifar(
    num_classes: int = 10,
    *,
    width: int = 64,
    blocks=(2, 2, 2, 2),
    in_channels: int = 3,
    zero_init_residual: bool = False,
    seed: int | None = None,
) -> CifarResNet:
    """The CIFAR variant of ResNet18 (``width=64, blocks=(2,2,2,2)``) or a scaled-down relative.

    ``seed``: if given, the initial weights are drawn from ``torch.manual_seed(seed)``'s stream
    inside a forked RNG state (the global RNG is left untouched).
    """
    cfg = ResNetConfig(
        num_classes=num_classes,
        width=width,
        blocks=blocks,
        in_channels=in_channels,
        zero_init_residual=zero_init_residual,
    )
    if seed is None:
        return CifarResNet(cfg)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return CifarResNet(cfg)


def build(**spec) -> CifarResNet:
    """``adamlinf.models.build({"kind": "resnet18", ...})`` lands here with the rest of the spec.

    Accepted keys: ``num_classes, width, blocks, in_channels, zero_init_residual, seed`` (see
    :func:`resnet18_cifar`); ``kind`` (if still present) must be ``"resnet18"``. Unknown keys
    raise ``ValueError`` rather than being silently ignored.
    """
    spec = dict(spec)
    kind = spec.pop("kind", "resnet18")
    if kind != "resnet18":
        raise ValueError(f"adamlinf.models.resnet builds kind 'resnet18', got {kind!r}")
    allowed = {"num_classes", "width", "blocks", "in_channels", "zero_init_residual", "seed"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"unknown ResNet option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return resnet18_cifar(**spec)


def train_flops_per_image(image_size: int = 32, **spec) -> float:
    """Training FLOPs per image of the network ``build(**spec)`` at ``image_size``.

    The forward FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and the linear
    layer; BatchNorm/ReLU/pooling are negligible) times 3 (forward + backward, the usual rule).
    ResNet18 (CIFAR variant) at 32x32: about 3.3 GFLOP per image.
    """
    model = build(**spec)
    x = torch.zeros(2, model.config.in_channels, image_size, image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return 3.0 * counter.get_total_flops() / 2
