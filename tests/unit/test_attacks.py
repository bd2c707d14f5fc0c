"""Tests of the L-inf attacks (FGSM, PGD, EOT-PGD) and robust accuracy on a tiny CNN trained in the fixture.

The synthetic task: 10 classes, each a mean colour, with per-image colour jitter and pixel noise (8x8 px).
"""

from __future__ import annotations

import copy
import json
import sys
from typing import List, Tuple

import pytest
import torch
from torch import nn

from gearlib.attacks import (
    ATTACKS,
    Attack,
    attack_mode,
    autoattack_available,
    autoattack_rand,
    batches,
    eot_pgd,
    evaluate_attacks,
    fgsm,
    make_attack,
    oat_step_size,
    pgd,
    robust_accuracy,
)

EPS = 8 / 255
N_TEST = 400


def colour_images(n: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is their mean colour (10 fixed colours), jittered per image and per pixel."""
    colours = torch.rand(10, 3, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    jitter = 0.04 * torch.randn(n, 3, 1, 1, generator=g)
    noise = 0.1 * torch.randn(n, 3, 8, 8, generator=g)
    return (colours[y][:, :, None, None] + jitter + noise).clamp(0, 1), y


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((model(x).argmax(dim=1) == y).float().mean())


@pytest.fixture(scope="module")
def trained() -> Tuple[nn.Module, torch.Tensor, torch.Tensor, float]:
    """(model in eval mode, test images, test labels, clean accuracy %); tests must not modify the model."""
    torch.manual_seed(0)
    model = tiny_cnn()
    x, y = colour_images(1024, seed=1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(2)
    for _ in range(60):
        idx = torch.randint(0, len(x), (128,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    x_test, y_test = colour_images(N_TEST, seed=3)
    clean = accuracy(model, x_test, y_test)
    assert clean > 60, f"the tiny CNN did not learn the colour task (clean accuracy {clean:.1f}%)"
    return model, x_test, y_test, clean


class NoisyLogits(nn.Module):
    """A randomised model: fresh Gaussian noise on the logits at every call, which it counts."""

    def __init__(self, base: nn.Module, sigma: float) -> None:
        super().__init__()
        self.base, self.sigma, self.calls = base, sigma, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = self.base(x)
        return logits + self.sigma * torch.randn_like(logits)


class Alternating(nn.Module):
    """Two-class logits (0, c * sum(x)) with c = +3 on odd calls and -1 on even calls.

    For label 0 the input gradient of the loss has the sign of c. Averaged over a pair of calls it is
    positive (3 sigmoid(3 S) > sigmoid(-S) for S = sum(x) > 0), while a single call alternates in sign.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        c = 3.0 if self.calls % 2 == 1 else -1.0
        z = c * x.flatten(1).sum(dim=1)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def border_batch(x: torch.Tensor) -> torch.Tensor:
    """x with a third of its pixels set to 0 and a third to 1 (the borders of the box)."""
    x = x.clone()
    flat = x.view(-1)
    flat[0::3] = 0.0
    flat[1::3] = 1.0
    return x


def test_oat_step_size_follows_oat_rule():
    assert oat_step_size(8 / 255, 20) == pytest.approx(0.5 / 255)
    assert oat_step_size(8 / 255, 7) == pytest.approx((10 / 255) / 7)
    assert oat_step_size(32 / 255, 10) == pytest.approx((36 / 255) / 10)  # eps + 4/255 < 1.25 eps
    assert oat_step_size(0.0, 5) == 0.0


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("eps", [EPS, 0.3])
def test_pgd_never_leaves_the_eps_ball_nor_the_box(trained, random_start, eps):
    model, x_test, y_test, _ = trained
    x = border_batch(x_test[:64])
    x_adv = pgd(model, x, y_test[:64], eps=eps, steps=5, random_start=random_start)
    assert x_adv.dtype == x.dtype and x_adv.shape == x.shape and not x_adv.requires_grad
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert not torch.equal(x_adv, x)
    x_fgsm = fgsm(model, x, y_test[:64], eps=eps)
    assert float((x_fgsm - x).abs().max()) <= eps + 1e-6
    assert float(x_fgsm.min()) >= 0.0 and float(x_fgsm.max()) <= 1.0


def test_eps_zero_returns_an_unchanged_copy(trained):
    model, x_test, y_test, _ = trained
    x = x_test[:16]
    for x_adv in (pgd(model, x, y_test[:16], eps=0.0), fgsm(model, x, y_test[:16], eps=0.0)):
        assert torch.equal(x_adv, x) and x_adv.data_ptr() != x.data_ptr()


def test_attacks_leave_bn_statistics_modes_and_requires_grad_unchanged(trained):
    model, x_test, y_test, _ = trained
    model = copy.deepcopy(model).train()
    model[5].eval()  # a mixed model: the classifier in eval mode, the rest in train mode
    model[0].bias.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= set(buffers)

    x, y = x_test[:64], y_test[:64]
    pgd(model, x, y, steps=3)
    fgsm(model, x, y)
    eot_pgd(model, x, y, steps=2, draws=2)
    robust_accuracy(model, [(x, y)], "pgd-7")
    robust_accuracy(model, [(x, y)], None)

    for name, before in buffers.items():
        assert torch.equal(dict(model.named_buffers())[name], before), name
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_attack_mode_restores_flags_on_exception(trained):
    model = copy.deepcopy(trained[0]).train()
    model[1].eval()
    model[5].weight.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(RuntimeError, match="boom"), attack_mode(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags


def test_pgd_is_at_least_as_strong_as_fgsm_and_below_clean(trained):
    model, x_test, y_test, clean = trained
    loader = batches(x_test, y_test, 200)
    torch.manual_seed(0)
    fgsm_acc = robust_accuracy(model, loader, "fgsm").mean
    pgd20 = robust_accuracy(model, loader, "pgd-20").mean
    # OAT's step lets PGD travel 1.25 eps in all, so from a random start it may not reach the ball's corners
    # that FGSM hits on this nearly linear model; Madry et al.'s 2.5 eps / steps always can.
    madry = Attack("pgd-10-madry", EPS, steps=10, step_size=2.5 * EPS / 10)
    pgd_madry = robust_accuracy(model, loader, madry).mean
    assert fgsm_acc < clean and pgd20 < clean
    assert pgd_madry <= fgsm_acc


def test_accuracy_falls_to_zero_as_eps_grows(trained):
    model, x_test, y_test, clean = trained
    loader = batches(x_test, y_test, 200)
    torch.manual_seed(0)
    curve = [
        robust_accuracy(model, loader, "pgd-10", eps=eps).mean for eps in (0, 2 / 255, EPS, 32 / 255, 0.5)
    ]
    assert curve[0] == clean
    assert all(later <= earlier + 1.0 for earlier, later in zip(curve, curve[1:])), curve
    assert curve[2] < clean - 5
    assert curve[-1] < 5


def test_eot_runs_steps_times_draws_forward_passes(trained):
    model, x_test, y_test, _ = trained
    noisy = NoisyLogits(model, sigma=1.0)
    x, y = x_test[:32], y_test[:32]
    x_adv = pgd(noisy, x, y, steps=3, eot=4)
    assert noisy.calls == 12
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    noisy.calls = 0
    eot_pgd(noisy, x, y, steps=2, draws=5)
    assert noisy.calls == 10
    noisy.calls = 0
    make_attack("eot-pgd-10")(noisy, x, y)
    assert noisy.calls == 10 * ATTACKS["eot-pgd-10"](EPS).eot


def test_eot_follows_the_mean_gradient_over_draws():
    x = torch.full((2, 1, 2, 2), 0.5)
    y = torch.zeros(2, dtype=torch.long)
    # the mean over each pair of calls is positive: every step moves up, to the top of the ball
    averaged = pgd(Alternating(), x, y, eps=EPS, steps=4, random_start=False, eot=2)
    assert torch.allclose(averaged, x + EPS)
    # one draw per step alternates up and down and returns to x
    single = pgd(Alternating(), x, y, eps=EPS, steps=4, random_start=False, eot=1)
    assert torch.allclose(single, x)


def test_generator_seeds_the_random_start(trained):
    model, x_test, y_test, _ = trained
    x, y = x_test[:16], y_test[:16]

    def run(seed: int) -> torch.Tensor:
        return pgd(model, x, y, steps=1, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_cross_check_with_torchattacks_pgd(trained):
    ta = pytest.importorskip(
        "torchattacks", reason="torchattacks 3.5.1 (the cross-check reference) is not installed here"
    )
    model, x_test, y_test, clean = trained
    loader = batches(x_test, y_test, 200)
    step = oat_step_size(EPS, 10)
    torch.manual_seed(0)
    ours = robust_accuracy(model, loader, Attack("pgd-10", EPS, steps=10, step_size=step)).mean
    reference = ta.PGD(model, eps=EPS, alpha=step, steps=10, random_start=True)
    theirs = robust_accuracy(model, loader, lambda m, x, y: reference(x, y)).mean
    assert ours < clean - 5  # the attack bites, so agreement is meaningful
    assert abs(ours - theirs) <= 2.0, (ours, theirs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, x, y: pgd(m, x, y, eps=-0.1), r"eps=-0.1 is outside \[0, 1\]"),
        (lambda m, x, y: pgd(m, x, y, eps=8), r"eps=8 is outside \[0, 1\]"),
        (lambda m, x, y: pgd(m, x, y, steps=0), "steps=0 is invalid: steps must be an integer >= 1"),
        (lambda m, x, y: pgd(m, x, y, steps=2.5), "steps=2.5 is invalid"),
        (lambda m, x, y: pgd(m, x, y, eot=0), "eot=0 is invalid"),
        (lambda m, x, y: pgd(m, x, y, step_size=-1.0), "step_size=-1.0 is negative"),
        (lambda m, x, y: pgd(m, x * 2 - 0.5, y), r"inputs outside \[0, 1\].*normalisation inside the model"),
        (lambda m, x, y: pgd(m, x, y[:3]), "one integer label per image"),
        (lambda m, x, y: fgsm(m, x, y, eps=-1.0), "eps=-1.0"),
        (lambda m, x, y: make_attack("pgd-1000"), "unknown attack 'pgd-1000': use one of fgsm, pgd-7"),
        (lambda m, x, y: robust_accuracy(m, [(x, y)], "cw"), "unknown attack 'cw'"),
        (lambda m, x, y: robust_accuracy(m, [(x, y)], None, repeats=0), "repeats=0 is invalid"),
        (lambda m, x, y: robust_accuracy(m, iter([]), None), "no images on repeat 1"),
        (lambda m, x, y: evaluate_attacks(m, [(x, y)], ("fgsm", "fgsm"), repeats=1), "listed twice"),
        (lambda m, x, y: evaluate_attacks(m, [(x, y)], (None,), repeats=1), "list at least one"),
        (lambda m, x, y: oat_step_size(EPS, 0), "steps=0"),
        (lambda m, x, y: Attack("pgd", 1.5), r"eps=1.5 is outside \[0, 1\]"),
        (lambda m, x, y: batches(x, y[:3], 4), "one label per image"),
    ],
)
def test_bad_values_raise_clear_errors(trained, call, match):
    model, x_test, y_test, _ = trained
    with pytest.raises(ValueError, match=match):
        call(model, x_test[:8], y_test[:8])


def test_robust_accuracy_repeats_and_clean_accuracy(trained):
    model, x_test, y_test, clean = trained
    loader = batches(x_test, y_test, 128)
    result = robust_accuracy(model, loader, "fgsm", repeats=3)
    assert result.repeats == 3 and result.n == N_TEST
    assert result.accuracies == [result.accuracies[0]] * 3 and result.std == 0.0
    assert result.mean == result.accuracies[0] < clean
    assert result.description == "FGSM, eps 8/255"
    plain = robust_accuracy(model, loader, None)
    assert plain.mean == clean and plain.attack == "clean"
    json.dumps(result.to_dict())


def test_robust_accuracy_of_a_random_model_varies_between_repeats(trained):
    model, x_test, y_test, _ = trained
    torch.manual_seed(0)
    result = robust_accuracy(NoisyLogits(model, sigma=3.0), batches(x_test, y_test, 200), None, repeats=3)
    assert len(set(result.accuracies)) > 1 and result.std > 0


def test_evaluate_attacks_reports_the_worst_case(trained):
    model, x_test, y_test, clean = trained
    x, y = x_test[:100], y_test[:100]
    torch.manual_seed(0)
    noisy = NoisyLogits(model, sigma=0.5)
    report = evaluate_attacks(noisy, batches(x, y, 50), (None, "fgsm", "pgd-10", "eot-pgd-10"), repeats=2)
    assert list(report.results) == ["clean", "fgsm", "pgd-10", "eot-pgd-10"]
    attacked = {k: r.mean for k, r in report.results.items() if k != "clean"}
    assert report.worst_accuracy == min(attacked.values()) == attacked[report.worst]
    assert report.worst_accuracy < report.results["clean"].mean
    assert all(r.repeats == 2 and r.n == 100 for r in report.results.values())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["worst"] == report.worst
    assert data["results"]["eot-pgd-10"]["description"] == "EOT-PGD-10, eps 8/255, step 1/255, EOT 10 draws"


def test_attack_descriptions_and_registry():
    assert make_attack("pgd-20").description == "PGD-20, eps 8/255, step 0.5/255"
    assert make_attack("PGD-7").description == "PGD-7, eps 8/255, step 1.43/255"
    assert make_attack("fgsm", eps=4 / 255).description == "FGSM, eps 4/255"
    assert (
        make_attack("eot-pgd-20", eps=16 / 255).description
        == "EOT-PGD-20, eps 16/255, step 1/255, EOT 10 draws"
    )
    assert Attack("pgd-5", EPS, steps=5, random_start=False).description.endswith("no random start")
    settings = make_attack("pgd-20").to_dict()
    assert settings["step_size"] == pytest.approx(0.5 / 255) and settings["steps"] == 20
    json.dumps(settings)
    assert {"fgsm", "pgd-10", "pgd-20", "eot-pgd-10", "eot-pgd-20"} <= set(ATTACKS)


def test_batches_are_slices_of_the_tensors():
    x, y = torch.rand(10, 3, 2, 2), torch.arange(10)
    parts: List[Tuple[torch.Tensor, torch.Tensor]] = batches(x, y, 4)
    assert [len(b[1]) for b in parts] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in parts]), x) and parts[1][0].data_ptr() == x[4].data_ptr()


def test_autoattack_hook_explains_how_to_install(trained, monkeypatch):
    model, x_test, y_test, _ = trained
    monkeypatch.setitem(sys.modules, "autoattack", None)  # makes `import autoattack` fail
    assert autoattack_available() is False
    with pytest.raises(RuntimeError, match="pip install git\\+https://github.com/fra31/auto-attack"):
        autoattack_rand(model, x_test[:4], y_test[:4])
