"""BatchNorm folding (gearlib.models.fold_batchnorm) and `gearlib bench infer`."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gearlib.cli import main
from gearlib.models import build, fold_batchnorm


def _with_statistics(arch: str) -> nn.Module:
    """A network whose BNs hold statistics and affine parameters far from their initial (0, 1, 1, 0)."""
    torch.manual_seed(0)
    model = build(arch, 16, 10, 32)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("arch", ["vgg19", "mobilenet_v1", "resnet18"])
def test_folded_network_computes_the_same_and_has_no_batchnorm_left(arch):
    model = _with_statistics(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert not folded.training
    # the original keeps its BNs and weights
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bench_infer_reports_both_sides_and_checks_the_folding(capsys):
    argv = ["bench", "infer", "--json", "--archs", "vgg19", "--width", "8", "--iters", "3", "--windows", "1"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vgg19_plain_ms"] > 0 and out["vgg19_folded_ms"] > 0
    assert out["vgg19_folded_over_plain"] == pytest.approx(out["vgg19_folded_ms"] / out["vgg19_plain_ms"])
    assert out["vgg19_max_abs_output_diff"] < 1e-4


def test_bench_infer_names_an_unknown_architecture(capsys):
    assert main(["bench", "infer", "--archs", "vgg16"]) == 2
    assert "unknown architecture 'vgg16'" in capsys.readouterr().err
