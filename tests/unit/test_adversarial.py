"""FLOAT, SMART, OAT and PGD-AT: the conditional layers, the knobs, SMART's masks, the losses, and runs
through the one runner (stored by hash, resumed after a kill, evaluated at every knob setting)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F

from gearlib.adversarial.knobs import float_condition, knob_settings, oat_condition, smart_condition
from gearlib.adversarial.layers import (
    ADVERSARIAL,
    CLEAN,
    Condition,
    DualBatchNorm2d,
    NoisyConv2d,
    conditioned,
    noise_scales,
)
from gearlib.adversarial.masks import mask_counts, path_masks
from gearlib.adversarial.models import (
    FLOAT,
    FLOAT_SLIM,
    OAT,
    OAT_128,
    PLAIN,
    build_adversarial,
    stage_modules,
)
from gearlib.adversarial.objectives import TrainAttack, batch_loss, sample_lambdas, split_loss
from gearlib.adversarial.train import build_for, make_optimizer
from gearlib.train.runner import make_config, run_experiment
from gearlib.train.store import CHECKPOINT, config_hash


def tiny(kind=FLOAT, arch="resnet10", width=8):
    torch.manual_seed(0)
    return build_adversarial(arch, kind, width, 10)


def images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(10, (n,), generator=g)


# -- layers ---------------------------------------------------------------------------------------------
def test_lambda_zero_is_exactly_the_clean_weights_and_bn_c():
    model = tiny().eval()
    x, _ = images()
    with conditioned(model, float_condition(0.0, 0.0)):
        out = model(x)
        again = model(x)
    assert torch.equal(out, again)  # no noise at lambda = 0: the forward pass is deterministic
    for m in model.modules():
        if isinstance(m, NoisyConv2d):
            with conditioned(model, CLEAN):
                assert torch.equal(m.effective_weight(), m.weight)
    # the same network with plain BNs holding BN_C's parameters gives the same logits
    plain = build_adversarial("resnet10", PLAIN, 8, 10).eval()
    state = {}
    for k, v in model.state_dict().items():
        if ".adv." in k or k.endswith("alpha"):
            continue
        state[k.replace(".clean.", ".")] = v
    plain.load_state_dict(state)
    assert torch.allclose(plain(x), out, atol=1e-5)


def test_noise_std_equals_the_weight_std_and_is_fresh_every_call():
    torch.manual_seed(1)
    conv = NoisyConv2d(16, 32, 3, padding=1, bias=False, alpha=1.0)
    conv.condition = Condition("adv", 1.0, "adv")
    first = conv.effective_weight() - conv.weight
    second = conv.effective_weight() - conv.weight
    assert not torch.equal(first, second)
    sigma = float(conv.weight.std())
    assert abs(float(first.std()) / sigma - 1.0) < 0.05  # alpha 1, noise scale 1: std(eta) = std(theta)
    conv.condition = Condition("adv", 0.5, "adv")
    assert abs(float((conv.effective_weight() - conv.weight).std()) / sigma - 0.5) < 0.05


def test_alpha_receives_gradients_and_is_excluded_from_weight_decay():
    model = tiny()
    x, y = images()
    with conditioned(model, ADVERSARIAL):
        F.cross_entropy(model(x), y).backward()
    alphas = [p for n, p in model.named_parameters() if n.endswith("alpha")]
    assert len(alphas) == len(noise_scales(model)) > 0
    assert all(p.grad is not None and float(p.grad.abs()) > 0 for p in alphas)
    assert set(noise_scales(model).values()) == {0.25}
    groups = make_optimizer(model, pytest.importorskip("gearlib.profiles").get_profile("smoke")).param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert all(decay[id(p)] == 0.0 for p in alphas)
    assert any(v > 0 for v in decay.values())


def test_dual_bn_keeps_two_sets_of_statistics():
    bn = DualBatchNorm2d(4).train()
    x = torch.randn(16, 4, 5, 5) + 3.0
    bn.condition = Condition("adv", 0.0, "clean")
    bn(x)
    assert torch.equal(bn.clean.running_mean, torch.zeros(4))
    assert float(bn.adv.running_mean.mean()) > 0.1
    assert int(bn.clean.num_batches_tracked) == 0 and int(bn.adv.num_batches_tracked) == 1


def test_conditioned_restores_the_previous_setting_even_on_error():
    model = tiny()
    with pytest.raises(RuntimeError), conditioned(model, ADVERSARIAL):
        assert model.condition.bn == "adv" and model.condition.noise == 1.0
        raise RuntimeError("boom")
    assert (model.condition.bn, model.condition.noise, model.condition.path) == ("clean", 0.0, "clean")


def test_film_reads_one_lambda_per_sample_or_one_for_the_batch():
    model = tiny(OAT).eval()
    x, _ = images(4)
    with conditioned(model, oat_condition(0.7)):
        batch = model(x)
    with conditioned(model, Condition("adv", 0.0, "clean"), lam=torch.full((4,), 0.7)):
        each = model(x)
    assert torch.allclose(batch, each)
    with pytest.raises(RuntimeError, match="condition.lam"):
        model(x)


def test_a_slimmed_network_uses_the_leading_channels_and_its_own_bn_pair():
    model = tiny(FLOAT_SLIM).eval()
    x, _ = images(4)
    conv = model.stages[1][0].conv1  # 8 -> 16 channels
    with conditioned(model, Condition(width=0.5)):
        assert tuple(conv.effective_weight().shape) == (8, 4, 3, 3)
        assert tuple(model.stem.effective_weight().shape) == (4, 3, 3, 3)  # colour channels kept
        assert model(x).shape == (4, 10)  # logits kept
    with conditioned(model, Condition(width=1.0)):
        assert tuple(conv.effective_weight().shape) == (16, 8, 3, 3)
    bn = model.stem_bn
    assert bn.sets["w0_5"]["clean"].num_features == 4 and bn.sets["w1"]["adv"].num_features == 8
    with pytest.raises(ValueError, match="was not trained"), conditioned(model, Condition(width=0.25)):
        model(x)
    # the loss of a slimmable step sums both widths: both BN pairs see their half of the batch
    model.train()
    split_loss(model, *images(8), TrainAttack(8 / 255, 1), widths=(1.0, 0.5)).loss.backward()
    assert all(int(bn.sets[k][p].num_batches_tracked) == 1 for k in ("w1", "w0_5") for p in ("clean", "adv"))
    with pytest.raises(ValueError, match="slimming factor"):
        Condition(width=0.0)


def test_oat_128_encodes_its_training_lambdas_only():
    model = tiny(OAT_128).eval()
    x, _ = images(2)
    with conditioned(model, oat_condition(0.7)):
        assert model(x).shape == (2, 10)
    codes = model.stem_film.encoder.codes
    assert torch.allclose(codes @ codes.T, torch.eye(len(codes)), atol=1e-5)  # orthonormal rows
    with pytest.raises(ValueError, match="has no code"), conditioned(model, oat_condition(0.5)):
        model(x)


# -- knobs ----------------------------------------------------------------------------------------------
def test_float_knob_follows_eq6_with_the_boundary_on_the_clean_side():
    assert float_condition(0.0, 0.0) == Condition("clean", 0.0, "clean")
    assert float_condition(0.2, 0.0) == Condition("adv", 0.2, "clean")
    assert float_condition(0.2, 0.5) == Condition("clean", 0.4, "clean")
    assert float_condition(0.5, 0.5) == Condition("clean", 1.0, "clean")
    assert float_condition(0.7, 0.5).bn == "adv" and float_condition(0.7, 0.5).noise == pytest.approx(0.4)
    assert float_condition(1.0, 0.5) == Condition("adv", 1.0, "clean")
    with pytest.raises(ValueError, match="lambda_th"):
        float_condition(0.5, 0.3)
    with pytest.raises(ValueError, match="lambda_n"):
        float_condition(1.5)


def test_smart_knob_never_mixes_paths():
    assert smart_condition(0.0) == Condition("clean", 0.0, "clean")
    for lam in (0.2, 0.7, 1.0):
        c = smart_condition(lam)
        assert (c.bn, c.path, c.noise) == ("adv", "adv", lam)
    assert [label for label, _ in knob_settings("float")][:2] == ["lam_n=0,lam_th=0", "lam_n=0.2,lam_th=0"]
    assert len(knob_settings("float")) == 8 and len(knob_settings("smart")) == 4


# -- SMART's masks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [100, 1000, 4608])
def test_path_masks_have_exact_densities_and_overlap(n):
    clean, adv = path_masks(n, 0.5, 0.25, torch.Generator().manual_seed(n))
    assert int(clean.sum()) == int(adv.sum()) == n // 2
    assert int((clean & adv).sum()) == n // 4
    assert int((~clean & ~adv).sum()) == n - 2 * (n // 2) + n // 4
    disjoint = path_masks(n, 0.5, 0.0)
    assert int((disjoint[0] & disjoint[1]).sum()) == 0
    with pytest.raises(ValueError, match="more than all"):
        path_masks(n, 0.7, 0.2)


def test_smart_masks_cover_stages_3_and_4_only_and_noise_stays_on_the_adversarial_support():
    model = build_for("smart", "resnet10", 8, 10, seed=0)
    sparse = stage_modules(model, (3, 4))
    assert len(sparse) == 6  # two 3x3 convs and a shortcut in each of the two sparse stages
    for m in model.modules():
        if isinstance(m, NoisyConv2d):
            assert (m.mask_clean is not None) == any(m is s for s in sparse)
    counts = mask_counts(model)
    sparse_weights = sum(m.weight.numel() for m in sparse)
    assert counts["weights"] - counts["clean_nonzero"] == pytest.approx(sparse_weights / 2, abs=len(sparse))
    layer = sparse[0]
    with conditioned(model, smart_condition(1.0)):
        w = layer.effective_weight()
    assert torch.all(w[layer.mask_adv == 0] == 0)
    with conditioned(model, smart_condition(0.0)):
        assert torch.equal(layer.effective_weight(), layer.weight * layer.mask_clean)
    # the masks are frozen: a training step leaves them as they were
    before = layer.mask_adv.clone()
    x, y = images()
    batch_loss("split", model, x, y, TrainAttack(8 / 255, 1)).loss.backward()
    assert torch.equal(layer.mask_adv, before) and not layer.mask_adv.requires_grad


# -- losses ---------------------------------------------------------------------------------------------
def test_float_step_trains_each_bn_set_on_its_own_half():
    model = tiny().train()
    x, y = images(8)
    out = split_loss(model, x, y, TrainAttack(8 / 255, 2))
    assert out.seen == 4 and torch.isfinite(out.loss)
    assert int(model.stem_bn.clean.num_batches_tracked) == 1  # clean half, one forward in train mode
    assert int(model.stem_bn.adv.num_batches_tracked) == 1  # the attack ran in eval mode: one train pass
    with pytest.raises(ValueError, match="batch of >= 2"):
        split_loss(model, x[:1], y[:1], TrainAttack(8 / 255, 1))


def test_pgd_at_lambda_zero_is_plain_training_and_oat_lambdas_follow_its_rule():
    model = tiny(PLAIN).train()
    x, y = images(8)
    out = batch_loss("pgd-at", model, x, y, TrainAttack(8 / 255, 2), lam=0.0)
    assert torch.allclose(
        out.loss, F.cross_entropy(model.eval()(x), y), atol=0.5
    )  # same terms, BN mode aside
    lam = sample_lambdas(12, (0.0, 0.1, 0.2, 0.3, 0.4, 1.0), torch.Generator().manual_seed(0))
    assert torch.equal(lam[:2], torch.zeros(2)) and bool((lam[2:] > 0).all())
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        batch_loss("fgsm-at", model, x, y, TrainAttack(8 / 255, 1))


# -- the runner -----------------------------------------------------------------------------------------
FAST = ["adv_epochs=2", "adv_train_subset=64", "adv_test_subset=40", "adv_eval_images=20", "adv_eval_steps=2"]


def test_adversarial_methods_keep_gearnn_hashes_and_take_their_own_arch():
    gear = make_config("gearnn2", "smoke", None, "synthetic")
    assert gear.arch == "vgg19" and "adv_width" not in json.dumps(gear.training_dict())
    cfg = make_config("float", "smoke")
    assert cfg.arch == "resnet10" and cfg.family == "adversarial"
    assert "era_width" not in cfg.training_dict()["profile"]
    changed = make_config("float", "smoke", overrides=["era_width=3", "adv_eval_steps=7"])
    assert config_hash(changed.training_dict()) == config_hash(cfg.training_dict())
    assert make_config("float", "smoke", "resnet18").profile.adv_arch == "resnet18"
    with pytest.raises(ValueError, match="CIFAR ResNet"):
        make_config("float", "smoke", "vgg19")


@pytest.mark.parametrize("method", ["float", "floats-i"])
def test_a_run_resumes_after_an_interrupt_and_is_stored(tmp_path, monkeypatch, method):
    from gearlib.adversarial import train as adv_train

    config = make_config(method, "smoke", overrides=FAST)
    calls = {"epochs": 0}
    original = adv_train.AdversarialRun._epoch

    def dies_after_one(self, *args, **kwargs):
        if calls["epochs"] == 1:
            raise KeyboardInterrupt  # the process is killed during the second epoch
        calls["epochs"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(adv_train.AdversarialRun, "_epoch", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, runs_dir=tmp_path, progress=False)
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / CHECKPOINT).is_file()
    monkeypatch.setattr(adv_train.AdversarialRun, "_epoch", original)
    resumed = run_experiment(config, runs_dir=tmp_path, progress=False)
    assert [e["epoch"] for e in resumed.epochs] == [1, 2]
    assert not (run_dir / CHECKPOINT).exists()
    m = resumed.metrics
    assert set(m["adv_settings"]) == {label for label, _ in knob_settings("float")}
    row = m["adv_settings"]["lam_n=1,lam_th=0"]
    assert {"fgsm", "pgd-2", "eot-pgd-2"} <= set(row["attacks"]) and row["adv_acc"] == min(
        r["mean"] for r in row["attacks"].values()
    )
    assert m["stochastic"] and len(m["epoch_seconds"]) == 2
    again = run_experiment(config, runs_dir=tmp_path, progress=False)
    assert again.cached and again.metrics["adv_settings"] == m["adv_settings"]
    model = again.model()
    assert sum(p.numel() for p in model.parameters()) == m["params"]
    if method == "floats-i":  # the masks survived the interrupt: one record per epoch, budget held
        assert [r["epoch"] for r in m["sparsity"]] == [1, 2]
        assert m["sparsity"][0]["kept"] == m["sparsity"][1]["kept"] == m["sparsity"][0]["budget"]
        assert m["mask_counts"]["clean_nonzero"] < 0.2 * m["mask_counts"]["weights"]


@pytest.mark.parametrize("method", ["smart", "oat", "pgd-at-0.2", "floats-c", "floats-slim"])
def test_every_adversarial_method_trains_and_evaluates(tmp_path, method):
    result = run_experiment(
        make_config(method, "smoke", overrides=FAST[:1] + FAST[1:]), tmp_path, progress=False
    )
    m = result.metrics
    assert m["family"] == "adversarial" and m["adv_settings"]
    assert all(0 <= s["adv_acc"] <= 100 and 0 <= s["clean_acc"] <= 100 for s in m["adv_settings"].values())
    reloaded = result.model()
    assert type(reloaded).__name__ == "ConditionalResNet"


def test_a_killed_float_run_resumes_to_the_same_metrics(tmp_path, killed_run):
    """SIGKILL a FLOAT run after its first epoch checkpoint: the resumed run ends where an uninterrupted one
    does (same accuracies at every knob setting: the noise and the batches resume their random streams)."""
    sets = [a for kv in [*FAST, "adv_epochs=3", "adv_train_subset=96"] for a in ("--set", kv)]
    command = [sys.executable, "-m", "gearlib.cli", "run", "float", "--no-progress", "--json", *sets]
    run_to_end, kill_and_resume = killed_run
    reference = json.loads(run_to_end(command, tmp_path / "a").stdout)
    result = json.loads(kill_and_resume(command, tmp_path / "b").stdout)
    assert result["adv_settings"] == reference["adv_settings"]
    assert result["noise_scales"] == reference["noise_scales"]


def test_masking_checks_measure_and_judge_the_four_checks():
    from gearlib.adversarial.checks import masking_checks

    torch.manual_seed(0)
    model = tiny().eval()
    x, y = images(16)
    out = masking_checks(
        model, ADVERSARIAL, x, y, steps=2, eot=2, eps_sweep=(0.0, 8.0, 255.0), steps_sweep=(1, 2)
    )
    assert out["eps_sweep"]["0"] == out["clean"]
    assert out["eps_sweep"]["255"] <= out["eps_sweep"]["8"] <= out["clean"]
    assert out["eot_pgd"] is not None  # a noisy model is attacked with EOT too
    assert set(out["verdicts"]) == {
        "fgsm no stronger than pgd", "accuracy vanishes as eps grows", "plateau in steps",
        "eot no weaker than pgd",
    }  # fmt: skip
    assert out["verdicts"]["accuracy vanishes as eps grows"] == (out["eps_sweep"]["255"] < 5.0)
    plain = masking_checks(tiny(PLAIN).eval(), CLEAN, x, y, steps=1, eps_sweep=(8.0,), steps_sweep=(1,))
    assert plain["eot_pgd"] is None and plain["verdicts"]["eot no weaker than pgd"]


def test_bench_adversarial_times_every_method_side_by_side():
    from types import SimpleNamespace

    from gearlib.bench.adversarial import METHODS, run

    out = run(SimpleNamespace(profile="smoke", set=["adv_width=4", "batch_size=8"], steps=1, rounds=1))
    assert all(out[f"{m}_s_per_step"] > 0 for m in METHODS)
    assert out["pgd-at_over_float"] == out["pgd-at_s_per_step"] / out["float_s_per_step"]
    assert out["pgd-at_over_float_paper"] == 1.37
    with pytest.raises(ValueError, match="--steps"):
        run(SimpleNamespace(profile="smoke", set=[], steps=0, rounds=1))


# -- the chapters' tables and figures ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A tiny FLOATS-i run's metrics (FLOAT's knob, noise scales, sparsity records), trained once."""
    runs = tmp_path_factory.mktemp("runs")
    return run_experiment(make_config("floats-i", "smoke", overrides=FAST), runs, progress=False).metrics


