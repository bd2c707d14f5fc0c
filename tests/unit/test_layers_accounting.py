"""Tests for gearlib.layers.accounting: the GroupNL paper's parameter, gradient and FLOP formulas.

Formula counts against instantiated modules, every #Params and #FLOPs entry of Table 16, and whole models
(CIFAR ResNet-18/34, VGG-11, torchvision's ImageNet ResNet-101) built on the meta device.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gearlib.adversarial.models import PLAIN, build_adversarial
from gearlib.layers import (
    KINDS,
    PAPER_TABLE16,
    GhostConv2d,
    GroupNLConv2d,
    MonoCNNConv2d,
    SineFMConv2d,
    conv_cost,
    convert,
    layer_cost,
    model_cost,
    table16_costs,
    vgg11,
)


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def as_printed(x: float) -> float:
    """Round as Table 16 prints #Params: millions or thousands to two decimals (2.36M, 0.59M, 4.62K)."""
    unit = 1e6 if x >= 1e5 else 1e3
    return round(x / unit, 2) * unit


# ---- Table 16 ---------------------------------------------------------------------------------------------


def test_table16_exact_counts_of_groupnl_and_ghost():
    costs = table16_costs()
    groupnl = costs[("groupnl", 2)]
    assert groupnl.params == 1_179_656 and groupnl.weights == 1_179_648 and groupnl.paper_fixed == 8
    assert groupnl.gradients == 1_179_648  # the fixed hyperparameters have no gradient
    assert round(groupnl.flops / 1e6, 2) == 302.06 and groupnl.flops == 302_055_424
    assert [costs[("sparse_groupnl", r)].params for r in (2, 4, 8)] == [4_616, 4_632, 4_664]
    assert [round(costs[("sparse_groupnl", r)].flops / 1e6, 2) for r in (2, 4, 8)] == [1.25, 1.28, 1.29]
    assert round(costs[("ghost", 2)].flops / 1e6, 2) == 302.58
    assert costs[("conv", None)].flops == 603_979_776


@pytest.mark.parametrize("key", sorted(PAPER_TABLE16, key=str))
def test_every_table16_params_and_flops_entry_is_reproduced(key):
    paper, ours = PAPER_TABLE16[key], table16_costs()[key]
    assert as_printed(ours.params) == pytest.approx(paper.params, rel=1e-9)
    assert round(ours.flops / 1e6, 2) == paper.mflops


def test_table16_sparse_counts_need_the_fixed_hyperparameters():
    # without the 2 (r - 1) g sinusoid hyperparameters every sparse row would print 4.61K
    for r in (2, 4, 8):
        cost = table16_costs()[("sparse_groupnl", r)]
        assert as_printed(cost.weights) == pytest.approx(4.61e3)
        assert as_printed(cost.weights) != pytest.approx(PAPER_TABLE16[("sparse_groupnl", r)].params)


def test_table16_modules_measure_what_the_formulas_say():
    c_in, c_out = 512, 512
    with torch.device("meta"):
        layers = {
            ("conv", None): nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False),
            ("depthwise", None): nn.Conv2d(c_in, c_out, 3, 2, 1, groups=c_in, bias=True),
            ("groupnl", 2): GroupNLConv2d(c_in, c_out, 3, 2, 1, ratio=2),
            ("sparse_groupnl", 8): GroupNLConv2d(c_in, c_out, 3, 2, 1, ratio=8, sparse=True),
            ("ghost", 4): GhostConv2d(c_in, c_out, 3, 2, 1, ratio=4),
            ("sinefm", 2): SineFMConv2d(c_in, c_out, 3, 2, 1, ratio=2),
        }
    costs = table16_costs()
    for key, layer in layers.items():
        measured = layer_cost(layer, 16)
        assert measured == costs[key], key
        assert trainable(layer) == costs[key].trainable, key
        if isinstance(layer, GroupNLConv2d):
            assert layer.fixed_count() == costs[key].fixed


# ---- formulas against modules --------------------------------------------------------------------------

