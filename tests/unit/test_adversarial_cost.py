"""Tests for gearlib.adversarial.cost: the FLOAT delay model (Eqs. 7-9) and parameter/operation counts.

Counts are checked against the FLOAT and SMART papers and against torch models built on the meta device.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import pytest
import torch
from torch import nn

from gearlib.adversarial.cost import (
    RESNET18_BLOCKS,
    RESNET34_BLOCKS,
    ConvShape,
    DelayConstants,
    comparison_table,
    conv_delay,
    delay_summary,
    delay_table,
    film_channels,
    film_convs,
    film_macs,
    film_params,
    float_delay,
    float_params,
    noise_additions_ratio,
    noisy_weights,
    oat_delay,
    oat_extra_macs,
    oat_params,
    resnet_layers,
    resnet_macs,
    resnet_params,
    smart_counts,
)
from gearlib.measure import count_params

# A tiny CIFAR ResNet builder (basic blocks, 1x1 projection shortcuts), independent of the module under test.


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, bn_sets: int, film_d_e: Optional[int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c_out) for _ in range(2 * bn_sets))
        self.films = nn.ModuleList(_film(c_out, film_d_e) for _ in range(2 if film_d_e else 0))
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                *[nn.BatchNorm2d(c_out) for _ in range(bn_sets)],
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bns[1](self.conv2(torch.relu(self.bns[0](self.conv1(x)))))
        shortcut = self.shortcut[:2](x) if len(self.shortcut) else x  # conv and the first BN set
        return torch.relu(out + shortcut)


def _film(channels: int, d_e: int) -> nn.Module:
    """OAT's FiLM MLP: d_e -> 2C -> 2C with biases."""
    return nn.Sequential(nn.Linear(d_e, 2 * channels), nn.LeakyReLU(), nn.Linear(2 * channels, 2 * channels))


def _resnet(
    blocks: Sequence[int], bn_sets: int = 1, film_d_e: Optional[int] = None, num_classes: int = 10
) -> nn.Module:
    widths = (64, 128, 256, 512)
    layers: List[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False)]
    layers += [nn.BatchNorm2d(64) for _ in range(bn_sets)]
    layers += [_film(64, film_d_e)] if film_d_e else []
    body: List[nn.Module] = []
    c_in = 64
    for s, (n, width) in enumerate(zip(blocks, widths)):
        for b in range(n):
            body.append(_Block(c_in, width, 2 if s > 0 and b == 0 else 1, bn_sets, film_d_e))
            c_in = width
    model = nn.Module()
    model.stem = nn.ModuleList(layers)
    model.body = nn.Sequential(*body)
    model.fc = nn.Linear(512, num_classes)
    return model


def _meta_resnet(blocks: Sequence[int], **kwargs) -> nn.Module:
    with torch.device("meta"):
        return _resnet(blocks, **kwargs)


def _hooked_macs(model: nn.Module) -> int:
    """MACs of convs and linears of one 32x32 image, from output shapes (meta tensors, no arithmetic)."""
    total = [0]

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        total[0] += module.weight.numel() * (output.numel() // output.shape[1])

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook)
    x = torch.empty(1, 3, 32, 32, device="meta")
    x = torch.relu(model.stem[1](model.stem[0](x)))
    x = model.body(x).mean((2, 3))
    model.fc(x)
    return total[0]


# Delay model (FLOAT, Eqs. 7-9)


def test_delay_of_one_layer_by_hand():
    layer = ConvShape(64, 64, 3, 32, 32)
    assert layer.weights == 36_864
    assert layer.macs == 36_864 * 1024
    # ceil(36864 / 8) = 4608 reads of 9 ns; ceil(36864 / 175) = 211 passes, 1024 pixels, 4 ns each.
    tau = 4608 * 9e-9 + 211 * 1024 * 4e-9
    assert tau == pytest.approx(905_728e-9)
    assert conv_delay(layer) == pytest.approx(tau, rel=1e-12)
    # FLOAT: one more pass of the multipliers to add the noise: 211 * 1025 * 4 ns.
    assert float_delay(layer) == pytest.approx(4608 * 9e-9 + 211 * 1025 * 4e-9, rel=1e-12)
    assert float_delay(layer) == pytest.approx(906_572e-9)
    # OAT: the FiLM MLP has 2 * 64 + 4 * 64^2 = 16,512 weights:
    # ceil((36,864 + 16,512) / 8) = 6672 reads and ceil(16,512 / 175) = 95 more multiplier passes.
    assert oat_delay(layer) == pytest.approx(6672 * 9e-9 + 211 * 1024 * 4e-9 + 95 * 4e-9, rel=1e-12)
    assert oat_delay(layer) == pytest.approx(924_684e-9)


