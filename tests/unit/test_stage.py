"""Tests for gearlib.train.stage: the lr schedule, lr scaling, metrics, J-view losses and resuming.

A tiny MLP-like conv net and list batch sources keep every test well under a second.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gearlib.train.stage import (
    StageConfig,
    TrainingDiverged,
    clean_cross_entropy,
    default_loss_fn,
    make_optimizer,
    make_scheduler,
    milestones,
    stage_lr,
    train_stage,
)


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def batches(n=48, batch=16, views=1, seed=0):
    """Three classes told apart by their mean colour; `views` copies of x concatenated (clean first)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 3, 8, 8, generator=g) * 0.5
    x[torch.arange(n), y] += 0.5
    out = []
    for i in range(0, n, batch):
        xb = x[i : i + batch]
        out.append((torch.cat([xb] + [xb.flip(3)] * (views - 1)), y[i : i + batch]))
    return out


def test_milestones_follow_half_and_three_quarters():
    config = StageConfig()
    assert milestones(40, config) == [20, 30]
    assert milestones(50, config) == [25, 37]
    assert milestones(3, config) == [1, 2]
    assert milestones(1, config) == []  # no decay "after 0 epochs"


def test_lr_scales_with_batch_size():
    config = StageConfig()
    assert stage_lr(config, 128) == pytest.approx(0.1)
    assert stage_lr(config, 64) == pytest.approx(0.05)
    assert stage_lr(config, None) == pytest.approx(0.1)
    assert stage_lr(StageConfig(scale_lr_with_batch=False), 64) == pytest.approx(0.1)
    opt = make_optimizer(tiny_net(), config, 32)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.025) and group["nesterov"] and group["momentum"] == 0.9
    assert group["weight_decay"] == 5e-4


def test_schedule_lrs_per_epoch():
    model, data = tiny_net(), batches()
    result = train_stage(model, data, 4, StageConfig(lr=0.128, progress=False))
    # batch 16 -> lr 0.016; decays after epochs 2 and 3
    assert [m["lr"] for m in result.metrics] == pytest.approx([0.016, 0.016, 0.0016, 0.00016])
    assert [m["epoch"] for m in result.metrics] == [0, 1, 2, 3]
    assert set(result.metrics[0]) >= {"loss", "acc", "seconds", "lr"}
    assert result.seconds == pytest.approx(sum(m["seconds"] for m in result.metrics))


def test_training_lowers_the_loss():
    model, data = tiny_net(), batches()
    result = train_stage(model, data, 6, StageConfig(lr=0.8, progress=False), loss_fn=clean_cross_entropy)
    losses = [m["loss"] for m in result.metrics]
    assert losses[-1] < 0.7 * losses[0]
    assert result.metrics[-1]["acc"] > 0.6


def test_default_loss_handles_views():
    loss_fn = default_loss_fn()
    y = torch.tensor([0, 1])
    logits = torch.randn(2, 3)
    assert torch.allclose(loss_fn(logits, y), F.cross_entropy(logits, y))
    three_views = torch.cat([logits, logits + 1.0, logits * 2])
    assert loss_fn(three_views, y) > F.cross_entropy(logits, y)  # the consistency term is added
    assert torch.allclose(clean_cross_entropy(three_views, y), F.cross_entropy(logits, y))


def test_multi_view_batches_train():
    """On 3-view batches (clean first) the stage learns the task: its reported clean-view accuracy and an
    independent evaluation of the returned network both pass 60% (chance: 33%)."""
    model, data = tiny_net(), batches(views=3)
    result = train_stage(model, data, 6, StageConfig(lr=0.8, progress=False))
    assert result.metrics[-1]["acc"] > 0.6
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[: len(y)]).argmax(1) == y).sum()) for x, y in data)
    assert correct / sum(len(y) for _, y in data) > 0.6


def test_resume_matches_uninterrupted_run():
    data, config = batches(), StageConfig(lr=0.4, progress=False)
    straight = tiny_net()
    train_stage(straight, data, 4, config)

    saved = {}

    def checkpoint(epoch, model, optimizer, scheduler, metrics):
        if epoch == 1:
            saved.update(
                model=copy.deepcopy(model.state_dict()),
                optimizer=copy.deepcopy(optimizer.state_dict()),
                scheduler=scheduler.state_dict(),
            )

    first = tiny_net()
    train_stage(first, data, 4, config, on_epoch_end=checkpoint)
    resumed = tiny_net(seed=1)
    resumed.load_state_dict(saved["model"])
    result = train_stage(
        resumed,
        data,
        4,
        config,
        start_epoch=2,
        optimizer_state=saved["optimizer"],
        scheduler_state=saved["scheduler"],
    )
    assert [m["epoch"] for m in result.metrics] == [2, 3]
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_start_epoch_fast_forwards_the_schedule():
    result = train_stage(tiny_net(), batches(), 4, StageConfig(lr=0.128, progress=False), start_epoch=3)
    assert [m["lr"] for m in result.metrics] == pytest.approx([0.00016])


def test_schedule_restarts_every_stage():
    model, data, config = tiny_net(), batches(), StageConfig(lr=0.128, progress=False)
    first = train_stage(model, data, 2, config)
    second = train_stage(model, data, 2, config)
    # E = 2: both milestones fall after epoch 1 (floor(1) = floor(1.5) = 1), so lr drops by 0.01
    assert [m["lr"] for m in first.metrics] == pytest.approx([0.016, 0.00016])
    assert [m["lr"] for m in second.metrics] == pytest.approx([0.016, 0.00016])
    assert make_scheduler(make_optimizer(model, config), 40, config).milestones == {20: 1, 30: 1}


@pytest.mark.parametrize("kwargs", [{"lr": 0}, {"momentum": 1.0}, {"milestones_frac": (0.5, 1.5)}])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        StageConfig(**kwargs)


def test_bad_epochs_raise():
    with pytest.raises(ValueError, match="start_epoch"):
        train_stage(tiny_net(), batches(), 2, StageConfig(progress=False), start_epoch=3)


def test_a_diverging_stage_stops_with_a_clear_message():
    """An absurd learning rate drives the loss to inf/NaN: the stage raises, naming stage, epoch and step."""
    model, data = tiny_net(), batches()
    with pytest.raises(
        TrainingDiverged, match=r"osg1 epoch 1/2: the training loss became non-finite at step 3"
    ):
        train_stage(
            model, data, 2, StageConfig(lr=1e20, progress=False), loss_fn=clean_cross_entropy, desc="osg1"
        )