CONFIGS = [(8, 16, 3, 2, 4), (12, 24, 3, 3, 2), (16, 16, 1, 2, 8), (6, 32, 5, 4, 2), (512, 512, 3, 8, 4)]


@pytest.mark.parametrize("c_in, c_out, k, r, g", CONFIGS)
def test_formula_counts_equal_measured_parameter_counts(c_in, c_out, k, r, g):
    hw = 7
    with torch.device("meta"):
        built = {
            "conv": nn.Conv2d(c_in, c_out, k, bias=False),
            "groupnl": GroupNLConv2d(c_in, c_out, k, ratio=r, groups=g),
            "sparse_groupnl": GroupNLConv2d(c_in, c_out, k, ratio=r, groups=g, sparse=True, nlf="laplace"),
            "ghost": GhostConv2d(c_in, c_out, k, ratio=r),
            "sinefm": SineFMConv2d(c_in, c_out, k, ratio=r),
            "monocnn": MonoCNNConv2d(c_in, c_out, k, expansion=r),
        }
    for kind, layer in built.items():
        nlf = getattr(layer, "nlf", "sin")
        formula = conv_cost(kind, c_in, c_out, k, hw, ratio=r, groups=g, nlf=nlf, expansion=r)
        assert trainable(layer) == formula.trainable, kind
        assert layer_cost(layer, hw) == formula, kind
        if hasattr(layer, "fixed_count"):
            assert layer.fixed_count() == formula.fixed, kind
    n, m, area = c_in, c_out, k * k
    seed = m // r
    xi = math.gcd(n, seed)
    # the paper's Eqs. 12-15 written out (r divides m in every configuration)
    assert conv_cost("conv", n, m, k, hw).params == n * m * area
    assert conv_cost("groupnl", n, m, k, hw, ratio=r, groups=g).weights == n * m * area // r
    assert conv_cost("sparse_groupnl", n, m, k, hw, ratio=r, groups=g).weights == n * m * area // (r * xi)
    assert conv_cost("ghost", n, m, k, hw, ratio=r).params == n * m * area // r + m * (r - 1) * 9 // r
    assert conv_cost("sinefm", n, m, k, hw, ratio=r).params == n * m * area // r + m * 5 * (r + 1) // r
    assert (
        conv_cost("groupnl", n, m, k, hw, ratio=r, groups=g).flops == (seed * n * area + (m - seed)) * hw * hw
    )


def test_ghost_batch_norms_are_trainable_but_outside_eq13():
    cost = conv_cost("ghost", 64, 64, 3, 8)
    assert cost.norm == 2 * 64 and cost.trainable == cost.params + 128
    assert trainable(GhostConv2d(64, 64, 3)) == cost.trainable


def test_unknown_kind_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="unknown layer kind 'gnl'"):
        conv_cost("gnl", 8, 8, 3, 4)
    with pytest.raises(ValueError, match="in_channels = out_channels, got 8 and 16"):
        conv_cost("depthwise", 8, 16, 3, 4)
    with pytest.raises(ValueError, match="ratio r=3 must divide out_channels=16"):
        conv_cost("groupnl", 8, 16, 3, 4, ratio=3)
    assert set(KINDS) == {"conv", "depthwise", "groupnl", "sparse_groupnl", "ghost", "sinefm", "monocnn"}


# ---- whole models ---------------------------------------------------------------------------------------


def converted(arch: str, layer: str = "groupnl", **kw):
    with torch.device("meta"):
        model = build_adversarial(arch, PLAIN, 64, 10)
        before = model_cost(model)
        report = convert(model, layer, **kw)
        after = model_cost(model)
    return before, report, after


def test_cifar_resnet18_groupnl_with_the_stem_kept_has_5_60_m_parameters():
    before, report, after = converted("resnet18")
    assert before.parameters == 11_173_962  # Table 3: 11.17 M
    assert after.paper_params == 5_595_362 and round(after.paper_params / 1e6, 4) == 5.5954
    assert round(after.paper_params / 1e6, 2) == 5.60
    assert after.parameters == after.trainable == 5_595_210  # gradients: the hyperparameters have none
    assert after.fixed == 19 * 8 and [k.name for k in report.kept] == ["stem"]


