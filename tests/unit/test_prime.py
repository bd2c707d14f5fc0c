"""Tests for the batched PRIME primitives and mixing (gearlib.augment.prime).

Range, dtype, identity at zero strength, change growing with strength, and seeded views.
"""

from __future__ import annotations

import math

import pytest
import torch

from gearlib.augment import PrimeConfig, era, prime
from gearlib.augment.prime import random_diffeo, random_filter, random_smooth_color, temperature_range


def _smooth_images(n: int = 6, size: int = 32) -> torch.Tensor:
    """Smooth float images in [0.2, 0.8] (little clamping, so changes track strength)."""
    u = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    imgs = []
    for i in range(n):
        base = [torch.sin(math.pi * (c + 1) * xx + i) * torch.cos(math.pi * (i + 1) * yy) for c in range(3)]
        imgs.append(torch.stack(base))
    return 0.5 + 0.3 * torch.stack(imgs)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


PRIMITIVES = {
    "spectral": (lambda x, s, g: random_filter(x, s, generator=g), [0.0, 0.05, 0.5, 4.0]),
    "colour": (lambda x, t, g: random_smooth_color(x, t, 100, generator=g), [0.0, 1e-5, 1e-3, 1e-2]),
    "spatial": (lambda x, t, g: random_diffeo(x, t, 10, generator=g), [0.0, 1e-5, 1e-4, 1e-3]),
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_change_grows_with_strength_and_stays_in_range(name: str) -> None:
    fn, strengths = PRIMITIVES[name]
    x = _smooth_images()
    changes = []
    for s in strengths:
        y = fn(x, s, _gen(1))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        changes.append(float((y - x).abs().mean()))
    assert changes[0] == pytest.approx(0.0, abs=1e-6)
    assert all(a < b for a, b in zip(changes, changes[1:])), changes


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_keeps_uint8(name: str) -> None:
    fn, strengths = PRIMITIVES[name]
    x = (_smooth_images(3) * 255).round().to(torch.uint8)
    y = fn(x, strengths[-1], _gen())
    assert y.dtype == torch.uint8 and y.shape == x.shape and not torch.equal(x, y)


def test_reference_filter_tap_shifts_the_image() -> None:
    x = _smooth_images(2)
    shifted = random_filter(x, 0.0, center="reference")
    assert torch.allclose(shifted[..., :-1, :-1], x[..., 1:, 1:], atol=1e-6)


def test_temperature_range_and_config_checks() -> None:
    t1, t2 = temperature_range(32, torch.tensor([2.0, 10.0, 100.0]))
    assert bool((t1 > 0).all()) and float(t2[0]) > float(t1[0])
    with pytest.raises(ValueError, match="valid"):
        PrimeConfig.from_knobs(sigma=2.0)
    with pytest.raises(ValueError, match="diffeo_cut_min"):
        PrimeConfig(diffeo_cut_min=1)
    with pytest.raises(ValueError, match="primitive"):
        PrimeConfig(primitives=("spectral", "blur"))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_prime_views_seeded_and_in_range(dtype: torch.dtype) -> None:
    x = _smooth_images(8)
    x = x if dtype == torch.float32 else (x * 255).round().to(torch.uint8)
    a = prime(x, generator=_gen(2))
    b = prime(x, generator=_gen(2))
    assert len(a) == 3 and a[0] is x
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    hi = 1.0 if dtype == torch.float32 else 255
    for v in a[1:]:
        assert v.dtype == dtype and float(v.min()) >= 0 and float(v.max()) <= hi
        assert not torch.equal(v, x)
    assert len(prime(x, views=0, generator=_gen())) == 1


def test_era_over_prime_primitives() -> None:
    x = _smooth_images(4)
    views = era(x, ops="prime", generator=_gen())
    assert len(views) == 4 and all(v.shape == x.shape for v in views)
    only_colour = era(x, ops=["color"], views=2, generator=_gen())
    assert not torch.equal(only_colour[1], x)


def test_colour_series_matches_direct_sum() -> None:
    x = _smooth_images(3)
    n, c, cut, t = x.shape[0], x.shape[1], 40, 4e-3
    coeff = torch.randn(n, c, cut, generator=_gen(7)) * math.sqrt(t)  # the draw the primitive makes
    k = torch.arange(1, cut + 1, dtype=torch.float32)
    series = (coeff[:, :, None, None, :] * torch.sin(math.pi * x[..., None] * k)).sum(-1)
    expected = (x + series).clamp(0, 1)
    assert torch.allclose(random_smooth_color(x, t, cut, generator=_gen(7)), expected, atol=1e-4)


def test_diffeo_matches_spec_field_and_remap() -> None:
    x = _smooth_images(2, size=16)
    n, size, cut, t = 2, 16, 5, 2e-3
    coeff = torch.randn(2, n, cut, cut, generator=_gen(3))  # the draw the primitive makes
    k = torch.arange(1, cut + 1, dtype=torch.float32)
    r = (k[:, None] ** 2 + k[None, :] ** 2).sqrt()
    e = (r < cut + 0.5) / r
    s = torch.sin(math.pi * torch.linspace(0, 1, size)[:, None] * k)
    field = torch.einsum("cbij,xi,yj->cbyx", coeff * e, s, s) * math.sqrt(t) * size
    grid = torch.arange(size, dtype=torch.float32)
    xn = (grid[None, None, :] - field[0]).clamp(0, size - 1)
    yn = (grid[None, :, None] - field[1]).clamp(0, size - 1)
    xf, yf = xn.floor().long(), yn.floor().long()
    xc, yc = xn.ceil().long(), yn.ceil().long()
    xv, yv = (xn - xf)[:, None], (yn - yf)[:, None]
    b = torch.arange(n)[:, None, None, None]
    ch = torch.arange(3)[None, :, None, None]

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return x[b, ch, yy[:, None], xx[:, None]]

    expected = (
        (1 - yv) * (1 - xv) * at(yf, xf)
        + (1 - yv) * xv * at(yf, xc)
        + yv * (1 - xv) * at(yc, xf)
        + yv * xv * at(yc, xc)
    )
    assert torch.allclose(random_diffeo(x, t, cut, generator=_gen(3)), expected, atol=1e-4)


def test_view_strength_measures_each_augmentation_on_its_own_generator():
    from gearlib.augment import saturated_share, view_strength

    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    table = view_strength(images, ["era", "era_prime"], seed=3)
    assert table["clean"] == {"mean |view - clean|": 0.0, "saturated (%)": 0.0}
    assert 0 < table["era"]["mean |view - clean|"] < 1 and 0 < table["era_prime"]["mean |view - clean|"] < 1
    # one name's numbers do not depend on the names measured before it
    assert view_strength(images, ["era_prime"], seed=3)["era_prime"] == table["era_prime"]
    assert view_strength(images, ["era_prime"], seed=4)["era_prime"] != table["era_prime"]
    assert saturated_share(torch.tensor([0.0, 0.5, 1.0, 1.0])) == 75.0
    with pytest.raises(ValueError, match="float NCHW.*to_float"):
        view_strength((images * 255).to(torch.uint8), ["era"])
    with pytest.raises(ValueError, match="'none' makes no augmented view"):
        view_strength(images, ["none"])
