"""Tests for gearlib.models: width lists, parameter counts, size fractions and forward/backward passes.

Full-width counts and the thin-backbone size table come from the method spec (section 6).
"""

from __future__ import annotations

import pytest
import torch

from gearlib.models import (
    ARCHS,
    budget_groups,
    build,
    build_meta,
    count_params,
    full_widths,
    param_count,
    size_fraction,
    unit_names,
    widths_of,
)

FULL_PARAMS_MILLIONS = {"vgg19": 20.04, "mobilenet_v1": 3.22, "resnet18": 11.17}
# book/notes/architectures.md#notes-arch-size size table (CIFAR-10 head), percent of the full model for a uniform backbone c_0
SIZE_TABLE = {
    16: {"vgg19": 0.18, "mobilenet_v1": 0.21, "resnet18": 0.35},
    32: {"vgg19": 0.70, "mobilenet_v1": 0.62, "resnet18": 1.37},
    45: {"vgg19": 1.38, "mobilenet_v1": 1.11, "resnet18": 2.70},
    48: {"vgg19": 1.57, "mobilenet_v1": 1.24, "resnet18": 3.06},
}


@pytest.mark.parametrize("arch", ARCHS)
def test_full_width_parameter_count_matches_spec(arch):
    params = param_count(arch, None, 10)
    assert round(params / 1e6, 2) == FULL_PARAMS_MILLIONS[arch]


@pytest.mark.parametrize("c0", sorted(SIZE_TABLE))
@pytest.mark.parametrize("arch", ARCHS)
def test_backbone_size_table(arch, c0):
    model = build_meta(arch, c0, 10)
    assert round(100 * size_fraction(model), 2) == SIZE_TABLE[c0][arch]


def test_count_params_excludes_bn_running_stats():
    model = build("vgg19", 4, num_classes=3)
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers > 0
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    # conv weights + BN affine + head: 3*4*9 + 15*4*4*9 + 16*2*4 + 4*3 + 3
    assert count_params(model) == 108 + 2160 + 128 + 15


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [32, 64])
def test_arbitrary_widths_forward_backward(arch, size):
    gen = torch.Generator().manual_seed(size)
    widths = torch.randint(2, 9, (len(full_widths(arch)),), generator=gen).tolist()
    model = build(arch, widths, num_classes=7, input_size=size)
    assert widths_of(model) == widths
    x = torch.rand(2, 3, size, size, generator=gen)
    out = model(x)
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_rebuild_from_width_list_gives_same_shapes(arch):
    model = build(arch, [3 + i for i in range(len(full_widths(arch)))], num_classes=4)
    again = build(arch, widths_of(model), num_classes=4)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}


def test_normalisation_is_first_op():
    model = build("vgg19", 4).eval()
    calls = []
    model.normalize.register_forward_hook(lambda m, i, o: calls.append(o))
    x = torch.full((1, 3, 32, 32), 0.4914)
    model(x)
    assert calls[0][0, 0].abs().max() < 1e-6  # the mean pixel of channel 0 maps to 0


def test_budget_groups_per_arch():
    assert budget_groups("vgg19") == [list(range(16))]
    assert budget_groups("mobilenet_v1") == [[0, 1, 2, 3], list(range(4, 14))]
    assert budget_groups("resnet18") == [list(range(12))]
    inner = budget_groups("resnet18", grow_stream=False)[0]
    assert len(inner) == 8 and all(unit_names("resnet18")[i].startswith("inner") for i in inner)


def test_full_widths_defaults():
    assert widths_of(build_meta("resnet18", None, 10)) == full_widths("resnet18")
    assert widths_of(build_meta("mobilenet_v1", 45, 10)) == [45] * 14


@pytest.mark.parametrize(
    "arch, widths, match",
    [
        ("vgg", None, "vgg19"),
        ("vgg19", [4] * 15, "16 widths"),
        ("mobilenet_v1", [4] * 13 + [0], "pw13"),
        ("resnet18", -3, "positive"),
        ("resnet18", [4.5] * 12, "positive int"),
    ],
)
def test_bad_arguments_raise(arch, widths, match):
    with pytest.raises(ValueError, match=match):
        build(arch, widths)


def test_widths_of_rejects_foreign_models():
    with pytest.raises(ValueError, match="gearlib.models"):
        widths_of(torch.nn.Linear(2, 2))