def test_cifar_resnet18_with_the_stem_converted_would_miss_the_paper():
    with torch.device("meta"):
        model = build_adversarial("resnet18", PLAIN, 64, 10)
        convert(model, "groupnl", keep_stem=False, groups=1)  # c_seed = 32 at the stem; g = 1 to allow it
        cost = model_cost(model)
    assert round(cost.paper_params / 1e6, 4) != 5.5954


def test_cifar_resnet34_groupnl_has_10_65_m_parameters():
    before, _, after = converted("resnet34")
    assert before.parameters == 21_282_122  # Table 3: 21.28 M
    assert round(after.paper_params / 1e6, 2) == 10.65


@pytest.mark.parametrize("arch, table3", [("resnet18", 2.58), ("resnet34", 3.66)])
def test_monocnn_resnet_parameters(arch, table3):
    _, report, after = converted(arch, "monocnn")
    assert round(after.parameters / 1e6, 2) == table3
    assert all(
        r.new_params == 32 * r.old_params // int(r.shape.split("->")[1].split()[0]) for r in report.replaced
    )


@pytest.mark.parametrize(
    "arch, vanilla, groupnl",
    [("resnet18", 556.04, 279.49), ("resnet34", 1160.43, 582.09)],
)
def test_table3_flops_are_convs_plus_one_op_per_bn_output_and_generated_element(arch, vanilla, groupnl):
    before, _, after = converted(arch)
    assert round(before.flops_with_bn / 1e6, 2) == vanilla
    assert round(after.flops_with_bn / 1e6, 2) == groupnl


def test_vgg11_parameters_and_table3_flops():
    with torch.device("meta"):
        model = vgg11()
        before = model_cost(model)
        convert(model, "groupnl")
        kept_stem = model_cost(model)
        whole = vgg11()
        convert(whole, "groupnl", keep_stem=False)
        stem_too = model_cost(whole)
    assert round(before.parameters / 1e6, 2) == 9.23 and round(before.flops_with_bn / 1e6, 2) == 152.92
    assert round(kept_stem.paper_params / 1e6, 2) == 4.62 == round(stem_too.paper_params / 1e6, 2)
    # Table 3's 76.62 M: within rounding only when the VGG-11 stem is converted too (77.47 M with it kept)
    assert abs(stem_too.flops_with_bn / 1e6 - 76.62) < 0.01
    assert round(kept_stem.flops_with_bn / 1e6, 2) == 77.47


def test_imagenet_resnet101_with_sparse_groupnl_in_its_30_stride_1_3x3_convs():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = torchvision.models.resnet101()
        before = model_cost(model, (3, 224, 224))
        report = convert(model, "groupnl")
        after = model_cost(model, (3, 224, 224))
    assert round(before.parameters / 1e6, 2) == 44.55
    assert len(report.replaced) == 30 and all(r.new_fixed == 8 for r in report.replaced)
    assert after.paper_params == 26_366_808 and round(after.paper_params / 1e6, 2) == 26.37
    sparse_rows = [cost for _, _, cost in after.rows if cost.kind == "sparse_groupnl"]
    assert len(sparse_rows) == 30


def test_model_cost_rows_and_table():
    with torch.device("meta"):
        model = build_adversarial("resnet10", PLAIN, 16, 10)
        convert(model, "groupnl")
        cost = model_cost(model)
    names = [name for name, _, _ in cost.rows]
    assert names[0] == "stem" and names[-1] == "fc" and not any(".seed" in n for n in names)
    sizes = dict((name, hw) for name, hw, _ in cost.rows)
    assert sizes["stem"] == (32, 32) and sizes["stages.3.0.conv1"] == (4, 4)
    assert cost.flops == sum(c.flops for _, _, c in cost.rows)
    text = cost.table()
    assert "stages.3.0.shortcut.0" in text and "groupnl" in text and "parameters" in text
    assert model.training  # model_cost restored the training flags
