"""ResNet18 for 32x32 inputs (Section 4.3): torchvision's ResNet18 with the CIFAR stem, no
max-pool, BatchNorm without running statistics, and the scaled-down ``ci`` relatives."""

import pytest
import torch
import torchvision
from torch import nn

from adamlinf.models import build as build_model
from adamlinf.models.resnet import CifarResNet, ResNetConfig, resnet18_cifar

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def full():
    return resnet18_cifar(seed=0)


def test_resnet18_shapes_and_size(full):
    x = torch.randn(2, 3, 32, 32)
    assert full(x).shape == (2, 10)
    # CIFAR ResNet18: 11,173,962 parameters for 10 classes (ImageNet stem: 11,181,642)
    assert sum(p.numel() for p in full.parameters()) == 11_173_962


def test_stem_and_maxpool_adapted(full):
    c = full.conv1
    assert (c.kernel_size, c.stride, c.padding, c.in_channels, c.out_channels) == (
        (3, 3),
        (1, 1),
        (1, 1),
        3,
        64,
    )
    assert c.bias is None
    assert isinstance(full.maxpool, nn.Identity)
    assert full.fc.out_features == 10
    # stage resolutions for a 32x32 input: 32, 16, 8, 4
    x = torch.randn(2, 3, 32, 32)
    h = full.maxpool(full.relu(full.bn1(full.conv1(x))))
    sizes = []
    for layer in (full.layer1, full.layer2, full.layer3, full.layer4):
        h = layer(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]


def test_same_network_as_torchvision_resnet18_with_cifar_stem(full):
    """Our model = torchvision.models.resnet18 with the stem replaced and the max-pool removed:
    identical parameter names/shapes (except the stem) and identical outputs with its weights."""
    ref = torchvision.models.resnet18(
        num_classes=10, norm_layer=lambda c: nn.BatchNorm2d(c, track_running_stats=False)
    )
    ref_sd = ref.state_dict()
    ours = full.state_dict()
    assert set(ref_sd) == set(ours)
    for k in ours:
        if k != "conv1.weight":
            assert ours[k].shape == ref_sd[k].shape, k
    assert ref_sd["conv1.weight"].shape == (64, 3, 7, 7) and ours["conv1.weight"].shape == (64, 3, 3, 3)
    ref.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    ref.maxpool = nn.Identity()
    ref.load_state_dict(ours)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ref(x), full(x), rtol=0, atol=0)


def test_batchnorm_uses_batch_statistics_everywhere(full):
    bns = [m for m in full.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 1 + 2 * 8 + 3  # stem, two per BasicBlock, three downsample shortcuts
    assert all(not m.track_running_stats and m.running_mean is None for m in bns)
    assert list(full.buffers()) == []
    m = resnet18_cifar(width=4, blocks=(1, 1, 1, 1), seed=0)
    x = torch.randn(8, 3, 16, 16)
    m.train()
    a = m(x)
    m.eval()
    b = m(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same batch statistics in both modes
    # ... and the output of one image depends on the rest of the batch
    assert not torch.allclose(m(x[:4])[0], b[0])


def test_width_and_blocks_options():
    m = resnet18_cifar(width=8, blocks=(1, 2, 1, 1))
    assert [len(layer) for layer in (m.layer1, m.layer2, m.layer3, m.layer4)] == [1, 2, 1, 1]
    assert [layer[0].conv1.out_channels for layer in (m.layer1, m.layer2, m.layer3, m.layer4)] == [
        8,
        16,
        32,
        64,
    ]
    assert m.fc.in_features == 64
    assert m(torch.randn(3, 3, 16, 16)).shape == (3, 10)  # any input size (global average pool)
    assert isinstance(m, CifarResNet) and isinstance(m, torchvision.models.resnet.ResNet)


def test_seed_and_build_dispatch():
    a = resnet18_cifar(width=4, blocks=[1, 1, 1, 1], seed=3)
    b = build_model({"kind": "resnet18", "width": 4, "blocks": [1, 1, 1, 1], "seed": 3})
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    c = build_model({"kind": "resnet18", "width": 4, "blocks": [1, 1, 1, 1], "seed": 4})
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert b.adamlinf_spec["kind"] == "resnet18"


@pytest.mark.parametrize(
    "kwargs", [dict(width=0), dict(blocks=(2, 2, 2)), dict(blocks=(1, 0, 1, 1)), dict(num_classes=0)]
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        ResNetConfig(**kwargs)


def test_build_rejects_unknown_keys():
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) \['depth'\] in a model spec of kind 'resnet18'"
    ):
        build_model({"kind": "resnet18", "depth": 18})


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(blocks=3), "blocks"),
        (dict(width="a"), "width"),
        (dict(blocks=(2, 2, 2, 1.5)), "blocks"),
        (dict(num_classes=True), "num_classes"),
        (dict(seed="x"), "seed"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        build_model({"kind": "resnet18", **kwargs})
