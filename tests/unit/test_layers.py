"""Tests for gearlib.layers: GroupNL, MonoCNN, Ghost and SineFM convs, the converter and `gearlib bench layers`.

Shapes over many configurations (bad ones raise naming the numbers), the GroupNL output written out channel by
channel, fixed hyperparameters that no training step or requires_grad_ call can change, and tiny forward passes.
"""

from __future__ import annotations

import json
import math
from typing import Dict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gearlib.adversarial.models import PLAIN, build_adversarial
from gearlib.cli import main
from gearlib.layers import (
    NLF_RANGES,
    NLFS,
    GhostConv2d,
    GroupNLConv2d,
    MonoCNNConv2d,
    SineFMConv2d,
    convert,
    vgg11,
)
from gearlib.models import build

# (c_in, c_out, r, g, kernel, stride, padding) configurations GroupNL (and SineFM) can take
GOOD = [
    (3, 8, 2, 4, 3, 1, 1),
    (8, 16, 2, 2, 3, 1, 1),
    (8, 16, 4, 2, 3, 2, 1),
    (12, 24, 3, 4, 1, 1, 0),
    (5, 12, 2, 3, 3, 2, 0),
    (16, 16, 8, 1, 5, 1, 2),
    (7, 18, 3, 2, 3, 3, 1),
    (16, 64, 2, 32, 3, 1, 1),
]
# (c_in, c_out, r, g, the message's key part): r does not divide c_out, or g does not divide c_seed = c_out / r
BAD = [
    (8, 10, 4, 1, "ratio r=4 must divide out_channels=10"),
    (8, 15, 2, 1, "ratio r=2 must divide out_channels=15"),
    (8, 16, 2, 3, "groups g=3 must divide c_seed = out_channels / ratio = 16 / 2 = 8"),
    (8, 24, 4, 4, "groups g=4 must divide c_seed = out_channels / ratio = 24 / 4 = 6"),
    (8, 16, 1, 1, "ratio r must be >= 2"),
    (8, 16, 2, 0, "groups must be a positive integer, got 0"),
]


def conv_shape(c_in: int, c_out: int, k: int, stride: int, padding: int, size: int = 9) -> torch.Size:
    with torch.no_grad():
        return nn.Conv2d(c_in, c_out, k, stride, padding)(torch.zeros(2, c_in, size, size)).shape


