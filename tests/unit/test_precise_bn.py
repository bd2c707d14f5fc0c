"""Tests of the BatchNorm re-estimation after training (precise BN) and of its place in a run's identity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gearlib.data import ImageDataset, to_float
from gearlib.profiles import get_profile
from gearlib.train.precise_bn import recalibrate_bn
from gearlib.train.runner import make_config


def _images(n: int = 24) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    return ImageDataset(images, torch.zeros(n, dtype=torch.long), [str(c) for c in range(10)], "test")


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))


def test_running_statistics_become_the_mean_of_the_batches_and_weights_stay():
    net, data = _net(), _images()
    net(torch.rand(2, 3, 8, 8))  # materialise the lazy layer
    bn = net[1]
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(9.0)
    weights = {
        k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k
    }
    net.eval()
    assert recalibrate_bn(net, data, batches=2, batch_size=8, seed=3) == 16  # two batches only
    assert not net.training and bn.momentum == 0.1  # mode and momentum restored
    drawn = data.images[torch.randperm(len(data.images), generator=torch.Generator().manual_seed(3))]
    with torch.no_grad():
        features = [net[0](to_float(drawn[i : i + 8])) for i in (0, 8)]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features])
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features])
    torch.testing.assert_close(bn.running_mean, means.mean(0))
    torch.testing.assert_close(bn.running_var, variances.mean(0))
    for k, v in net.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_batches_mix_the_classes_of_a_class_sorted_dataset():
    """An image-folder dataset lists its images class by class; the batches must not."""
    images = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)
    images[20:] = 255  # class 0 all black, class 1 all white, in that order
    labels = torch.tensor([0] * 20 + [1] * 20)
    data = ImageDataset(images, labels, ["black", "white"], "sorted")
    net = nn.Sequential(nn.BatchNorm2d(3))
    recalibrate_bn(net, data, batches=2, batch_size=10)  # half the images: in dataset order, all black
    assert 0.2 < float(net[0].running_mean.mean()) < 0.8  # black and white both seen
    assert float(net[0].running_var.mean()) > 0.1  # mixed batches: the two classes' spread


def test_zero_batches_or_no_batchnorm_leave_the_model_alone():
    net, data = _net(), _images()
    net(torch.rand(2, 3, 8, 8))
    before = net[1].running_mean.clone()
    assert recalibrate_bn(net, data, batches=0, batch_size=8) == 0
    assert torch.equal(net[1].running_mean, before)
    assert recalibrate_bn(nn.Sequential(nn.Flatten(), nn.Linear(192, 10)), data, 2, 8) == 0


def test_it_is_a_smoke_setting_that_leaves_the_other_profiles_run_identities_unchanged():
    assert get_profile("smoke").bn_recalibration > 0
    for name in ("cpu", "quadro", "jetson"):
        assert get_profile(name).bn_recalibration == 0
        config = make_config("gearnn2", name, "vgg19", "cifar10")
        assert "bn_recalibration" not in config.training_dict()["profile"]  # hashes of stored runs hold
    smoke = make_config("gearnn2", "smoke", "vgg19", "synthetic").training_dict()
    assert smoke["profile"]["bn_recalibration"] == 16
    layers = make_config("groupnl", "smoke", None, "synthetic").training_dict()
    assert "bn_recalibration" not in str(layers)  # the layer chapter does not read it
    with pytest.raises(ValueError, match="bn_recalibration"):
        get_profile("smoke", ["bn_recalibration=-1"])
