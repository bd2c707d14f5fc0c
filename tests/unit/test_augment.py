"""Tests for the batched AugMix/ERA ops and view pipelines (gearlib.augment).

Batched ops are checked against torchvision's functional ops; pipelines for views, dtype, range and seeds.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gearlib.augment import AUGMIX_OPS, augmix, defaults, era, make_augment, mix_views, ops, reference
from gearlib.augment.augmix import AugMixOps
from gearlib.augment.factory import AUGMENT_NAMES


def _images(n: int = 16, seed: int = 0, size: int = 32) -> torch.Tensor:
    """Smooth-ish uint8 images with a flat one, a low-contrast one and a one-level channel."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g).float()
    x = F.avg_pool2d(x, 3, 1, 1).round().to(torch.uint8)
    x[0] = 7
    x[1] = torch.randint(100, 110, (3, size, size), generator=g).to(torch.uint8)
    x[2, 0] = 0
    x[2, 0, 0, 0] = 255
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


MAGNITUDES = {
    "autocontrast": lambda n: torch.zeros(n),
    "equalize": lambda n: torch.zeros(n),
    "posterize": lambda n: torch.arange(n) % 9.0,
    "solarize": lambda n: torch.linspace(0, 256, n).floor(),
    "rotate": lambda n: torch.linspace(-30, 30, n),
    "shear_x": lambda n: torch.linspace(-0.3, 0.3, n),
    "shear_y": lambda n: torch.linspace(-0.3, 0.3, n),
    "translate_x": lambda n: torch.linspace(-12, 12, n).round(),
    "translate_y": lambda n: torch.linspace(-12, 12, n).round(),
}


@pytest.mark.parametrize("name", AUGMIX_OPS)
def test_batched_op_matches_torchvision(name: str) -> None:
    x = _images(18)
    n = x.shape[0]
    k = torch.full((n,), AUGMIX_OPS.index(name))
    mag = MAGNITUDES[name](n)
    batched = ops.from_unit(ops.apply_ops(ops.to_unit(x), k, mag), torch.uint8)
    ref = reference.reference_apply_ops(x, k, mag)
    diff = (batched.int() - ref.int()).abs()
    assert int(diff.max()) <= 1, f"{name}: max diff {int(diff.max())} levels"
    if name in ("equalize", "posterize", "solarize", "translate_x", "translate_y"):
        assert int(diff.max()) == 0


def test_non_integer_translate_uses_bilinear_warp() -> None:
    x = _images(4).float() / 255
    half = ops.translate_x(x, 0.5)
    assert torch.allclose(half[..., 1:-1], 0.5 * (x[..., 1:-1] + x[..., :-2]), atol=1e-5)


def test_mixed_per_sample_dispatch_matches_reference() -> None:
    x = _images(40, seed=3)
    g = _gen(1)
    k = torch.randint(-1, len(AUGMIX_OPS), (x.shape[0],), generator=g)
    mag = ops.augmix_magnitudes(k, 10.0, 32, 32, g)
    batched = ops.from_unit(ops.apply_ops(ops.to_unit(x), k, mag), torch.uint8)
    ref = reference.reference_apply_ops(x, k, mag)
    assert int((batched.int() - ref.int()).abs().max()) <= 1
    untouched = k < 0
    assert torch.equal(batched[untouched], x[untouched])


PUBLIC_OPS = {
    "autocontrast": lambda x: ops.autocontrast(x),
    "equalize": lambda x: ops.equalize(x),
    "posterize": lambda x: ops.posterize(x, 3),
    "solarize": lambda x: ops.solarize(x, torch.full((x.shape[0],), 128.0)),
    "rotate": lambda x: ops.rotate(x, 17.0),
    "shear_x": lambda x: ops.shear_x(x, -0.2),
    "shear_y": lambda x: ops.shear_y(x, 0.2),
    "translate_x": lambda x: ops.translate_x(x, 3),
    "translate_y": lambda x: ops.translate_y(x, -2.5),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_OPS))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_public_ops_keep_shape_dtype_and_range(name: str, dtype: torch.dtype) -> None:
    x = _images(6)
    x = x if dtype == torch.uint8 else x.float() / 255
    y = PUBLIC_OPS[name](x)
    assert y.shape == x.shape and y.dtype == x.dtype
    hi = 255 if dtype == torch.uint8 else 1.0
    assert float(y.min()) >= 0 and float(y.max()) <= hi
    assert not torch.equal(y, x), f"{name} left the images unchanged"


def test_float_ops_match_torchvision_float_ops() -> None:
    import torchvision.transforms.functional as TF

    x = _images(4).float() / 255
    assert torch.allclose(ops.autocontrast(x), TF.autocontrast(x), atol=1e-6)
    assert torch.allclose(ops.solarize(x, 128.0), TF.solarize(x, 128.0 / 255), atol=1e-6)
    rot = TF.rotate(x, 11.0, interpolation=TF.InterpolationMode.BILINEAR)
    assert torch.allclose(ops.rotate(x, 11.0), rot, atol=1e-5)