@pytest.mark.parametrize("c_in, c_out, r, g, k, stride, padding", GOOD)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("nlf", NLFS)
def test_groupnl_output_shape_matches_the_conv_it_replaces(
    c_in, c_out, r, g, k, stride, padding, sparse, nlf
):
    layer = GroupNLConv2d(c_in, c_out, k, stride, padding, ratio=r, groups=g, nlf=nlf, sparse=sparse)
    out = layer(torch.randn(2, c_in, 9, 9))
    assert out.shape == conv_shape(c_in, c_out, k, stride, padding)
    assert torch.isfinite(out).all()
    assert layer.seed.out_channels == c_out // r and layer.num_nlfs == (r - 1) * g
    assert layer.conv_groups == (math.gcd(c_in, c_out // r) if sparse else 1)


@pytest.mark.parametrize("c_in, c_out, r, g, k, stride, padding", GOOD)
def test_baseline_output_shapes_match_the_conv_they_replace(c_in, c_out, r, g, k, stride, padding):
    x = torch.randn(2, c_in, 9, 9)
    expected = conv_shape(c_in, c_out, k, stride, padding)
    assert SineFMConv2d(c_in, c_out, k, stride, padding, ratio=r)(x).shape == expected
    assert GhostConv2d(c_in, c_out, k, stride, padding, ratio=r)(x).shape == expected
    if c_in * k * k > 1:
        assert MonoCNNConv2d(c_in, c_out, k, stride, padding, expansion=r)(x).shape == expected


@pytest.mark.parametrize("c_out, r", [(10, 4), (7, 2), (9, 8), (1, 2)])
def test_ghost_takes_any_c_out_by_slicing(c_out, r):
    layer = GhostConv2d(6, c_out, 3, 1, 1, ratio=r)
    assert layer.primary_channels == math.ceil(c_out / r)
    assert layer(torch.randn(2, 6, 5, 5)).shape == (2, c_out, 5, 5)


@pytest.mark.parametrize("c_in, c_out, r, g, message", BAD)
def test_groupnl_rejects_undefined_configurations_naming_the_numbers(c_in, c_out, r, g, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GroupNLConv2d(c_in, c_out, 3, ratio=r, groups=g)


def test_bad_configurations_of_the_baselines_raise_naming_the_numbers():
    with pytest.raises(ValueError, match="ratio r=4 must divide out_channels=10"):
        SineFMConv2d(8, 10, 3, ratio=4)
    with pytest.raises(ValueError, match="expansion e=3 must divide out_channels=16"):
        MonoCNNConv2d(8, 16, 3, expansion=3)
    with pytest.raises(ValueError, match="cheap_kernel d must be an odd positive integer.*got 2"):
        GhostConv2d(8, 16, 3, cheap_kernel=2)
    with pytest.raises(ValueError, match="unknown NLF 'cos'"):
        GroupNLConv2d(8, 16, 3, nlf="cos")
    with pytest.raises(ValueError, match=r"has hyperparameters \['omega', 'phi'\], got ranges for \['eta'\]"):
        GroupNLConv2d(8, 16, 3, ranges={"eta": (1.0, 2.0)})


def nlf_by_hand(nlf: str, x: torch.Tensor, hyper: Dict[str, float]) -> torch.Tensor:
    """Table 13's formulas, written independently of gearlib.layers.groupnl."""
    if nlf == "sin":
        return torch.sin(hyper["omega"] * (x + hyper["phi"]))
    if nlf == "monomial":
        return torch.sign(x) * torch.abs(x) ** hyper["eta"]
    if nlf == "gaussian":
        return torch.exp(-((hyper["eps"] * x) ** 2))
    return hyper["eps"] / 2 * torch.exp(-hyper["eps"] * torch.abs(x))


@pytest.mark.parametrize("nlf", NLFS)
def test_groupnl_output_channel_by_channel(nlf):
    # c_out = 24, r = 3, g = 2: c_seed = 8 (two groups of 4), gamma = 2 copies per group, 4 NLFs
    layer = GroupNLConv2d(
        5, 24, 3, padding=1, ratio=3, groups=2, nlf=nlf, generator=torch.Generator().manual_seed(1)
    )
    x = torch.randn(2, 5, 6, 6)
    out = layer(x)
    seed = layer.seed(x)
    normalised = seed / seed.norm(dim=1, keepdim=True)
    assert torch.allclose(out[:, :8], normalised, atol=1e-6)  # the normalised seed maps are output
    assert torch.allclose(out[:, :8].norm(dim=1), torch.ones(2, 6, 6), atol=1e-5)
    hyper = layer.hyperparameters()
    for i in range(2):  # group
        for j in range(2):  # copy
            block = {name: float(v[i * 2 + j]) for name, v in hyper.items()}
            for q in range(4):
                expected = nlf_by_hand(nlf, normalised[:, i * 4 + q], block)
                assert torch.allclose(out[:, 8 + (i * 2 + j) * 4 + q], expected, atol=1e-5), (i, j, q)


def test_groupnl_copies_of_one_group_differ_and_a_bias_is_added():
    layer = GroupNLConv2d(4, 16, 3, padding=1, ratio=2, groups=2, bias=True)
    with torch.no_grad():
        layer.bias.fill_(0.5)
        out = layer(torch.randn(1, 4, 5, 5))
        plain = out - 0.5
    assert torch.allclose(plain[:, :8].norm(dim=1), torch.ones(1, 5, 5), atol=1e-5)
    assert sum(p.numel() for p in layer.parameters()) == 8 * 4 * 9 + 16


@pytest.mark.parametrize("nlf", NLFS)
def test_hyperparameters_are_drawn_from_their_ranges_and_seedable(nlf):
    def make(seed: int) -> GroupNLConv2d:
        return GroupNLConv2d(
            4, 512, 1, ratio=8, groups=64, nlf=nlf, generator=torch.Generator().manual_seed(seed)
        )

    a, b, c = make(0), make(0), make(1)
    for name, (low, high) in NLF_RANGES[nlf].items():
        values = getattr(a, name)
        assert values.shape == (7 * 64,)
        assert low <= values.min() and values.max() <= high
        assert values.max() - values.min() > 0.8 * (high - low)  # 448 draws spread over the range
        assert torch.equal(values, getattr(b, name))
        assert not torch.equal(values, getattr(c, name))


def test_paper_ranges_for_the_sinusoid():
    assert NLF_RANGES["sin"] == {"omega": (1.0, 2.0), "phi": (1.0, 5.0)}
    assert NLF_RANGES["monomial"]["eta"] == (1.0, 7.0)
    assert NLF_RANGES["gaussian"]["eps"] == NLF_RANGES["laplace"]["eps"] == (0.0, 10.0)


def fixed_tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The fixed hyperparameters of every gearlib layer in the model, by state-dict name."""
    keep = ("omega", "phi", "eta", "eps")
    return {k: v.clone() for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] in keep}


def tiny_model(seed: int = 0) -> nn.Sequential:
    """Every NLF family, SineFM and MonoCNN in one small net; `seed` draws their fixed hyperparameters."""
    g = torch.Generator().manual_seed(seed)
    return nn.Sequential(
        GroupNLConv2d(3, 8, 3, padding=1, groups=2, generator=g),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        GroupNLConv2d(8, 8, 3, padding=1, groups=2, nlf="monomial", generator=g),
        SineFMConv2d(8, 8, 3, padding=1, generator=g),
        MonoCNNConv2d(8, 16, 3, padding=1, expansion=4, generator=g),
        GroupNLConv2d(16, 16, 3, stride=2, padding=1, groups=4, nlf="laplace", sparse=True, generator=g),
        GroupNLConv2d(16, 8, 1, groups=4, nlf="gaussian", generator=g),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def test_hyperparameters_survive_training_and_requires_grad():
    torch.manual_seed(0)
    model = tiny_model()
    before = fixed_tensors(model)
    assert len(before) == 8  # omega+phi, eta, omega+phi (SineFM), eta (MonoCNN), eps, eps
    seed_before = model[0].seed.weight.detach().clone()
    model.requires_grad_(True)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_parameters()}
    assert not names & {"omega", "phi", "eta", "eps"}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(8, (4,))
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_tensors(model)
    assert after.keys() == before.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
        assert not after[name].requires_grad
    assert not torch.equal(seed_before, model[0].seed.weight)  # the seed filters did train


def test_hyperparameters_are_restored_by_load_state_dict():
    torch.manual_seed(0)
    source = tiny_model(seed=0).eval()
    target = tiny_model(seed=9).eval()  # same architecture, other random hyperparameters
    x = torch.randn(2, 3, 8, 8)
    assert not torch.allclose(source(x), target(x))
    target.load_state_dict(source.state_dict())
    for name, value in fixed_tensors(source).items():
        assert torch.equal(target.state_dict()[name], value)
    assert torch.allclose(source(x), target(x))


@pytest.mark.parametrize("nlf", NLFS)
def test_gradients_are_finite_at_zero_seed_maps(nlf):
    layer = GroupNLConv2d(4, 8, 1, groups=2, nlf=nlf)
    with torch.no_grad():
        layer.seed.weight.zero_()
    x = torch.randn(1, 4, 3, 3, requires_grad=True)
    layer(x).sum().backward()
    assert torch.isfinite(layer.seed.weight.grad).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("c_in, c_out, r", [(12, 16, 2), (16, 16, 2), (512, 512, 4), (6, 20, 2), (9, 12, 2)])
def test_sparse_seed_has_one_gcd_th_of_the_parameters(c_in, c_out, r):
    dense = GroupNLConv2d(c_in, c_out, 3, ratio=r, groups=1)
    sparse = GroupNLConv2d(c_in, c_out, 3, ratio=r, groups=1, sparse=True)
    xi = math.gcd(c_in, c_out // r)
    assert sparse.conv_groups == xi
    n_dense, n_sparse = dense.seed.weight.numel(), sparse.seed.weight.numel()
    assert n_dense == c_out // r * c_in * 9 and n_sparse * xi == n_dense


def test_monocnn_generates_standardised_tiled_monomial_filters():
    layer = MonoCNNConv2d(6, 8, 3, padding=1, expansion=4, generator=torch.Generator().manual_seed(0))
    assert layer.seeds.shape == (2, 6, 3, 3) and layer.eta.shape == (8, 6, 1, 1)
    assert sum(p.numel() for p in layer.parameters()) == 2 * 6 * 9
    assert 1.0 <= layer.eta.min() and layer.eta.max() <= 7.0
    w = layer.generated_weight()
    v = layer.seeds.detach().repeat(4, 1, 1, 1)  # filter f uses seed f mod 2
    raw = torch.sign(v) * torch.abs(v) ** layer.eta
    raw = raw - raw.mean(dim=(1, 2, 3), keepdim=True)
    expected = raw / (raw.flatten(1).std(dim=1).view(-1, 1, 1, 1) + 1e-5)
    assert torch.allclose(w, expected, atol=1e-5)
    assert torch.allclose(w.flatten(1).mean(dim=1), torch.zeros(8), atol=1e-5)
    spread = raw.flatten(1).std(dim=1)  # tiny for large exponents, where the + 1e-5 shows
    assert torch.allclose(w.flatten(1).std(dim=1), spread / (spread + 1e-5), atol=1e-5)
    assert (w.flatten(1).std(dim=1) <= 1).all() and (w.flatten(1).std(dim=1)[spread > 1e-2] > 0.999).all()
    assert not torch.allclose(w[0], w[2])  # same seed, other exponents
    x = torch.randn(2, 6, 5, 5)
    assert torch.allclose(layer(x), F.conv2d(x, w, padding=1), atol=1e-5)


def test_ghost_module_structure():
    layer = GhostConv2d(6, 10, 3, stride=2, padding=1, ratio=2).eval()
    primary, cheap = layer.primary[0], layer.cheap[0]
    assert primary.kernel_size == (3, 3) and primary.stride == (2, 2) and primary.out_channels == 5
    assert (
        cheap.groups == 5
        and cheap.kernel_size == (3, 3)
        and cheap.stride == (1, 1)
        and cheap.out_channels == 5
    )
    assert isinstance(layer.primary[1], nn.BatchNorm2d) and isinstance(layer.cheap[2], nn.ReLU)
    x = torch.randn(2, 6, 8, 8)
    first = layer.primary(x)
    out = layer(x)
    assert torch.equal(out[:, :5], first) and torch.allclose(out[:, 5:], layer.cheap(first))
    assert (out >= 0).all()
    assert not (GhostConv2d(6, 10, 3, relu=False).eval()(x) >= 0).all()


@pytest.mark.parametrize("seed_norm", ["l2", "none"])
def test_sinefm_stacks_the_t_versions_of_each_seed_map_together(seed_norm):
    layer = SineFMConv2d(4, 12, 3, padding=1, ratio=3, terms=5, seed_norm=seed_norm).eval()
    assert layer.omega.shape == (5,) and layer.phi.shape == (5,)
    assert (
        1.0 <= layer.omega.min()
        and layer.omega.max() <= 2.0
        and 1.0 <= layer.phi.min()
        and layer.phi.max() <= 5.0
    )
    assert layer.blend.groups == 4 and layer.blend.in_channels == 20 and layer.blend.out_channels == 8
    seen = {}
    layer.bn.register_forward_hook(lambda m, i, o: seen.update(bn_in=i[0]))
    x = torch.randn(2, 4, 6, 6)
    out = layer(x)
    seed = layer.seed(x)
    inputs = torch.nn.functional.normalize(seed, dim=1) if seed_norm == "l2" else seed
    if seed_norm == "l2":  # unit vectors across the seed channels, whatever the seeds' scale
        assert inputs.abs().max() <= 1 + 1e-6 and seed.abs().max() > 1
    for s in range(4):
        for i in range(5):
            expected = torch.sin(layer.omega[i] * (inputs[:, s] + layer.phi[i]))
            assert torch.allclose(seen["bn_in"][:, s * 5 + i], expected, atol=1e-6)
    assert torch.equal(out[:, :4], seed)
    assert torch.allclose(out[:, 4:], layer.blend(layer.bn(seen["bn_in"])))


def test_sinefm_names_a_bad_seed_norm():
    with pytest.raises(ValueError, match="'batch'.*l2, none"):
        SineFMConv2d(4, 8, 3, seed_norm="batch")


# ---- the converter -------------------------------------------------------------------------------------


def test_converter_keeps_the_stem_and_replaces_strided_convs_and_shortcuts():
    with torch.device("meta"):
        model = build_adversarial("resnet18", PLAIN, 64, 10)
        report = convert(model, "groupnl")
    assert report.rule == "all"
    assert [k.name for k in report.kept] == ["stem"] and "stem" in report.kept[0].reason
    assert type(model.stem) is not GroupNLConv2d
    names = {r.name for r in report.replaced}
    assert len(names) == 19  # 16 block convs + 3 projection shortcuts
    assert {"stages.1.0.conv1", "stages.1.0.shortcut.0", "stages.3.0.shortcut.0"} <= names
    assert isinstance(model.stages[1][0].conv1, GroupNLConv2d) and model.stages[1][0].conv1.stride == (2, 2)
    assert all(r.new_fixed == 8 for r in report.replaced)  # (r - 1) g = 4 sinusoids, omega and phi each
    total = sum(p.numel() for p in model.parameters()) + sum(r.new_fixed for r in report.replaced)
    assert total == 5_595_362 and round(total / 1e6, 2) == 5.60
    table = str(report)
    assert "stages.3.1.conv2" in table and "stem" in table and "11,157,504" in table


@pytest.mark.parametrize("layer", ["groupnl", "ghost", "sinefm", "monocnn"])
def test_converted_tiny_resnet_runs_and_trains(layer):
    torch.manual_seed(0)
    model = build_adversarial("resnet10", PLAIN, 8, 10)
    extra = {"seeds": 4} if layer == "monocnn" else {}
    report = convert(model, layer, generator=torch.Generator().manual_seed(0), **extra)
    assert report.replaced and type(model.stages[0][0].conv1) is not nn.Conv2d
    out = model(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 10)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_monocnn_rule_keeps_strided_and_1x1_convs():
    with torch.device("meta"):
        model = build_adversarial("resnet18", PLAIN, 64, 10)
        report = convert(model, "monocnn")
    assert report.rule == "monocnn" and len(report.replaced) == 13
    kept = {k.name: k.reason for k in report.kept}
    assert "strided convs stay plain" in kept["stages.1.0.conv1"]
    assert "strided" in kept["stages.2.0.shortcut.0"]
    assert {r.name: r.new_params for r in report.replaced}["stages.3.1.conv2"] == 32 * 512 * 9  # e = 16
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 64, 1), nn.Conv2d(64, 64, 3, padding=1))
    report = convert(net, "monocnn")
    assert [r.name for r in report.replaced] == ["2"] and net[2].expansion == 2
    assert "1x1 convs (shortcuts) stay plain" in {k.name: k.reason for k in report.kept}["1"]


def test_converter_lists_divisibility_failures_and_depthwise_convs_as_kept():
    model = build_adversarial("resnet10", PLAIN, 6, 10)  # c_seed = 3 at width 6: g = 4 cannot split it
    report = convert(model, "groupnl")
    kept = {k.name: k.reason for k in report.kept}
    assert "groups g=4 must divide c_seed = out_channels / ratio = 6 / 2 = 3" in kept["stages.0.0.conv1"]
    assert "12 / 2 = 6" in kept["stages.1.0.conv1"]  # widths 6, 12, 24, 48: c_seed 3, 6, 12, 24
    assert {"stages.2.0.conv1", "stages.3.0.shortcut.0"} <= {r.name for r in report.replaced}
    mobile = build("mobilenet_v1", 8)
    report = convert(mobile, "groupnl")
    kept = {k.name: k.reason for k in report.kept}
    assert kept["blocks.0.dw"].startswith("depthwise conv (groups=8)")
    assert kept["head"] == "classifier head" and "stem" in kept["stem"]
    assert {f"blocks.{i}.pw" for i in range(13)} == {r.name for r in report.replaced}
    assert mobile(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_convs_with_a_bias_keep_it_or_are_kept():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 16, 3, bias=True), nn.Conv2d(16, 16, 3, bias=True))
    report = convert(net, "groupnl", groups=2)
    assert [r.name for r in report.replaced] == ["1", "2"] and net[1].bias.shape == (16,)
    assert report.replaced[0].new_params == 8 * 8 * 9 + 16
    for layer in ("ghost", "sinefm"):
        net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 16, 3, bias=True))
        kept = {k.name: k.reason for k in convert(net, layer).kept}
        assert kept["1"] == f"{layer} cannot take it: has a bias, and the {layer} layer takes none"


def test_depthwise_rule_makes_sparse_groupnl_of_depthwise_convs():
    mobile = build("mobilenet_v1", 8)
    report = convert(mobile, "groupnl", where="depthwise")
    assert {r.name for r in report.replaced} == {f"blocks.{i}.dw" for i in range(13)}
    dw = mobile.blocks[1].dw
    assert isinstance(dw, GroupNLConv2d) and dw.sparse and dw.stride == (2, 2)
    assert dw.conv_groups == 4 and dw.seed.weight.shape == (4, 2, 3, 3)  # c_seed = 8 / 2, xi = gcd(8, 4)
    assert mobile(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="sparse GroupNL only, not by 'ghost'"):
        convert(build("mobilenet_v1", 8), "ghost", where="depthwise")


@pytest.mark.parametrize("arch", ["vgg19", "resnet18"])
def test_gearnn_models_convert_and_run(arch):
    model = build(arch, 8)
    report = convert(model, "groupnl")
    assert report.replaced and all(k.reason.startswith("stem") for k in report.kept)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_converter_keep_by_name_and_no_double_conversion():
    model = vgg11(width=8)
    first = convert(model, "groupnl", keep=["features.4"])
    assert {k.name: k.reason for k in first.kept}["features.4"] == "kept by request"
    second = convert(model, "ghost")
    # the seed convs inside the GroupNL layers are not targets
    assert [r.name for r in second.replaced] == ["features.4"]
    assert not any(".seed" in k.name for k in second.kept)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(
        ValueError, match="unknown layer 'gnl'; choose one of groupnl, monocnn, ghost, sinefm"
    ):
        convert(model, "gnl")
    with pytest.raises(ValueError, match="unknown rule where='some'"):
        convert(model, "groupnl", where="some")


def test_bottleneck_rule_on_torchvision_resnet101_replaces_the_30_stride_1_3x3_convs():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = torchvision.models.resnet101()
        report = convert(model, "groupnl")
    assert report.rule == "bottleneck" and len(report.replaced) == 30
    for r in report.replaced:
        layer = model.get_submodule(r.name)
        assert (
            r.name.endswith("conv2")
            and layer.sparse
            and layer.stride == (1, 1)
            and layer.kernel_size == (3, 3)
        )
    kept = {k.name: k.reason for k in report.kept}
    assert "stride 2" in kept["layer2.0.conv2"] and "1x1" in kept["layer3.5.conv3"]
    assert "stem" in kept["conv1"]


# ---- gearlib bench layers ------------------------------------------------------------------------------

TINY = ["--channels", "16", "--size", "8", "--rounds", "1"]


def test_bench_layers_returns_ratios_against_the_plain_conv(capsys: pytest.CaptureFixture):
    threads = torch.get_num_threads()
    assert main(["bench", "layers", "--json", *TINY]) == 0
    out = json.loads(capsys.readouterr().out)
    assert torch.get_num_threads() == threads  # restored after timing on one thread
    assert out["channels"] == 16 and out["table16_module"] is False and "oneDNN" in out["note"]
    for kind in ("conv", "groupnl", "sparse_groupnl", "ghost", "sinefm", "depthwise", "monocnn"):
        for phase in ("infer", "train"):
            ms = out[f"{kind}_{phase}_ms"]
            assert ms > 0
            assert out[f"{kind}_{phase}_over_conv"] == pytest.approx(ms / out[f"conv_{phase}_ms"])
    assert out["groupnl_infer_over_conv_paper_pi"] == pytest.approx(70.14 / 122.2)
    assert out["sparse_groupnl_infer_over_conv_paper_pi"] == pytest.approx(30.68 / 122.2)
    assert "monocnn_infer_over_conv_paper_pi" not in out
    assert out["groupnl_params"] == 8 * 16 * 9 + 8 and out["conv_params"] == 16 * 16 * 9


def test_bench_layers_rejects_a_ratio_the_layers_cannot_take(capsys: pytest.CaptureFixture):
    assert main(["bench", "layers", "--json", *TINY, "--ratio", "3"]) == 2
    assert "--ratio r=3 must be >= 2 and divide --channels=16" in capsys.readouterr().err
