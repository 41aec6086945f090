"""ResNet18 for 32x32 images (CIFAR-10), Section 4.3, from torchvision's ``BasicBlock`` and ``ResNet``.

The CIFAR variant: a 3x3 stride-1 stem, no max-pool, stages of ``width·(1, 2, 4, 8)`` channels at strides
1, 2, 2, 2, average pooling, a linear layer (11,173,962 parameters for 10 classes). Every BatchNorm has
``track_running_stats=False`` (the paper's setting): batch statistics in evaluation too, so the network is
a fixed function of a fixed batch (Table 4 needs that). A smaller ``width`` and ``blocks`` make ``ci``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.resnet import BasicBlock, ResNet


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass
class ResNetConfig:
    """Outputs, first-stage width, the number of ``BasicBlock`` per stage (four) and image channels."""

    num_classes: int = 10
    width: int = 64
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    in_channels: int = 3

    def __post_init__(self):
        four = isinstance(self.blocks, (tuple, list)) and len(self.blocks) == 4
        if not four or not all(_is_int(b) and b >= 1 for b in self.blocks):
            raise ValueError(f"ResNetConfig.blocks must be four positive integers, got {self.blocks!r}")
        self.blocks = tuple(int(b) for b in self.blocks)
        for name in ("num_classes", "width", "in_channels"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"ResNetConfig.{name} must be a positive integer, got {value!r}")


class CifarResNet(ResNet):
    """torchvision's ``ResNet`` (its ``_make_layer``, ``forward`` and initialisation) with the CIFAR stem."""

    def __init__(self, config: ResNetConfig | None = None):
        nn.Module.__init__(self)  # ResNet.__init__ would build the ImageNet stem; we build ours
        self.config = cfg = config or ResNetConfig()
        self._norm_layer = partial(nn.BatchNorm2d, track_running_stats=False)
        self.groups, self.base_width, self.dilation = 1, 64, 1  # what BasicBlock requires
        self.inplanes = w = cfg.width
        self.conv1 = nn.Conv2d(cfg.in_channels, w, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = self._norm_layer(w)
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


def resnet18_cifar(num_classes=10, *, width=64, blocks=(2, 2, 2, 2), in_channels=3, seed=None) -> CifarResNet:
    """ResNet18's CIFAR variant or a smaller relative; a ``seed`` draws it without touching the global RNG."""
    cfg = ResNetConfig(num_classes=num_classes, width=width, blocks=blocks, in_channels=in_channels)
    if seed is None:
        return CifarResNet(cfg)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return CifarResNet(cfg)


def train_flops_per_image(image_size: int = 32, **spec) -> float:
    """3 x the forward FLOPs that ``FlopCounterMode`` counts (about 3.3 GFLOP for ResNet18 at 32x32)."""
    model = resnet18_cifar(**spec)
    x = torch.zeros(2, model.config.in_channels, image_size, image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return 3.0 * counter.get_total_flops() / 2