def test_report_tables_read_every_knob_setting(stored):
    import matplotlib

    from gearlib.adversarial import report

    frame = report.knob_frame(stored)
    assert list(frame.index) == [label for label, _ in knob_settings("floats-i")]
    assert frame.loc["lam_n=1,lam_th=0", "RA (%)"] == stored["adv_settings"]["lam_n=1,lam_th=0"]["adv_acc"]
    assert frame["EOT-PGD (%)"].notna().sum() == 2  # EOT at the robust end (both thresholds: one network)
    assert stored["adv_settings"]["lam_n=1,lam_th=0.5"]["same_as"] == "lam_n=1,lam_th=0"
    zero = {
        **stored,
        "method": "pgd-at-0",
        "adv_settings": {"fixed": stored["adv_settings"]["lam_n=0,lam_th=0"]},
    }
    one = {
        **stored,
        "method": "pgd-at",
        "adv_settings": {"fixed": stored["adv_settings"]["lam_n=1,lam_th=0"]},
    }
    table = report.endpoint_table({"floats-i": stored, "pgd-at-0": zero, "pgd-at": one})
    assert list(table.index) == ["floats-i", "pgd-at"]  # PGD-AT's two models make one row
    assert table.loc["pgd-at", "CA λ=0 (%)"] == stored["adv_settings"]["lam_n=0,lam_th=0"]["clean_acc"]
    assert table.loc["pgd-at", "RA λ=1 (%)"] == stored["adv_settings"]["lam_n=1,lam_th=0"]["adv_acc"]
    densities = report.density_frame(stored)
    assert list(densities.index) == [1, 2] and (densities.to_numpy() <= 1).all()
    assert set(report.alpha_frame({"floats-i": stored})["floats-i"]) == set(stored["noise_scales"].values())
    for fig in (
        report.tradeoff_curve({"FLOATS-i": stored}, {"PGD-AT λ=1": {**one, "lam": 1.0}}),
        report.alpha_bars({"floats-i": stored}),
        report.density_drift(stored),
    ):
        assert isinstance(fig, matplotlib.figure.Figure)
        assert len(fig.axes[0].lines) + len(fig.axes[0].collections) + len(fig.axes[0].patches) > 0
