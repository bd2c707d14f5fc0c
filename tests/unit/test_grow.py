"""Tests for gearlib.grow: exact materialisation, budgets, feasibility, the Firefly step and the drivers.

Tiny widths (2-6 channels), K = 3 new neurons and a few 32x32 batches keep the whole file fast on a CPU.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from gearlib.grow import (
    Candidate,
    UnitSelection,
    check_feasible,
    firefly_step,
    materialise,
    score_candidates,
    select_candidates,
    train_perturbations,
    zero_growth_tensors,
)
from gearlib.grow.candidate import FoldedBN
from gearlib.models import ARCHS, build, size_fraction, widths_of
from gearlib.train.stage import StageConfig, clean_cross_entropy, train_stage

K = 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convs run fastest single-threaded (and do not thrash a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def learnable_batches(n=64, classes=4, batch=16, seed=0):
    """Class-dependent smooth colour patterns plus noise: a small set a thin net can learn."""
    g = torch.Generator().manual_seed(seed)
    protos = F.interpolate(
        torch.rand(classes, 3, 4, 4, generator=g), size=32, mode="bilinear", align_corners=False
    )
    y = torch.arange(n) % classes
    x = (0.5 * protos[y] + 0.5 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def randomise_bn(model):
    """Random BN affine parameters and running statistics measured on random images (so signals neither
    vanish nor explode with depth, and BN bookkeeping errors would show)."""
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 3, 32, 32, generator=g))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    return model.eval()


def random_selection(candidate, seed=0):
    g = torch.Generator().manual_seed(seed)
    selection = {}
    for name, unit in candidate.units.items():
        split = torch.nonzero(torch.rand(unit.width, generator=g) < 0.5).flatten().tolist()
        new = torch.nonzero(torch.rand(unit.k, generator=g) < 0.5).flatten().tolist()
        selection[name] = UnitSelection(split, new)
    return selection


def trained_candidate(arch, grow_stream=True, width=4):
    torch.manual_seed(0)
    model = randomise_bn(build(arch, width, num_classes=5)).eval()
    candidate = Candidate(model, K, generator=torch.Generator().manual_seed(1), grow_stream=grow_stream)
    with torch.no_grad():  # B starts at U(+-0.01); enlarge it so every term visibly matters
        for p in candidate.perturbations():
            if p.abs().max() < 0.02:
                p.mul_(10)
    train_perturbations(candidate, learnable_batches(n=32), clean_cross_entropy, progress=False)
    return model, candidate


@pytest.mark.parametrize("arch", ARCHS)
def test_materialisation_equals_candidate_network(arch):
    model, candidate = trained_candidate(arch)
    selection = random_selection(candidate)
    assert any(sel.split for sel in selection.values()) and any(sel.new for sel in selection.values())
    grown = materialise(candidate, selection).eval()
    candidate.keep_only(selection)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got, backbone = candidate(x), grown(x), model(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert (got - backbone).abs().max() > 1e-3  # growth changed the function, so the check has teeth


def test_materialisation_resnet_inner_only():
    model, candidate = trained_candidate("resnet18", grow_stream=False)
    assert sorted(candidate.units) == sorted(
        n for n in model.growth_graph().groups[0] if n.startswith("inner")
    )
    selection = random_selection(candidate, seed=1)
    grown = materialise(candidate, selection).eval()
    candidate.keep_only(selection)
    assert [grown.widths[i] for i in (0, 3, 6, 9)] == [model.widths[i] for i in (0, 3, 6, 9)]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(grown(x), candidate(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_perturbations_preserve_backbone(arch):
    torch.manual_seed(0)
    model = randomise_bn(build(arch, 4, num_classes=5)).eval()
    candidate = Candidate(model, K, generator=torch.Generator().manual_seed(1))
    zero_growth_tensors(candidate)
    grown = materialise(candidate, random_selection(candidate)).eval()
    assert sum(grown.widths) > sum(model.widths)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(grown(x), model(x), atol=1e-5, rtol=0)


def test_official_zero_depthwise_filters():
    _, candidate = trained_candidate("mobilenet_v1")
    selection = {name: UnitSelection([0], [0, 2]) for name in candidate.units}
    grown = materialise(candidate, selection, dw_new_init="official_zero")
    trained = materialise(candidate, selection, dw_new_init="trained")
    for block, block_t in zip(grown.blocks, trained.blocks):
        assert torch.equal(block.dw.weight[-2:], torch.zeros_like(block.dw.weight[-2:]))
        assert block_t.dw.weight[-2:].abs().sum() > 0
        assert torch.equal(block.dw.weight[:-2], block_t.dw.weight[:-2])


def pretrained(arch, width=4, seed=0, epochs=2):
    torch.manual_seed(seed)
    model = build(arch, width, num_classes=4)
    config = StageConfig(lr=0.05, progress=False)
    train_stage(model, learnable_batches(seed=seed), epochs, config, loss_fn=clean_cross_entropy)
    return model


def eval_loss(model, batches):
    model.eval()
    with torch.no_grad():
        return sum(float(F.cross_entropy(model(x), y)) for x, y in batches) / len(batches)


@pytest.mark.parametrize("arch", ARCHS)
def test_firefly_step_budget_and_loss(arch):
    model = pretrained(arch)
    batches = learnable_batches()
    before = eval_loss(model, batches)
    gamma = 0.5
    grown, record = firefly_step(
        model,
        batches,
        gamma,
        K,
        loss_fn=clean_cross_entropy,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert widths_of(model) == record.widths_before  # the backbone is left alone
    assert grown.training
    # budget: M = floor(gamma * sum c) per group; keep the M + 1 best (ties could add more)
    for group, budget, kept in zip(record.groups, record.budgets, record.kept):
        assert budget == int(gamma * sum(record.widths_before[record.unit_names.index(n)] for n in group))
        assert kept == budget + 1  # continuous scores: no ties
    assert sum(record.split) + sum(record.added) == sum(record.kept)
    assert [
        b + s + a for b, s, a in zip(record.widths_before, record.split, record.added)
    ] == record.widths_after
    assert widths_of(grown) == record.widths_after
    assert record.size_after == pytest.approx(size_fraction(grown))
    # the trained perturbations do not make the training loss worse (book/notes/growth.md#notes-growth-function)
    assert eval_loss(grown, batches) <= before * 1.01
    # the grown model rebuilt from its width list has the same parameter shapes
    rebuilt = build(arch, widths_of(grown), num_classes=4)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in grown.state_dict().items()
    }


def grow_seeded(model, batches, growth_ratio=0.5, seed=5, **options):
    """One growth step with K candidates, clean CE and a seeded generator."""
    return firefly_step(
        model,
        batches,
        growth_ratio,
        K,
        loss_fn=clean_cross_entropy,
        generator=torch.Generator().manual_seed(seed),
        progress=False,
        **options,
    )


def test_firefly_step_is_deterministic():
    model = pretrained("vgg19", epochs=1)
    batches = learnable_batches(n=32)
    runs = [grow_seeded(model, batches)[0].state_dict() for _ in range(2)]
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize("arch", ["vgg19", "mobilenet_v1"])
def test_channels_last_growth_matches_default_layout(arch):
    """NHWC growth (the profiles' default) trains the same perturbations and scores up to rounding."""
    model = pretrained(arch, epochs=1)
    batches = learnable_batches(n=32)
    records = [grow_seeded(model, batches, channels_last=cl)[1] for cl in (False, True)]
    for name in ("split_scores", "new_scores"):
        ours = torch.tensor([v for unit in getattr(records[1], name) for v in unit])
        ref = torch.tensor([v for unit in getattr(records[0], name) for v in unit])
        assert torch.allclose(ours, ref, rtol=1e-3, atol=1e-6), name
    assert records[0].perturb_losses == pytest.approx(records[1].perturb_losses, rel=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_factored_training_pass_matches_the_one_convolution_layout(arch):
    """The perturbation pass with W kept apart from V, A and B (Candidate.factored) gives the same loss and
    the same gradients of every growth tensor, in float64, with some candidates switched off."""
    _, trained = trained_candidate(arch)
    trained.keep_only(random_selection(trained, seed=3))
    x, y = learnable_batches(n=8, batch=8)[0]
    results = []
    for factored in (True, False):
        candidate = copy.deepcopy(trained).double()
        for _, module in candidate.wrapped_layers():
            if hasattr(module, "factored"):
                module.factored = factored
        loss = clean_cross_entropy(candidate(x.double()), y)
        loss.backward()
        results.append((loss.detach(), [p.grad for p in candidate.perturbations()]))
    (loss, grads), (ref_loss, ref_grads) = results
    assert torch.allclose(loss, ref_loss, rtol=1e-12)
    assert len(grads) == len(ref_grads) and all(g is not None for g in grads)
    for ours, ref in zip(grads, ref_grads):
        assert torch.allclose(ours, ref, rtol=1e-9, atol=1e-12)


def _loss_with_scaled_candidate(candidate, unit, kind, index, factor, x, y):
    """Loss after scaling candidate `index` of `unit` by `factor` in every layer that writes the unit: the
    split direction V (kind 0) or the new neuron's fan-in A (kind 1). This is t_c = factor (book/notes/growth.md#notes-growth-scoring)."""
    producers = [m for _, m in candidate.wrapped_layers() if getattr(m, "dst", None) is unit]
    tensors = [getattr(m, "V" if kind == 0 else "A") for m in producers]
    saved = [t[index].clone() for t in tensors]
    with torch.no_grad():
        for t in tensors:
            t[index] *= factor
        loss = clean_cross_entropy(candidate(x), y).item()
        for t, row in zip(tensors, saved):
            t[index] = row
    return loss


@pytest.mark.parametrize("arch", ARCHS)
def test_scores_are_loss_derivatives(arch):
    """s_c = dL/dt_c at t = 1 (book/notes/growth.md#notes-growth-scoring), checked against central differences of the loss in float64
    for the largest split and new-neuron score of every unit (ResNet's tied units have several producers)."""
    _, candidate = trained_candidate(arch)
    candidate = candidate.double()
    x, y = learnable_batches(n=8, batch=8)[0]
    x = x.double()
    scores = score_candidates(candidate, [(x, y)], clean_cross_entropy, progress=False)
    delta = 1e-7  # small enough that no ReLU changes side; float64 keeps the rounding near 1e-9
    for name, unit in candidate.units.items():
        for kind in (0, 1):
            score = scores[name][kind]
            index = int(score.abs().argmax())
            up, down = (
                _loss_with_scaled_candidate(candidate, unit, kind, index, 1 + sign * delta, x, y)
                for sign in (1, -1)
            )
            assert (up - down) / (2 * delta) == pytest.approx(float(score[index]), rel=1e-4, abs=1e-8), (
                name,
                kind,
            )


def test_scores_are_the_same_when_a_growing_output_is_changed_in_place():
    """The scoring pass differentiates explicit multipliers t, so an in-place op on a growing layer's output
    (VGG's in-place ReLU, or the doubling below) gives the scores of the same op out of place."""
    _, candidate = trained_candidate("vgg19")
    folded = [m for m in candidate.modules() if isinstance(m, FoldedBN)][0]
    batches = learnable_batches(n=8, batch=8)
    scores = {}
    for name, hook in (("in place", lambda m, i, out: out.mul_(2)), ("copy", lambda m, i, out: out * 2)):
        handle = folded.register_forward_hook(hook)
        scores[name] = score_candidates(candidate, batches, clean_cross_entropy, progress=False)
        handle.remove()
    plain = score_candidates(candidate, batches, clean_cross_entropy, progress=False)
    for unit in scores["copy"]:
        for kind in (0, 1):
            torch.testing.assert_close(scores["in place"][unit][kind], scores["copy"][unit][kind])
    assert any(not torch.allclose(scores["copy"][u][0], plain[u][0]) for u in plain)  # the hook did act


def test_selection_keeps_ties():
    scores = {
        "a": (torch.tensor([-3.0, 0.0, 1.0]), torch.tensor([-1.0, -1.0])),
        "b": (torch.tensor([2.0]), torch.tensor([-1.0, 5.0])),
    }
    selection, thresholds = select_candidates(scores, [["a", "b"]], [1])
    # M = 1: tau = 2nd smallest = -1, and three candidates tie at -1
    assert thresholds == [-1.0]
    assert selection["a"] == UnitSelection([0], [0, 1]) and selection["b"] == UnitSelection([], [0])
    selection, _ = select_candidates(scores, [["a", "b"]], [0])
    assert selection["a"] == UnitSelection([0], []) and selection["b"] == UnitSelection([], [])


def test_infeasible_budget_raises():
    # book/notes/growth.md#notes-growth-feasibility: K = 40, c_0 = 45 -> gamma < 1 + 40/45 = 1.889
    check_feasible("mobilenet_v1", 45, 1.8, 40)
    with pytest.raises(ValueError, match="infeasible"):
        check_feasible("mobilenet_v1", 45, 2.0, 40)
    with pytest.raises(ValueError, match="gamma"):
        check_feasible("vgg19", 4, -0.1, 3)
    with pytest.raises(ValueError, match="infeasible"):
        firefly_step(
            build("vgg19", 4),
            learnable_batches(n=16),
            1 + K / 4,
            K,
            loss_fn=clean_cross_entropy,
            progress=False,
        )


def test_bad_options_raise():
    model, batches = build("vgg19", 3), learnable_batches(n=16)
    with pytest.raises(ValueError, match="official"):
        firefly_step(model, batches, 0.5, K, loss_fn=clean_cross_entropy, rmsprop="fast", progress=False)
    with pytest.raises(ValueError, match="dw_new_init"):
        firefly_step(model, batches, 0.5, K, loss_fn=clean_cross_entropy, dw_new_init="zero", progress=False)


def test_grown_network_learns_faster_than_backbone():
    """Growth adds useful capacity: after growth, a few epochs reach a lower training loss than the same
    epochs on the ungrown backbone (a 2-channel VGG-19 underfits this set)."""
    batches = learnable_batches(n=128, batch=32)
    torch.manual_seed(0)
    backbone = build("vgg19", 2, num_classes=4)
    config = StageConfig(lr=0.05, progress=False, weight_decay=0.0)
    train_stage(backbone, batches, 3, config, loss_fn=clean_cross_entropy)
    grown, _ = firefly_step(
        backbone,
        batches,
        2.0,
        6,
        loss_fn=clean_cross_entropy,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    plain = copy.deepcopy(backbone)
    loss_plain = train_stage(plain, batches, 4, config, loss_fn=clean_cross_entropy).metrics[-1]["loss"]
    loss_grown = train_stage(grown, batches, 4, config, loss_fn=clean_cross_entropy).metrics[-1]["loss"]
    assert loss_grown < 0.9 * loss_plain


# ---------------------------------------------------------------- growth to a size (N-shot)


def test_growth_to_a_target_size_lands_on_it():
    """With target_fraction, gamma comes from the scores so that the grown size reaches the target."""
    torch.manual_seed(3)
    model = build("vgg19", 3, num_classes=4)
    start = size_fraction(model)
    grown, record = firefly_step(
        model, learnable_batches(n=32), 2.0, K, loss_fn=clean_cross_entropy, progress=False,
        generator=torch.Generator().manual_seed(0), target_fraction=3 * start,
    )  # fmt: skip
    assert record.target_fraction == 3 * start and record.growth_ratio > 0
    assert 3 * start <= size_fraction(grown) < 1.15 * 3 * start
    assert record.size_after == pytest.approx(size_fraction(grown))
