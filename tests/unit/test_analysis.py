"""Tests for gearlib.analysis: Fourier spectra and heat maps, loss landscapes, topology and curve plots.

Oracles 19-21 of the evaluation spec, on tiny CPU models and 8x8 or 32x32 images.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from gearlib.analysis import (  # noqa: E402
    filter_normalized_direction,
    fourier_basis,
    fourier_heatmap,
    loss_landscape_1d,
    perturbation_spectrum,
    plot_fourier_heatmap,
    plot_landscapes,
    plot_loss_curves,
    plot_spectra,
    plot_topology,
    spectrum,
    topology_frame,
)


def _images(n=6, c=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g, dtype=torch.float64)


def _peaks(s: torch.Tensor, frac: float = 0.5):
    return {tuple(idx) for idx in (s > frac * s.max()).nonzero().tolist()}


# ----- oracle 19: Fourier ---------------------------------------------------------------------------------


def test_identity_transform_has_zero_perturbation_spectrum():
    x = _images()
    assert torch.count_nonzero(perturbation_spectrum(x, x.clone())) == 0


@pytest.mark.parametrize("i,j", [(10, 20), (16, 3), (0, 0), (16, 16), (5, 16)])
def test_basis_image_is_unit_and_peaks_at_its_frequency_and_mirror(i, j):
    u = fourier_basis(i, j, 32, dtype=torch.float64)
    assert u.norm().item() == pytest.approx(1.0, rel=1e-12)
    s = spectrum(u)
    mirror = ((32 - i) % 32, (32 - j) % 32)
    assert _peaks(s) == {(i, j), mirror}
    assert s[i, j].item() == pytest.approx(s[mirror].item(), rel=1e-9)
    off = s.clone()
    off[i, j] = 0
    off[mirror] = 0
    assert off.abs().max().item() < 1e-9


def test_added_basis_perturbation_peaks_at_i_j():
    x = _images()
    eps = 4.0
    s = perturbation_spectrum(x, x + eps * fourier_basis(9, 21, 32, dtype=torch.float64))
    assert _peaks(s) == {(9, 21), (23, 11)}


def test_parseval_and_dc_at_centre():
    x = _images(n=1, c=1)
    s = spectrum(x)
    assert (s**2).sum().item() / (32 * 32) == pytest.approx((x**2).sum().item(), rel=1e-10)
    const = torch.full((2, 3, 32, 32), 0.25, dtype=torch.float64)
    sc = spectrum(const)
    assert _peaks(sc, 1e-12) == {(16, 16)}
    assert sc[16, 16].item() == pytest.approx(0.25 * 32 * 32)
    odd = spectrum(torch.ones(1, 1, 31, 31))
    assert _peaks(odd, 1e-6) == {(15, 15)}


def test_spectrum_options_and_errors():
    x = _images(n=2)
    log_s = spectrum(x, reduce="mean_log_abs")
    assert log_s.shape == (32, 32) and not torch.allclose(log_s, spectrum(x))
    as_uint8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(spectrum(as_uint8).double(), spectrum(as_uint8.double() / 255), atol=1e-3)
    with pytest.raises(ValueError, match="reduce"):
        spectrum(x, reduce="max")
    with pytest.raises(ValueError, match="same shape"):
        perturbation_spectrum(x, x[:1])
    with pytest.raises(ValueError):
        fourier_basis(32, 0, 32)


class ConstantClassifier(nn.Module):
    def __init__(self, k: int = 0, classes: int = 3):
        super().__init__()
        self.k, self.classes = k, classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], self.classes)
        logits[:, self.k] = 1.0
        return logits + self.dummy


def _small_net(classes: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
    )


def test_fourier_heatmap_oracles():
    x = _images(n=12, size=8).float()
    y = torch.tensor([0, 1, 2] * 4)
    heat = fourier_heatmap(ConstantClassifier(0), x, y, eps=4.0, batch_size=5)
    assert heat.shape == (8, 8)
    assert torch.allclose(heat, torch.full((8, 8), 8 / 12))  # a constant model errs on the other labels
    net = _small_net()
    a = fourier_heatmap(net, x, y, stride=2, generator=torch.Generator().manual_seed(1))
    b = fourier_heatmap(net, x, y, stride=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.nan_to_num(a, nan=-1), torch.nan_to_num(b, nan=-1))
    done = ~torch.isnan(a)
    assert done.any() and (~done).any()
    assert ((a[done] >= 0) & (a[done] <= 1)).all()
    for i in range(8):
        for j in range(8):
            mi, mj = (8 - i) % 8, (8 - j) % 8
            assert torch.equal(torch.nan_to_num(a[i, j], nan=-1), torch.nan_to_num(a[mi, mj], nan=-1))
    assert net.training


def test_fourier_plots_return_figures():
    x = _images(n=2)
    fig = plot_spectra(
        {"clean": spectrum(x), "noise": perturbation_spectrum(x, x + 0.1 * _images(n=2, seed=3))}
    )
    assert isinstance(fig, plt.Figure) and len([a for a in fig.axes if a.get_title()]) == 2
    fig2 = plot_fourier_heatmap(torch.rand(8, 8))
    assert isinstance(fig2, plt.Figure)
    plt.close("all")
    with pytest.raises(ValueError):
        plot_spectra({})


# ----- oracle 20: loss landscape --------------------------------------------------------------------------


def _trained_state(net: nn.Module, x: torch.Tensor):
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x)  # non-trivial BN running statistics
    return net


def test_filter_normalized_direction():
    net = _small_net()
    d = filter_normalized_direction(net, torch.Generator().manual_seed(0))
    assert set(d) == {name for name, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        if p.dim() >= 2:
            theta_norm = p.detach().flatten(1).norm(dim=1)
            d_norm = d[name].flatten(1).norm(dim=1)
            assert torch.allclose(d_norm, theta_norm, rtol=1e-5)
        else:
            assert torch.count_nonzero(d[name]) == 0
    again = filter_normalized_direction(net, torch.Generator().manual_seed(0))
    assert all(torch.equal(d[k], again[k]) for k in d)


def test_loss_landscape_restores_weights_and_matches_loss_at_zero():
    x = _images(n=16, size=8).float()
    y = torch.arange(16) % 3
    net = _trained_state(_small_net(), x)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    alphas = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    a, losses = loss_landscape_1d(
        net, x, y, alphas=alphas, generator=torch.Generator().manual_seed(0), batch_size=5
    )
    assert torch.equal(a, alphas) and losses.shape == (5,)
    net.eval()
    with torch.no_grad():
        reference = F.cross_entropy(net(x), y).item()
    net.train()
    assert losses[2].item() == pytest.approx(reference, rel=1e-5)
    assert not torch.allclose(losses, losses[2].expand(5))
    after = net.state_dict()
    assert set(before) == set(after)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert net.training


def test_loss_landscape_defaults_and_given_direction():
    x = _images(n=6, size=8).float()
    y = torch.arange(6) % 3
    net = _small_net().eval()
    d = filter_normalized_direction(net, torch.Generator().manual_seed(2))
    a, losses = loss_landscape_1d(net, x, y, direction=d)
    assert a.shape == (51,) and a[0] == -1 and a[-1] == 1 and torch.isfinite(losses).all()
    a2, losses2 = loss_landscape_1d(net, x, y, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(losses, losses2)
    _, avg = loss_landscape_1d(
        net, x, y, alphas=[0.0, 1.0], n_directions=2, generator=torch.Generator().manual_seed(2)
    )
    assert avg.shape == (2,) and not net.training
    fig = plot_landscapes({"net": (a, losses), "again": (a2, losses2)})
    assert isinstance(fig, plt.Figure)
    plt.close("all")
    with pytest.raises(ValueError):
        loss_landscape_1d(net, x, y[:3])


# ----- oracle 21: topology; curves ------------------------------------------------------------------------


def test_topology_frame_mean_is_elementwise():
    widths = {0: [4, 8, 16], 1: [6, 8, 12], 2: [8, 8, 8]}
    frame = topology_frame(widths, layer_names=["conv1", "b1", "b2"], backbone=[2, 4, 4], full=[8, 16, 16])
    assert list(frame["mean"]) == [6.0, 8.0, 12.0]
    assert list(frame["std"]) == pytest.approx([2.0, 0.0, 4.0])
    assert list(frame["mean_frac"]) == pytest.approx([0.75, 0.5, 0.75])
    assert list(frame["seed_1"]) == [6, 8, 12] and list(frame["layer"]) == ["conv1", "b1", "b2"]
    single = topology_frame({7: [3, 5]})
    assert list(single["std"]) == [0.0, 0.0] and list(single["layer"]) == ["L0", "L1"]
    with pytest.raises(ValueError, match="layers"):
        topology_frame({0: [1, 2], 1: [1, 2, 3]})
    with pytest.raises(ValueError):
        topology_frame(widths, full=[1, 2])
    assert isinstance(plot_topology(frame), plt.Figure)
    assert isinstance(plot_topology(frame, fraction=True), plt.Figure)
    assert isinstance(plot_topology(widths), plt.Figure)
    with pytest.raises(ValueError, match="full"):
        plot_topology(single, fraction=True)
    plt.close("all")


def test_plot_loss_curves():
    hist_a = [{"epoch": e, "loss": 2.0 / e, "acc": 0.1 * e} for e in range(1, 6)]
    hist_b = pd.DataFrame({"epoch": range(1, 6), "loss": [2.5, 1.5, 1.0, 0.8, 0.7]})
    fig = plot_loss_curves({"GEARnn": hist_a, "Small": hist_b}, stage_boundaries=[2, 4])
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 + 2  # two curves, two boundaries
    fig2 = plot_loss_curves({"Small": hist_b}, stage_boundaries={"Small": [3]}, log=True)
    assert len(fig2.axes) == 1
    assert isinstance(plot_loss_curves({"x": [{"loss": 1.0}, {"loss": 0.5}]}), plt.Figure)
    plt.close("all")
    with pytest.raises(ValueError, match="loss"):
        plot_loss_curves({"bad": [{"epoch": 1, "acc": 0.5}]})