def test_delay_constants_scale_the_model():
    layer = ConvShape(256, 512, 3, 4, 4)
    slow_reads = DelayConstants(tau_read=18e-9)
    reads = 1_179_648 // 8
    assert conv_delay(layer, slow_reads) - conv_delay(layer) == pytest.approx(reads * 9e-9)
    assert DelayConstants(b_io=32).reads(1_179_648) == 1_179_648 // 16


def test_resnet34_delay_summary():
    rows = delay_table(film_convs())
    assert len(rows) == 33
    summary = delay_summary(rows)
    f, o, of = summary["float_over_base"], summary["oat_over_base"], summary["oat_over_float"]
    assert round(f["min"], 4) == 1.0009 and round(f["max"], 4) == 1.0153
    assert round(o["min"], 3) == 1.021 and round(o["max"], 3) == 1.685 and round(o["mean"], 3) == 1.188
    # FLOAT, Sec. 4.3: the conditional conv of FLOAT is "up to 1.66x" faster than OAT's.
    assert round(of["max"], 3) == 1.660 and round(of["min"], 3) == 1.020 and round(of["mean"], 3) == 1.179
    assert of["argmax"] == "stage4.block1.conv1"
    worst = next(row for row in rows if row["name"] == of["argmax"])
    assert (worst["c_in"], worst["c_out"], worst["h_out"], worst["w_out"]) == (256, 512, 4, 4)
    for row in rows:
        assert row["tau"] < row["tau_float"] < row["tau_oat"]


def test_resnet_layer_lists():
    convs = film_convs()
    assert convs[0] == ConvShape(3, 64, 3, 32, 32, "stem")
    first = {c.name: c for c in convs}
    assert first["stage3.block1.conv1"] == ConvShape(128, 256, 3, 8, 8, "stage3.block1.conv1")
    assert len(film_convs(RESNET18_BLOCKS)) == 17
    all_layers = resnet_layers(shortcuts=True, num_classes=10)
    assert len(all_layers) == 33 + 3 + 1
    assert [c.k for c in all_layers if c.name.endswith("shortcut")] == [1, 1, 1]


# Parameters


def test_plain_resnet_params_match_torch():
    assert resnet_params() == 21_282_122
    assert resnet_params(RESNET18_BLOCKS) == 11_173_962
    assert count_params(_meta_resnet(RESNET34_BLOCKS)) == 21_282_122
    assert count_params(_meta_resnet(RESNET18_BLOCKS)) == 11_173_962
    assert count_params(_meta_resnet(RESNET34_BLOCKS, num_classes=100)) == resnet_params(num_classes=100)


def test_count_params_skips_buffers():
    bn = nn.BatchNorm2d(8)
    assert count_params(bn) == 16  # running mean/var and the counter are buffers


def test_film_params():
    assert film_params(64) == 4 * 64**2 + 6 * 64
    for channels, d_e in [(4, 1), (16, 1), (8, 128)]:
        assert film_params(channels, d_e) == count_params(_film(channels, d_e))
        assert film_params(channels, d_e) == 2 * channels * d_e + 4 * channels**2 + 4 * channels
    assert len(film_channels()) == 33
    assert film_macs(64) == 2 * 64 + 4 * 64**2
    assert film_macs(64, pixels=1024) == film_macs(64) + 64 * 1024


def test_oat_params():
    assert oat_params() == 31_403_978  # FLOAT, Sec. 4.3: 31.4 MB at 8 bits
    assert round(oat_params() / 1e6, 2) == 31.40
    assert round(oat_params(dual_bn=True) / 1e6, 3) == 31.421
    with_encoding = oat_params(d_e=128, dual_bn=True)
    assert with_encoding == 33_355_466
    assert with_encoding / 1e6 == pytest.approx(33.356, abs=1e-3)
    assert count_params(_meta_resnet(RESNET34_BLOCKS, film_d_e=1)) == oat_params()
    assert count_params(_meta_resnet(RESNET34_BLOCKS, film_d_e=128, bn_sets=2)) == with_encoding


def test_float_params():
    model = _meta_resnet(RESNET34_BLOCKS, bn_sets=2)
    noisy = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(noisy) == 37
    assert float_params() == count_params(model) + len(noisy) == 21_299_183
    assert float_params(dual_bn=False) - resnet_params() == 37
    assert noisy_weights() == sum(m.weight.numel() for m in noisy) == 21_265_088


