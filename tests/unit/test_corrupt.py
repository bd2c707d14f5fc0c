"""Tests of gearlib.corrupt against the evaluation spec's corruption oracles (section 7, items 1-10).

Images: a seeded bank of natural-like images (1/f noise, gradients, random discs) plus constant images.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gearlib.corrupt import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    DETERMINISTIC,
    EXTRA_CORRUPTIONS,
    blur,
    corrupt,
    digital,
    gallery,
    get_params,
    noise,
    ops,
    params,
    weather,
)

MONOTONE = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "gaussian_blur",
    "defocus_blur",
    "zoom_blur",
    "motion_blur",
    "pixelate",
    "jpeg_compression",
    "contrast",
    "brightness",
    "fog",
    "frost",
]
STOCHASTIC = [c for c in CORRUPTIONS if c not in DETERMINISTIC]


def natural_bank(n: int = 64, size: int = 32, seed: int = 0) -> np.ndarray:
    """Seeded natural-like uint8 images (n, size, size, 3): 1/f noise, colour gradients, random discs."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    for k in range(n):
        kind = k % 3
        if kind == 0:
            spectrum = (rng.normal(size=(3, size, size)) + 1j * rng.normal(size=(3, size, size))) / radius
            img = np.moveaxis(np.real(np.fft.ifft2(spectrum)), 0, -1)
            img = (img - img.mean()) / (img.std() + 1e-9) * 0.18 + rng.uniform(0.35, 0.65)
        elif kind == 1:
            a, b = rng.uniform(-1, 1, (2, 3))
            img = rng.uniform(0.2, 0.8, 3) + 0.6 * (a * (xx[..., None] - 0.5) + b * (yy[..., None] - 0.5))
        else:
            img = np.ones((size, size, 3)) * rng.uniform(0.1, 0.9, 3)
            for _ in range(4):
                cy, cx = rng.uniform(0, size, 2)
                r = rng.uniform(3, size / 3)
                mask = (np.arange(size)[:, None] - cy) ** 2 + (np.arange(size)[None] - cx) ** 2 < r * r
                img[mask] = rng.uniform(0, 1, 3)
        out[k] = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def bank32() -> np.ndarray:
    return natural_bank(64, 32)


@pytest.fixture(scope="module")
def bank64() -> np.ndarray:
    return natural_bank(12, 64, seed=1)


def strength(images: np.ndarray, name: str, severity: int) -> float:
    out = corrupt(images, name, severity, seed=3)
    return float(np.abs(out.astype(np.float64) - images).mean())


# ------------------------------------------------------------------------------------------- names