def test_zero_strength_ops_are_identity() -> None:
    x = _images(5).float() / 255
    for y in (
        ops.rotate(x, 0.0),
        ops.shear_x(x, 0.0),
        ops.shear_y(x, 0.0),
        ops.translate_x(x, 0),
        ops.posterize(x, 8),
        ops.solarize(x, 256.0),
    ):
        assert torch.allclose(y, x, atol=1e-6)


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="NCHW"):
        ops.autocontrast(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="dtype"):
        ops.equalize(torch.zeros(1, 3, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="posterize bits"):
        ops.posterize(torch.zeros(2, 3, 8, 8), 9)
    with pytest.raises(ValueError, match="shape"):
        ops.rotate(torch.zeros(2, 3, 8, 8), torch.zeros(3))


# ---------------------------------------------------------------------------------------------------
# pipelines


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_era_views_shape_dtype_range(dtype: torch.dtype) -> None:
    x = _images(8)
    x = x if dtype == torch.uint8 else x.float() / 255
    views = era(x, generator=_gen())
    assert len(views) == 4 and views[0] is x
    hi = 255 if dtype == torch.uint8 else 1.0
    for v in views:
        assert v.shape == x.shape and v.dtype == x.dtype and v.device == x.device
        assert float(v.min()) >= 0 and float(v.max()) <= hi
    for v in views[1:]:
        assert (v.float() - x.float()).abs().mean() > 0


@pytest.mark.parametrize(
    "width,depth,views",
    [
        (1, 1, 0),
        (3, 1, 0),
        (1, 3, 0),
        (1, 1, 3),
        (3, 3, 0),
        (3, 1, 3),
        (1, 3, 3),
        (1, 3, 2),
        (1, 3, 4),
        (3, -1, 3),
    ],
)
def test_table8_sweep_view_counts(width: int, depth: int, views: int) -> None:
    x = _images(4).float() / 255
    out = era(x, width=width, depth=depth, views=views, generator=_gen())
    assert len(out) == max(views, 1)
    if views >= 2:
        assert out[0] is x


def test_augmix_default_views() -> None:
    x = _images(6)
    out = augmix(x, generator=_gen())
    assert len(out) == 3 and out[0] is x and all(v.dtype == torch.uint8 for v in out)
    single = augmix(x, views=1, generator=_gen())
    assert len(single) == 1 and not torch.equal(single[0], x)


def test_severity_zero_width_zero_depth_zero_return_input() -> None:
    x = _images(4)
    for kwargs in ({"severity": 0}, {"width": 0}, {"depth": 0}):
        views = augmix(x, generator=_gen(), **kwargs)
        assert len(views) == 3
        assert all(torch.equal(v, x) for v in views)
    assert torch.equal(era(x, severity=0, views=0)[0], x)


def test_same_seed_same_views_different_seed_different_views() -> None:
    x = _images(8).float() / 255
    for fn in (era, augmix):
        a = fn(x, generator=_gen(5))
        b = fn(x, generator=_gen(5))
        c = fn(x, generator=_gen(6))
        assert all(torch.equal(u, v) for u, v in zip(a, b))
        assert not torch.equal(a[1], c[1])
    torch.manual_seed(3)
    a = era(x)
    torch.manual_seed(3)
    b = era(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


class _MarkingOps:
    """A fake op set: each applied op sets the next free "mark" pixel of the image to 1.

    Pixel 0 holds an image id that ops never touch, so the views reveal both the chain depth and whether
    every chain stayed with its own sample.
    """

    names = ("a", "b")
    is_identity = False

    def apply(self, x: torch.Tensor, op_index: torch.Tensor, generator: object = None) -> torch.Tensor:
        assert bool(((op_index >= -1) & (op_index < 2)).all())
        rows = (op_index >= 0).nonzero().squeeze(1)
        done = (x[rows, 0, 0, 1:] > 0).sum(-1)
        x[rows, 0, 0, 1 + done] = 1.0
        return x


def _marked_batch(n: int) -> torch.Tensor:
    x = torch.zeros(n, 1, 1, 4)
    x[:, 0, 0, 0] = torch.arange(1, n + 1) / (n + 1)
    return x


def test_chain_depth_fixed_and_stochastic_and_rows_keep_their_sample() -> None:
    x = _marked_batch(60)
    for depth, expected in ((3, {3}), (1, {1}), (-1, {1, 2, 3})):
        views = mix_views(x, _MarkingOps(), width=1, depth=depth, views=4, generator=_gen())
        for v in views[1:]:
            assert torch.allclose(v[..., 0], x[..., 0])  # (1 - m) id + m id: chains kept their sample
            depths = (v[:, 0, 0, 1:] > 0).sum(-1)  # m > 0 almost surely
            assert set(depths.tolist()) == expected


def test_mixing_is_convex_combination_of_chains() -> None:
    # With an op set that maps every image to 1, each view is (1 - m) x + m, m in [0, 1], per sample.
    class Ones(_MarkingOps):
        def apply(self, x: torch.Tensor, op_index: torch.Tensor, generator: object = None) -> torch.Tensor:
            x[op_index >= 0] = 1.0
            return x

    x = torch.zeros(64, 1, 2, 2)
    views = mix_views(x, Ones(), width=3, depth=1, views=3, generator=_gen())
    m = views[1][:, 0, 0, 0]
    assert torch.allclose(views[1], m.view(-1, 1, 1, 1).expand_as(x))
    assert float(m.min()) >= 0 and float(m.max()) <= 1 and float(m.std()) > 0.1  # Beta(1, 1) spread


def test_op_subset_and_reference_augmix() -> None:
    x = _images(4)
    only_rot = era(x, ops=["rotate"], views=2, generator=_gen())
    assert len(only_rot) == 2
    one = reference.reference_augmix(x[3], generator=_gen())
    assert one.dtype == torch.uint8 and one.shape == x[3].shape
    with pytest.raises(ValueError, match="unknown op set"):
        era(x, ops=["rotate", "colour"])
    with pytest.raises(ValueError, match="severity"):
        AugMixOps(severity=11)


def test_named_op_groups_are_the_fixed_indices() -> None:
    # The op index is part of the interface of apply_ops and augmix_magnitudes: these are the indices the
    # ops always had, so a reordering of AUGMIX_OPS would fail here and not silently change the draws.
    assert AUGMIX_OPS == ops.POINT_OPS + ops.GEOMETRIC_OPS
    assert [ops.OP_INDEX[n] for n in ops.POINT_OPS] == [0, 1, 2, 3]
    assert [ops.OP_INDEX[n] for n in ops.GEOMETRIC_OPS] == [4, 5, 6, 7, 8]
    assert [ops.OP_INDEX[n] for n in ops.SHEAR_OPS] == [5, 6]
    assert [ops.OP_INDEX[n] for n in ops.TRANSLATE_OPS] == [7, 8]
    k = torch.arange(-1, len(AUGMIX_OPS))
    assert ops.op_mask(k, *ops.GEOMETRIC_OPS).tolist() == (k >= 4).tolist()
    assert ops.op_mask(k.numpy(), *ops.TRANSLATE_OPS).tolist() == ((k == 7) | (k == 8)).tolist()
    with pytest.raises(ValueError, match="choose from"):
        ops.op_mask(k, "brightness")


def test_defaults_are_used_by_every_entry_point() -> None:
    assert tuple(defaults.ERA_DEFAULTS) == (1, 3, 4) and tuple(defaults.ERA_J3) == (1, 3, 3)
    assert tuple(defaults.AUGMIX_DEFAULTS) == (3, -1, 3)
    assert (defaults.AUGMIX_SEVERITY, defaults.MIX_ALPHA, defaults.JSD_LAMBDA) == (3.0, 1.0, 12.0)
    for name, mixing in (("era", defaults.ERA_DEFAULTS), ("era_j3", defaults.ERA_J3)):
        knobs = make_augment(name).knobs
        assert {k: knobs[k] for k in mixing._fields} == mixing.knobs()
    assert make_augment("augmix").knobs["severity"] == defaults.AUGMIX_SEVERITY
    # era() and augmix() without knobs give exactly the views of their presets.
    x = _images(4)
    for fn, name in ((era, "era"), (augmix, "augmix")):
        plain, named = fn(x, generator=_gen(5)), make_augment(name)(x, generator=_gen(5))
        assert len(plain) == len(named) and all(torch.equal(a, b) for a, b in zip(plain, named))


def test_make_augment_names_and_errors() -> None:
    x = _images(4).float() / 255
    clean = make_augment("none")(x)
    assert len(clean) == 1 and clean[0] is x
    for name in AUGMENT_NAMES:
        fn = make_augment(name)
        out = fn(x, generator=_gen())
        assert len(out) == fn.num_views
    assert make_augment("era").num_views == 4 and make_augment("era_j3").num_views == 3
    assert len(make_augment("era", views=0)(x, generator=_gen())) == 1
    with pytest.raises(ValueError, match="choose from"):
        make_augment("randaugment")
    with pytest.raises(ValueError, match="valid"):
        make_augment("augmix", chains=3)
    with pytest.raises(ValueError, match="valid"):
        make_augment("none", width=2)
    for bad in ({"width": -1}, {"depth": -2}, {"views": -1}, {"alpha": 0.0}, {"severity": 11}):
        with pytest.raises(ValueError):
            make_augment("era", **bad)
    with pytest.raises(ValueError, match="PRIME"):
        make_augment("prime", sigma_max=-1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_batch_stays_on_gpu_and_matches_ops() -> None:
    x = _images(8).cuda()
    views = era(x, generator=_gen())
    assert all(v.is_cuda and v.dtype == torch.uint8 for v in views)
    k = torch.arange(x.shape[0]) % len(AUGMIX_OPS)
    mag = ops.augmix_magnitudes(k, 3.0, 32, 32, _gen())
    on_gpu = ops.apply_ops(ops.to_unit(x), k, mag).cpu()
    on_cpu = ops.apply_ops(ops.to_unit(x.cpu()), k, mag)
    assert torch.allclose(on_gpu, on_cpu, atol=2e-3)