# Operations


def test_macs_and_noise_additions():
    macs = resnet_macs()
    assert macs == _hooked_macs(_meta_resnet(RESNET34_BLOCKS)) == 1_159_402_496
    assert round(macs / 1e9, 2) == 1.16
    # FLOAT, Sec. 4.3 prints 1.182 %, but its own ~21.28 M / ~1.165 G is 1.83 %.
    assert round(100 * noise_additions_ratio(), 2) == 1.83
    assert round(100 * 21.28e6 / 1.165e9, 2) == 1.83


def test_oat_extra_macs():
    assert oat_extra_macs(modulation=False) == 10_091_392
    assert oat_extra_macs() == 10_091_392 + 966_656
    assert oat_extra_macs(d_e=128, modulation=False) == 12_025_856


def test_smart_counts():
    s = smart_counts()
    assert s["dense_weights"] == noisy_weights()
    assert s["always_dense"] == 1_728 + 221_184 + 1_114_112 + 5_120
    assert s["sparse_stage_weights"] == 6_815_744 + 13_107_200
    assert s["noise_additions"] == s["per_path"] == 11_303_616
    assert round(s["noise_additions"] / 1e6, 2) == 11.30  # SMART, Table 2 prints 11.4 M
    assert round(s["per_path_fraction"], 2) == 0.53  # SMART, Table 2 prints 0.54
    assert round(oat_params() / s["per_path"], 2) == 2.78
    assert round(noisy_weights() / s["noise_additions"], 2) == 1.88
    assert round(s["union_fraction"], 2) == 0.77
    assert smart_counts(shared=0.0)["union_fraction"] == 1.0
    assert smart_counts(shared=0.5)["union_fraction"] == s["per_path_fraction"]


def test_comparison_table():
    rows = {row["method"]: row for row in comparison_table()}
    assert list(rows) == ["PGD-AT", "OAT", "FLOAT", "SMART"]
    assert rows["PGD-AT"]["normalised_params"] == 1.0
    assert round(rows["OAT"]["normalised_params"], 2) == 1.48
    assert rows["OAT"]["paper_normalised_params"] == 1.47
    assert round(rows["FLOAT"]["normalised_params"], 3) == 1.0
    assert round(rows["SMART"]["normalised_params"], 2) == 0.53
    assert rows["OAT"]["extra_macs"] == oat_extra_macs() and rows["OAT"]["paper_extra_macs"] == 15_000_000
    assert rows["FLOAT"]["extra_adds"] == noisy_weights() and rows["FLOAT"]["paper_extra_adds"] == 21_280_000
    assert rows["SMART"]["extra_adds"] == 11_303_616 and rows["SMART"]["paper_extra_adds"] == 11_400_000
    assert rows["FLOAT"]["stored_params"] == float_params()
    assert rows["SMART"]["stored_params"] < rows["FLOAT"]["stored_params"] < rows["OAT"]["stored_params"]


# -- the formulas against gearlib's own instantiated models -----------------------------------------------
@pytest.mark.parametrize("arch, blocks", [("resnet18", (2, 2, 2, 2)), ("resnet34", (3, 4, 6, 3))])
def test_the_accounting_matches_gearlibs_models(arch, blocks):
    from gearlib.adversarial.masks import mask_counts
    from gearlib.adversarial.models import FLOAT, OAT, OAT_128, PLAIN, build_adversarial
    from gearlib.adversarial.train import build_for

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        plain = build_adversarial(arch, PLAIN, 64, 10)
        floaty = build_adversarial(arch, FLOAT, 64, 10)
        oat = build_adversarial(arch, OAT, 64, 10)
    assert count_params(plain) == resnet_params(blocks)
    assert count_params(floaty) == float_params(blocks)
    assert count_params(oat) == oat_params(blocks, dual_bn=True)
    with torch.device("meta"):
        oat128 = build_adversarial(arch, OAT_128, 64, 10)
    assert count_params(oat128) == oat_params(blocks, d_e=128, dual_bn=True)  # the codes are buffers
    if arch == "resnet34":
        smart = build_for("smart", arch, 64, 10, seed=0)
        counts, masks = smart_counts(), mask_counts(smart)
        assert masks["weights"] == counts["dense_weights"]
        assert masks["clean_nonzero"] == masks["adv_nonzero"] == counts["per_path"]
        assert masks["union"] == counts["union"]