def test_names_and_order():
    assert len(BENCHMARK_CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert CORRUPTIONS == BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
    assert CORRUPTIONS[:4] == ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur"]
    assert EXTRA_CORRUPTIONS == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    for table in (params.CIFAR_PARAMS, params.TINY_PARAMS):
        assert set(table) == set(CORRUPTIONS)
        assert all(len(v) == 5 for v in table.values())


def test_bad_arguments_raise_value_error():
    x = natural_bank(2)
    with pytest.raises(ValueError, match="gaussian_noise"):
        corrupt(x, "gaussian_nois", 1)
    with pytest.raises(ValueError, match="1, 2, 3, 4, 5"):
        corrupt(x, "fog", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(x.astype(np.float32), "fog", 1)
    with pytest.raises(ValueError, match="HWC"):
        corrupt(x[..., :2], "fog", 1)
    with pytest.raises(ValueError, match="32"):
        corrupt(np.zeros((1, 40, 40, 3), np.uint8), "fog", 1)
    with pytest.raises(ValueError, match="seed"):
        corrupt(x, "fog", 1, seed=-1)


# ------------------------------------------------------------------------- oracle 1: shape / dtype


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_range_both_sizes(name):
    for size in (32, 64):
        x = natural_bank(3, size, seed=size)
        for severity in range(1, 6):
            out = corrupt(x, name, severity, seed=1)
            assert out.shape == x.shape and out.dtype == np.uint8
        single = corrupt(x[0], name, 5, seed=1)
        assert single.shape == x[0].shape and single.dtype == np.uint8


# ------------------------------------------------------------------------- oracle 2: determinism


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_seed_determinism_and_batch_independence(name):
    x = natural_bank(7, 32, seed=5)
    a = corrupt(x, name, 3, seed=11)
    np.testing.assert_array_equal(a, corrupt(x, name, 3, seed=11))
    other = corrupt(x, name, 3, seed=12)
    if name in DETERMINISTIC:
        np.testing.assert_array_equal(a, other)
    else:
        assert not np.array_equal(a, other)
    # the same images in pieces (dataset indices given by start_index) or in shuffled order
    pieces = np.concatenate(
        [
            corrupt(x[0], name, 3, seed=11)[None],
            corrupt(x[1:3], name, 3, seed=11, start_index=1),
            corrupt(x[3:], name, 3, seed=11, start_index=3),
        ]
    )
    np.testing.assert_array_equal(a, pieces)
    perm = np.array([4, 0, 6, 2, 1, 5, 3])
    np.testing.assert_array_equal(a[perm], corrupt(x[perm], name, 3, seed=11, indices=perm))


# ------------------------------------------------------------------------- oracle 3: strength


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_strength_grows_with_severity(name, bank32, bank64):
    for bank in (bank32, bank64):
        d = [strength(bank, name, s) for s in range(1, 6)]
        assert min(d) > 0, (name, d)
        if name in MONOTONE:
            for lo, hi in zip(d[:-1], d[1:]):
                assert hi >= 0.98 * lo, (name, bank.shape[1], d)


# ------------------------------------------------------------------------- oracle 4: noise stats


def constant(value: int = 128, n: int = 40, size: int = 32) -> np.ndarray:
    return np.full((n, size, size, 3), value, np.uint8)


def residual(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return out.astype(np.float64) / 255 - x.astype(np.float64) / 255


def test_gaussian_and_speckle_noise_statistics():
    x = constant()
    for severity in range(1, 6):
        sigma = get_params("gaussian_noise", severity)
        assert residual(corrupt(x, "gaussian_noise", severity), x).std() == pytest.approx(sigma, rel=0.03)
        sigma = get_params("speckle_noise", severity)
        assert residual(corrupt(x, "speckle_noise", severity), x).std() == pytest.approx(
            sigma * 128 / 255, rel=0.03
        )


def test_shot_noise_variance():
    x = constant()
    for severity in range(1, 6):
        c = get_params("shot_noise", severity)
        assert residual(corrupt(x, "shot_noise", severity), x).var() == pytest.approx(
            (128 / 255) / c, rel=0.05
        )


def test_impulse_noise_fraction_and_balance():
    x = constant(n=100)
    for severity in (1, 3, 5):
        p = get_params("impulse_noise", severity)
        out = corrupt(x, "impulse_noise", severity)
        salt, pepper = (out == 255).mean(), (out == 0).mean()
        assert salt + pepper == pytest.approx(p, rel=0.05)
        assert salt / (salt + pepper) == pytest.approx(0.5, abs=0.03)
        assert set(np.unique(out)) <= {0, 128, 255}


# ------------------------------------------------------------------------- oracle 5: kernels


def test_kernels_sum_to_one():
    for table in (params.CIFAR_PARAMS, params.TINY_PARAMS):
        for radius, alias in table["defocus_blur"]:
            assert blur.defocus_kernel(radius, alias).sum() == pytest.approx(1.0, abs=1e-12)
        for radius, sigma in table["motion_blur"]:
            assert ops.motion_kernel(radius, sigma).sum() == pytest.approx(1.0, abs=1e-12)
            assert len(ops.motion_kernel(radius, sigma)) == 2 * radius + 1


def test_defocus_kernels_match_spec():
    centres = [0.845, 0.619, 0.445]
    for severity, centre in enumerate(centres, start=1):
        k = blur.defocus_kernel(*get_params("defocus_blur", severity))
        assert k[8, 8] == pytest.approx(centre, abs=1e-3)
        assert np.count_nonzero(k > 1e-9) == 9  # a 3x3 Gaussian
    plus = blur.defocus_kernel(*get_params("defocus_blur", 4))
    for r, c in [(8, 8), (7, 8), (9, 8), (8, 7), (8, 9)]:
        assert plus[r, c] == pytest.approx(0.2, abs=1e-4)
    box = blur.defocus_kernel(*get_params("defocus_blur", 5))
    np.testing.assert_allclose(box[7:10, 7:10], 1 / 9, atol=1e-3)


@pytest.mark.parametrize("name", ["gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur"])
def test_constant_images_survive_blurs(name):
    for size in (32, 64):
        x = np.concatenate([constant(v, 2, size) for v in (0, 77, 200, 255)])
        for severity in range(1, 6):
            out = corrupt(x, name, severity)
            assert np.abs(out.astype(int) - x).max() <= 1, (name, severity)


def test_motion_offsets_follow_the_angle():
    offsets = ops.motion_offsets(3, np.array([0.0, 90.0, -45.0]))
    np.testing.assert_array_equal(offsets[0], [[i, 0] for i in range(7)])
    np.testing.assert_array_equal(offsets[1, :, 0], 0)
    np.testing.assert_array_equal(offsets[1, :, 1], range(7))
    assert (offsets[2, :, 0] == -offsets[2, :, 1]).all()
    # one bright pixel blurred at angle 0 reads to the right: it smears to the left
    x = np.zeros((1, 9, 9, 1))
    x[0, 4, 6] = 255
    out = ops.motion_blur(x, 2, 1.0, np.array([0.0]))
    assert out[0, 4, :7, 0].tolist()[2:] == [round(255 * w) for w in ops.motion_kernel(2, 1.0)[::-1]]


# ------------------------------------------------------------------------- oracle 6: identity


def test_floor_cast_is_exact_for_all_levels():
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(ops.to_uint8(ops.to_unit(levels)), levels)


def test_identity_parameters_return_input(bank32):
    x = bank32[:16]
    rngs = ops.image_rngs(0, 0, 1, range(len(x)))
    checks = {
        "gaussian sigma 0": noise.gaussian_noise(x, 0.0, rngs),
        "contrast 1": digital.contrast(x, 1.0),
        "zoom {1}": blur.zoom_blur(x, [1.0]),
        "elastic alpha 0": digital.elastic_transform(x, (0.0, 0.0, 0.0), rngs),
        "saturate (1, 0)": digital.saturate(x, (1.0, 0.0)),
        "brightness 0": weather.brightness(x, 0.0),
    }
    for label, out in checks.items():
        assert np.abs(out.astype(int) - x).max() <= 1, label


def test_hsv_matches_matplotlib(bank32):
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    x = ops.to_unit(bank32[:8])
    x[0, 0, :4] = [[0.5, 0.5, 0.5], [0, 0, 0], [1, 0, 1], [0.2, 0.9, 0.9]]  # grey, black, ties
    ours = ops.rgb_to_hsv(x)
    np.testing.assert_allclose(ops.hsv_to_rgb(ours), x, atol=1e-12)
    np.testing.assert_allclose(ours[..., 1:], rgb_to_hsv(x)[..., 1:], atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(ours), x, atol=1e-12)


# ------------------------------------------------------------------------- oracle 7: glass shuffle


def sequential_shuffle(image: np.ndarray, d: int, offsets: np.ndarray) -> np.ndarray:
    """The reference's loop for one image: pixel (h, w) takes the current value at (h+dy, w+dx)."""
    x = image.copy()
    positions = list(range(image.shape[0] - d, d, -1))
    for i, h in enumerate(positions):
        for j, w in enumerate(positions):
            dy, dx = offsets[i, j]
            x[h, w] = x[h + dy, w + dx]
    return x


@pytest.mark.parametrize("size,d", [(32, 1), (64, 2)])
def test_glass_shuffle_matches_sequential_loop(size, d):
    x = natural_bank(3, size, seed=9)
    steps = size - 2 * d
    offsets = np.random.default_rng(0).integers(-d, d, size=(3, steps, steps, 2))
    batched = blur.glass_shuffle(x, d, offsets)
    for k in range(3):
        np.testing.assert_array_equal(batched[k], sequential_shuffle(x[k], d, offsets[k]))


def test_glass_shuffle_moves_pixels_locally():
    x = natural_bank(2, 32, seed=4)
    offsets = np.random.default_rng(1).integers(-1, 1, size=(2, 30, 30, 2))
    out = blur.glass_shuffle(x, 1, offsets)
    np.testing.assert_array_equal(out[:, :2], x[:, :2])
    np.testing.assert_array_equal(out[:, :, :2], x[:, :, :2])
    for h in range(2, 32):
        for w in range(2, 32):
            options = [x[:, h, w], x[:, h - 1, w], x[:, h, w - 1], x[:, h - 1, w - 1]]
            assert np.any([np.all(out[:, h, w] == o, axis=-1) for o in options], axis=0).all()


# ------------------------------------------------------------------------- oracle 8: plasma / fog


def test_plasma_range_and_periodicity():
    rngs = ops.image_rngs(0, 9, 1, range(16))
    maps = weather.plasma_fractal(rngs, 32, 2.0)
    assert maps.shape == (16, 32, 32)
    np.testing.assert_allclose(maps.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1)
    inner = np.abs(np.diff(maps, axis=1)).mean()
    wrap = np.abs(maps[:, 0] - maps[:, -1]).mean()
    assert wrap < 2 * inner  # tileable: the seam is no rougher than the inside


def test_fog_never_exceeds_the_clean_maximum(bank32):
    for severity in range(1, 6):
        out = corrupt(bank32, "fog", severity)
        assert (out.max(axis=(1, 2, 3)) <= bank32.max(axis=(1, 2, 3))).all()


# ------------------------------------------------------------------------- oracle 9: list lengths


def test_zoom_and_pixelate_lists():
    assert [len(get_params("zoom_blur", s)) for s in range(1, 6)] == [7, 12, 16, 21, 26]
    assert get_params("zoom_blur", 1)[-1] == pytest.approx(1.06)
    assert [digital.pixelate_side(32, get_params("pixelate", s)) for s in range(1, 6)] == [30, 28, 27, 24, 20]
    sides = [digital.pixelate_side(64, get_params("pixelate", s, "tinyimagenet")) for s in range(1, 6)]
    assert sides == [57, 51, 44, 38, 32]


def scipy_clipped_zoom(image: np.ndarray, z: float) -> np.ndarray:
    size = image.shape[0]
    crop = int(np.ceil(size / z))
    top = (size - crop) // 2
    zoomed = ndimage.zoom(image[top : top + crop, top : top + crop], (z, z, 1), order=1)
    trim = (zoomed.shape[0] - size) // 2
    return zoomed[trim : trim + size, trim : trim + size]


@pytest.mark.parametrize("size", [32, 64])
def test_zoom_matches_scipy(size):
    x = ops.to_unit(natural_bank(2, size, seed=2))
    for z in (1.01, 1.06, 1.11, 1.25, 1.75, 2.25):
        ours = ops.clipped_zoom(x, z)
        for k in range(2):
            np.testing.assert_allclose(ours[k], scipy_clipped_zoom(x[k], z), atol=1e-12)


# ------------------------------------------------------------------------- oracle 10: spectra


def high_frequency_share(diff: np.ndarray, radius: float = 8) -> float:
    power = np.abs(np.fft.fftshift(np.fft.fft2(diff, axes=(1, 2)), axes=(1, 2))) ** 2
    power = power.mean(axis=(0, 3))
    size = diff.shape[1]
    yy, xx = np.mgrid[0:size, 0:size] - size // 2
    far = np.sqrt(yy**2 + xx**2) > radius
    return float(power[far].sum() / power.sum())


def test_spectra_of_noise_fog_and_contrast():
    bank = natural_bank(48, 32, seed=7)[::3]  # the 1/f images
    x = ops.to_unit(bank)
    assert high_frequency_share(ops.to_unit(corrupt(bank, "gaussian_noise", 3)) - x) > 0.6
    for severity in range(1, 6):
        assert high_frequency_share(ops.to_unit(corrupt(bank, "fog", severity)) - x) < 0.2
    # contrast (no clipping: it only pulls values toward the mean): |F(T(x) - x)| = |1 - c| |F(x)| off DC
    c = get_params("contrast", 2)
    diff = ops.to_unit(corrupt(bank, "contrast", 2)) - x
    ours = np.abs(np.fft.fft2(diff, axes=(1, 2)))
    expected = abs(1 - c) * np.abs(np.fft.fft2(x, axes=(1, 2)))
    ours[:, 0, 0] = expected[:, 0, 0] = 0
    assert np.abs(ours - expected).sum() / expected.sum() < 0.05


# ------------------------------------------------------------------------- parts and helpers


def test_canny_finds_the_outline_of_a_square():
    layer = np.zeros((1, 32, 32), np.uint8)
    layer[0, 8:24, 8:24] = 200
    edges = weather.canny(layer)[0]
    assert edges[8:24, 7:9].any() and edges[8:24, 23:25].any()
    assert not edges[12:20, 12:20].any() and not edges[:5].any()


def test_equalize_hist_spreads_levels():
    x = np.array([[[10, 10], [20, 30]]], np.uint8)
    np.testing.assert_array_equal(weather.equalize_hist(x)[0], [[0, 0], [128, 255]])
    flat = np.full((1, 2, 2), 7, np.uint8)
    np.testing.assert_array_equal(weather.equalize_hist(flat), flat)


def test_spatter_modes_change_the_image(bank32):
    water = corrupt(bank32[:8], "spatter", 3, seed=2)
    mud = corrupt(bank32[:8], "spatter", 5, seed=2)
    assert (water.astype(int) - bank32[:8] >= 0).all()  # water only adds turquoise
    assert (water != bank32[:8]).any() and (mud != bank32[:8]).any()


def test_frost_textures_procedural_and_user_folder(tmp_path, monkeypatch):
    textures, origin = weather.frost_textures(0.2)
    assert origin == "synthetic" and len(textures) == 5
    assert all(t.shape[0] >= 32 and t.shape[1] >= 32 and t.dtype == np.uint8 for t in textures)
    np.testing.assert_array_equal(
        weather.render_frost_texture(2), weather.render_frost_texture.__wrapped__(2)
    )
    from PIL import Image

    for k in range(6):
        Image.fromarray(np.full((200, 300, 3), 40 * k, np.uint8)).save(tmp_path / f"frost{k}.png")
    monkeypatch.setenv(weather.FROST_DIR_ENV, str(tmp_path))
    weather.frost_textures.cache_clear()
    try:
        user, origin = weather.frost_textures(0.2)
        assert origin.startswith("user:") and len(user) == 5 and user[0].shape == (40, 60, 3)
        assert [int(t[0, 0, 0]) for t in user] == [0, 40, 80, 120, 160]  # the sixth is never used
    finally:
        monkeypatch.delenv(weather.FROST_DIR_ENV)
        weather.frost_textures.cache_clear()


def test_resize_bilinear_keeps_thin_lines():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, 52] = 255  # a one-pixel line survives sparse sampling at 0.2 (no anti-aliasing)
    small = weather.resize_bilinear(image, 0.2)
    assert small.shape == (20, 20, 3) and small.max() == 255


def test_gallery_builds_a_grid():
    import matplotlib

    matplotlib.use("Agg")
    fig = gallery(natural_bank(1)[0], corruptions=["fog", "pixelate"], severities=(1, 5))
    assert len(fig.axes) == 2 * 3
    import matplotlib.pyplot as plt

    plt.close(fig)
