"""FLOATS's sparsity: exact per-layer counts at init, a total that prune-regrow never changes (FLOAT Eq. 5),
zero weights and momentum off the mask, the prune-rate schedule, whole-channel masks, and saved masks."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gearlib.adversarial.layers import ADVERSARIAL, CLEAN, NoisyConv2d, NoisyMixin, conditioned
from gearlib.adversarial.models import FLOAT, build_adversarial
from gearlib.adversarial.sparse import (
    SparseMomentum,
    _allocate,
    channel_counts,
    layer_densities,
    masked_layers,
    prune_rate,
)

STEPS = 2  # optimizer steps between epoch ends
EPOCHS = 3


def setup(density, granularity="weight", seed=0, epochs=EPOCHS):
    torch.manual_seed(seed)
    model = build_adversarial("resnet10", FLOAT, 8, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sparse = SparseMomentum(
        model,
        density,
        epochs * STEPS,
        granularity=granularity,
        generator=torch.Generator().manual_seed(seed),
    )
    return model, optimizer, sparse


def train(model, optimizer, sparse, steps=STEPS, seed=0):
    g = torch.Generator().manual_seed(seed)
    model.train()
    for i in range(steps):
        x, y = torch.rand(16, 3, 32, 32, generator=g), torch.randint(10, (16,), generator=g)
        with conditioned(model, ADVERSARIAL if i % 2 else CLEAN):  # both paths: noise on and off
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sparse.after_step(optimizer)


def layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NoisyMixin)]


def nnz(m):
    return int((m.mask_clean != 0).sum())


def assert_masks_hold(model, optimizer):
    """Both paths share the mask; weights are exactly zero off it."""
    for _, m in layers(model):
        if m.mask_clean is None:
            assert m.mask_adv is None
            continue
        assert torch.equal(m.mask_clean, m.mask_adv)
        assert m.mask_clean.shape == m.weight.shape and m.mask_clean.dtype == m.weight.dtype
        off = m.mask_clean == 0
        assert torch.all(m.weight[off] == 0)


# -- FLOATS-i -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("density", [0.1, 0.3])
def test_weight_masks_exact_at_init_and_total_constant_through_prune_regrow(density):
    model, optimizer, sparse = setup(density)
    expected = {n: math.floor(density * m.weight.numel()) for n, m in layers(model)}
    assert {n: nnz(m) for n, m in layers(model)} == expected
    total = sum(expected.values())
    weights = sum(m.weight.numel() for _, m in layers(model))
    assert sparse.budget == total <= density * weights  # FLOAT, Eq. 5
    assert sparse.density() == pytest.approx(total / weights)
    assert_masks_hold(model, optimizer)
    counts = [expected]
    for epoch in range(EPOCHS):
        train(model, optimizer, sparse, seed=epoch)
        assert_masks_hold(model, optimizer)
        record = sparse.end_epoch(optimizer)
        assert_masks_hold(model, optimizer)
        now = {n: nnz(m) for n, m in layers(model)}
        assert sum(now.values()) == total == record["nonzero"] == record["kept"]
        assert record["pruned"] == record["regrown"] > 0
        assert {n: v["active"] for n, v in record["layers"].items()} == now
        assert record["layers"] and all(0 <= v["density"] <= 1 for v in record["layers"].values())
        assert sum(v["score"] for v in record["layers"].values()) == pytest.approx(1.0)
        assert record["prune_rate"] == pytest.approx(prune_rate((epoch + 1) * STEPS, EPOCHS * STEPS))
        assert layer_densities(model) == pytest.approx({n: v["density"] for n, v in record["layers"].items()})
        counts.append(now)
    # momentum reallocates weights between layers while the total stays fixed
    assert any(counts[i] != counts[i + 1] for i in range(EPOCHS))


def test_effective_weight_with_noise_is_zero_off_the_mask():
    model, optimizer, sparse = setup(0.2)
    train(model, optimizer, sparse)
    sparse.end_epoch(optimizer)
    train(model, optimizer, sparse, seed=1)
    model.condition.noise = 1.0
    model.condition.path = "adv"
    model.condition.bn = "adv"
    for _, m in layers(model):
        eff = m.effective_weight()
        on = m.mask_adv != 0
        assert torch.all(eff[~on] == 0)
        if m.alpha is not None:
            assert not torch.equal(eff[on], m.weight[on])  # the noise is there, on the mask only


def test_pruned_weights_keep_their_momentum_and_regrowth_follows_it():
    model, optimizer, sparse = setup(0.1)
    train(model, optimizer, sparse)
    name, m = [(n, m) for n, m in layers(model) if m.mask_clean is not None][3]
    buf = optimizer.state[m.weight]["momentum_buffer"]
    off = m.mask_clean == 0
    assert float(buf[off].abs().sum()) > 0  # gradients reach pruned weights (dense_mask_grad)
    assert torch.all(m.weight[off] == 0)  # ... while the weights themselves stay pruned
    free_momentum = buf.abs().masked_fill(~off, -1.0).flatten()
    before = m.mask_clean.clone()
    record = sparse.end_epoch(optimizer)
    grown = ((m.mask_clean != 0) & (before == 0)).flatten()
    if record["layers"][name]["regrown"] > 0 and bool(grown.any()):
        # the regrown positions are among the free positions with the largest momentum before the epoch end
        top = free_momentum.topk(int(grown.sum()) + record["layers"][name]["pruned"]).indices
        assert set(grown.nonzero().flatten().tolist()) <= set(top.tolist())


def test_regrown_weights_and_their_momentum_start_at_zero():
    model, optimizer, sparse = setup(0.1)
    train(model, optimizer, sparse)
    before = {n: m.mask_clean.clone() for n, m in layers(model)}
    record = sparse.end_epoch(optimizer)
    new_total = 0
    for n, m in layers(model):
        new = (m.mask_clean != 0) & (before[n] == 0)
        new_total += int(new.sum())
        assert torch.all(m.weight[new] == 0)
        assert torch.all(optimizer.state[m.weight]["momentum_buffer"][new] == 0)
        assert int(new.sum()) <= record["layers"][n]["regrown"]
    assert new_total > 0
    # training moves the regrown weights off zero
    train(model, optimizer, sparse, seed=1)
    moved = sum(
        int(((m.mask_clean != 0) & (before[n] == 0) & (m.weight != 0)).sum()) for n, m in layers(model)
    )
    assert moved > 0


def test_without_momentum_scores_are_equal_and_total_holds():
    model, _, sparse = setup(0.3)
    total = sparse.budget
    record = sparse.end_epoch(None)
    scores = [v["score"] for v in record["layers"].values()]
    assert scores == pytest.approx([1 / len(scores)] * len(scores))
    assert record["kept"] == total == sum(nnz(m) for _, m in layers(model))


def test_dense_density_stays_dense():
    model, optimizer, sparse = setup(1.0)
    train(model, optimizer, sparse)
    record = sparse.end_epoch(optimizer)
    assert record["density"] == 1.0 and record["pruned"] == record["regrown"] > 0
    assert all(bool((m.mask_clean == 1).all()) for _, m in layers(model))


def test_allocation_is_exact_proportional_and_capped():
    assert _allocate(10, [0.5, 0.3, 0.2], [100, 100, 100], [1, 1, 1]) == [5, 3, 2]
    got = _allocate(10, [0.8, 0.1, 0.1], [2, 100, 100], [1, 1, 1])  # the overflow goes to the others
    assert got[0] == 2 and sum(got) == 10 and got[1] == got[2] == 4
    assert sum(_allocate(7, [1 / 3, 1 / 3, 1 / 3], [9, 9, 9], [1, 1, 1])) == 7
    assert _allocate(5, [0.2, 0.8], [1, 1], [1, 1]) == [1, 1]  # capacity bounds the total
    blocks = _allocate(100, [0.5, 0.5], [10, 10], [9, 16])
    spent = blocks[0] * 9 + blocks[1] * 16
    assert spent <= 100 and 100 - spent < 9


# -- the prune-rate schedule ----------------------------------------------------------------------------
def test_prune_rate_is_cosine_from_start_to_end():
    assert prune_rate(0, 100) == 0.5
    assert prune_rate(100, 100) == pytest.approx(0.005)
    assert prune_rate(500, 100) == pytest.approx(0.005)
    assert prune_rate(50, 100) == pytest.approx((0.5 + 0.005) / 2)
    rates = [prune_rate(s, 100) for s in range(101)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert prune_rate(0, 10, start=0.3, end=0.1) == 0.3
    with pytest.raises(ValueError, match="total_steps"):
        prune_rate(0, 0)
    with pytest.raises(ValueError, match="step"):
        prune_rate(-1, 10)


# -- FLOATS-c -------------------------------------------------------------------------------------------
def assert_whole_channels(model, sparse):
    counts = channel_counts(model)
    for layer in sparse.layers:
        m = layer.module
        kept = m.mask_clean.sum(dim=(0, 2, 3)) != 0
        block = m.weight.shape[0] * m.weight[0, 0].numel()
        sums = m.mask_clean.sum(dim=(0, 2, 3))
        assert torch.all((sums == 0) | (sums == block))  # a channel is all on or all off
        assert torch.all(m.weight[:, ~kept] == 0)
        assert counts[layer.name] == int(kept.sum()) >= 1
    assert model.stem.mask_clean is None and model.fc.mask_clean is None  # stem and classifier dense
    assert counts["stem"] == 3


@pytest.mark.parametrize("density", [0.1, 0.3])
def test_channel_masks_keep_whole_channels_within_the_budget(density):
    model, optimizer, sparse = setup(density, "channel")
    names = [n for n, _ in masked_layers(model, "channel")]
    assert "stem" not in names and "fc" not in names and len(names) == len(sparse.layers)
    init = channel_counts(model)
    for layer in sparse.layers:
        assert init[layer.name] == max(1, math.floor(density * layer.module.in_channels))
    assert_whole_channels(model, sparse)
    pruned = sum(layer.module.weight.numel() for layer in sparse.layers)
    if density == 0.3:  # every conv has d * C_i >= 1, so Eq. 5 holds over the pruned convs
        assert sparse.budget <= density * pruned
    biggest = max(layer.size for layer in sparse.layers)
    history = [init]
    for epoch in range(EPOCHS):
        train(model, optimizer, sparse, seed=epoch)
        assert_masks_hold(model, optimizer)
        record = sparse.end_epoch(optimizer)
        assert_masks_hold(model, optimizer)
        assert_whole_channels(model, sparse)
        counts = channel_counts(model)
        assert {n: v["active"] for n, v in record["layers"].items()} == {n: counts[n] for n in names}
        kept = sum(counts[layer.name] * layer.size for layer in sparse.layers)
        assert kept == record["kept"] and sparse.budget - biggest < kept <= sparse.budget
        history.append(counts)
    assert any(history[i] != history[i + 1] for i in range(EPOCHS))


def test_channel_granularity_keeps_one_channel_per_layer_at_tiny_density():
    model, optimizer, sparse = setup(0.01, "channel")
    assert all(channel_counts(model)[layer.name] == 1 for layer in sparse.layers)
    for epoch in range(2):
        train(model, optimizer, sparse, steps=1, seed=epoch)
        sparse.end_epoch(optimizer)
        assert_whole_channels(model, sparse)


# -- saving, arguments ----------------------------------------------------------------------------------
def test_masks_round_trip_through_the_model_state_dict():
    model, optimizer, sparse = setup(0.2)
    train(model, optimizer, sparse)
    sparse.end_epoch(optimizer)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "sparse": sparse.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    fresh, _, other = setup(0.2, seed=1)  # different random masks until the state is loaded
    assert any(
        not torch.equal(a.mask_clean, b.mask_clean) for (_, a), (_, b) in zip(layers(model), layers(fresh))
    )
    fresh.load_state_dict(saved["model"])
    other.load_state_dict(saved["sparse"])
    for (_, a), (_, b) in zip(layers(model), layers(fresh)):
        assert torch.equal(a.mask_clean, b.mask_clean) and torch.equal(a.mask_adv, b.mask_adv)
        assert torch.equal(a.weight, b.weight)
    assert other.steps == sparse.steps and other.epochs == sparse.epochs
    assert torch.equal(other.generator.get_state(), sparse.generator.get_state())
    with pytest.raises(ValueError, match="granularity"):
        setup(0.2, "channel")[2].load_state_dict(saved["sparse"])


def test_bad_arguments_raise_clear_errors():
    model = build_adversarial("resnet10", FLOAT, 8, 10)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="density"):
            SparseMomentum(model, bad, 10)
    with pytest.raises(ValueError, match="'block'"):
        SparseMomentum(model, 0.1, 10, granularity="block")
    with pytest.raises(ValueError, match="'block'"):
        masked_layers(model, "block")
    with pytest.raises(ValueError, match="no noisy"):
        SparseMomentum(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 10)), 0.1, 10)
    with pytest.raises(ValueError, match="total_steps"):
        SparseMomentum(model, 0.1, 0)
    with pytest.raises(ValueError, match="start_rate"):
        SparseMomentum(model, 0.1, 10, start_rate=0.1, end_rate=0.2)
    assert all(isinstance(m, NoisyConv2d) for _, m in masked_layers(model, "channel"))
