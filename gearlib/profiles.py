"""Hardware profiles (`smoke`, `cpu`, `quadro`, `jetson`) as typed configs carrying GEARnn's hyperparameters.

Numbers come from the paper (Table 1, Appendix A; see the book's method notes on training); the `smoke` and
`cpu` profiles scale epochs and data down while keeping the paper's ratios between phases.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Union

import torch

from gearlib.augment.defaults import ERA_DEFAULTS, JSD_LAMBDA
from gearlib.grow.firefly import RMSPROP_PRESETS
from gearlib.grow.memory import parse_bytes
from gearlib.models.registry import ARCHS

# Table 1 of GEARnn: growth ratio gamma per dataset and architecture (Tiny ImageNet uses CIFAR-100's).
GROWTH_RATIO: Dict[str, Dict[str, float]] = {
    "cifar10": {"mobilenet_v1": 1.8, "vgg19": 0.9, "resnet18": 0.6},
    "cifar100": {"mobilenet_v1": 2.0, "vgg19": 1.5, "resnet18": 0.8},
}
# Table 1: epochs per phase. E_g (one growth step) is a single pass and is not counted here.
PAPER_EPOCHS: Dict[str, Dict[str, Dict[str, int]]] = {
    "cifar10": {
        "gearnn1": {"E1": 40, "E2": 40},
        "gearnn2": {"E1": 40, "E2": 40, "ER": 40},
        "small": {"E": 160},
    },
    "cifar100": {
        "gearnn1": {"E1": 50, "E2": 50},
        "gearnn2": {"E1": 40, "E2": 40, "ER": 50},
        "small": {"E": 160},
    },
}
PROFILE_NAMES = ("smoke", "cpu", "quadro", "jetson")
# The profile field that sets each of those epoch counts explicitly (0: the paper's number times epoch_scale).
EPOCH_FIELDS: Dict[str, str] = {"E1": "epochs_e1", "E2": "epochs_e2", "ER": "epochs_er", "E": "epochs_small"}
# Fields only evaluation reads: changing them re-evaluates a trained run instead of retraining it.
EVALUATION_FIELDS = ("test_subset", "robust_per_block", "latency_iters", "latency_windows")
# The adversarial methods' own settings (FLOAT, SMART, PGD-AT, OAT); GEARnn runs never read them.
ADVERSARIAL_TRAINING_FIELDS = (
    "adv_arch", "adv_width", "adv_epochs", "adv_train_subset", "adv_eps", "adv_train_steps",
)  # fmt: skip
ADVERSARIAL_EVALUATION_FIELDS = (
    "adv_test_subset", "adv_eval_images", "adv_eval_steps", "adv_eval_repeats", "adv_eot",
)  # fmt: skip
# The shared fields an adversarial run reads besides its own: where it runs and the SGD settings.
ADVERSARIAL_SHARED_FIELDS = ("name", "device", "batch_size", "lr", "momentum", "weight_decay")
# The layer comparison's own settings (GroupNL and its baselines); the other families never read them.
LAYERS_TRAINING_FIELDS = ("layers_arch", "layers_width", "layers_epochs", "layers_train_subset")
# The shared fields a layer-comparison run reads besides its own: where it runs, SGD, and the augmentations
# of its AugMix and ERA variants. Its evaluation is GEARnn's (EVALUATION_FIELDS).
LAYERS_SHARED_FIELDS = (
    "name", "device", "batch_size", "lr", "momentum", "weight_decay", "amp", "channels_last", "jsd_lambda",
    "era_width", "era_depth", "era_views", "lr_scaling",
)  # fmt: skip
# Fields only the book reads (which runs it asks for), never training or evaluation.
BOOK_FIELDS = ("trend_subset", "trend_archs", "clean_floor", "prime_robust_epochs")
# Training fields added after runs were stored, with the value that reproduces the older behaviour: a field
# at that value is left out of a run's identity, so adding a setting does not orphan every stored run.
NEUTRAL_WHEN_ADDED: Dict[str, Any] = {
    "lr_scaling": "linear",
    "growth_ratio_mode": "table1",
    "bn_recalibration": 0,
}
LR_SCALINGS = ("linear", "none")
# table1: gamma of Table 1 (capped, methods.feasible_ratio); fit: the largest gamma up to that whose One-Shot
# Growth fits memory_budget less memory_margin (gearlib.grow.memory, book/notes/growth.md#notes-growth-memory).
GROWTH_RATIO_MODES = ("table1", "fit")
# Read by training only when growth_ratio_mode is "fit", so they are part of a run's identity only then.
MEMORY_FIT_FIELDS = ("memory_budget", "memory_margin")


def _paper_key(dataset: str) -> str:
    """Datasets share Table 1's rows: CIFAR-10 (and the synthetic set) or CIFAR-100 (and Tiny ImageNet)."""
    return "cifar10" if dataset in ("cifar10", "synthetic") else "cifar100"


@dataclass(frozen=True)
class Profile:
    """Everything a run needs that depends on the hardware profile. Override fields with `override`.

    Attributes follow the paper's symbols: E_1, E_2, E_R epochs are derived from `epoch_scale`, the growth
    ratio gamma from Table 1, K = `new_neurons` (70; 40 on the Jetson), c_0 = `backbone_width`.
    """

    name: str = "quadro"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Stage trainer (Appendix A): SGD, Nesterov, step decay x0.1 at 1/2 and 3/4 of each stage.
    batch_size: int = 128  # per process: a run of N processes steps on global batches of N x batch_size
    lr: float = 0.1
    # linear: lr x (global batch) / 128 (Goyal et al. 2017, "Accurate, large minibatch SGD"); none: lr as set
    lr_scaling: str = "linear"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_gamma: float = 0.1
    # After training, re-estimate BN running statistics over this many clean training batches at the final
    # weights (gearlib.train.precise_bn; 0 = keep training's moving averages). GEARnn methods only; on only in
    # smoke, whose 32 steps a phase leave the moving averages far behind the weights.
    bn_recalibration: int = 0
    amp: bool = True  # mixed precision, used on CUDA only
    channels_last: bool = True  # NHWC layout: faster convolutions on CUDA and on CPUs with oneDNN
    # Growth (Firefly split + new neurons).
    backbone_width: int = 45
    new_neurons: int = 70
    growth_batch_size: int = 128
    rmsprop_lr: float = RMSPROP_PRESETS["official"]["lr"]
    # official: alpha 0.9, momentum 0.1 (Firefly's public code) | text: alpha 0.1, momentum 0.9 (Appendix A)
    rmsprop_variant: str = "official"
    growth_ratio_scale: float = 1.0
    growth_ratio_mode: str = "table1"  # table1 | fit (memory-aware: the largest gamma that fits the budget)
    # Device memory for growth_ratio_mode=fit ("8GB", "512MB", "1.5GiB"; "" = none) and the share of it
    # kept free for what the footprint does not count (CUDA context, the OS, data, allocator slack).
    memory_budget: str = ""
    memory_margin: float = 0.0
    # Augmentation: lambda of L_aug = CE(clean) + lambda * JSD, for every augmented phase.
    jsd_lambda: float = JSD_LAMBDA
    # ERA's chain width w, depth d (-1 = random 1..3) and JSD views J (0 = one augmented view, plain CE);
    # (1, 3, 4) by default, (1, 3, 3) is the era_j3 alternative. Table 8 sweeps these.
    era_width: int = ERA_DEFAULTS.width
    era_depth: int = ERA_DEFAULTS.depth
    era_views: int = ERA_DEFAULTS.views
    # Scale: epochs are the paper's times epoch_scale (at least 1); data sizes are caps (0 = all).
    epoch_scale: float = 1.0
    # Explicit epochs per phase; 0 means "the paper's number times epoch_scale".
    epochs_e1: int = 0
    epochs_e2: int = 0
    epochs_er: int = 0
    epochs_small: int = 0
    train_subset: int = 0
    # Training images of the book's runs that only illustrate a trend (Table 8's sweep, Appendix C's curves,
    # the K = 40 runs, the other architectures); 0 = train_subset.
    trend_subset: int = 0
    # The architectures, comma-separated, whose trend runs use trend_subset ("" = all); the others' trend runs
    # train on train_subset. cpu names only ResNet-18: at 4,000 images VGG-19 and MobileNet-V1 runs fell
    # under clean_floor (README, "Trend runs at 4,000 images").
    trend_archs: str = ""
    # Lowest clean accuracy (%) the book accepts of a finished run on this profile: the results audit flags
    # one under it, except a fixed network trained from scratch for at most E_R epochs (the start of
    # Appendix C's curves, Table 7's ERA-only and AugMix-only arms). 0 = only the at-chance check.
    clean_floor: float = 0.0
    # Robust epochs of the PRIME chapter's GEARnn runs (E_R of GEARnn-2 + PRIME; E_2 of GEARnn-1 + PRIME, as
    # E_2 = E_R): 0 = the profile's own E_R. cpu doubles them: after growth on clean data, four epochs of ERA
    # over PRIME's views left GEARnn-2 under clean_floor (README, "PRIME at the cpu scale").
    prime_robust_epochs: int = 0
    test_subset: int = 0
    robust_per_block: int = 0  # images per (corruption, severity) block for robust accuracy; 0 = all
    latency_iters: int = 200  # timed single-sample forwards per window
    latency_windows: int = 5  # windows, each after its own warm-up; the latency is their median
    num_workers: int = 4  # only for the per-sample reference loader
    # Adversarial training (FLOAT, SMART, PGD-AT, OAT; book/notes/adversarial.md): the paper's models are
    # CIFAR ResNet-34 at width 64, trained 200 epochs against L-inf PGD-7 at eps 8/255 (OAT's settings).
    adv_arch: str = "resnet34"
    adv_width: int = 64
    adv_epochs: int = 200
    adv_train_subset: int = 0  # training images (0 = all)
    adv_eps: float = 8.0  # L-inf radius in units of 1/255
    adv_train_steps: int = 7  # PGD steps while training
    adv_test_subset: int = 0  # test images for clean accuracy (0 = all)
    adv_eval_images: int = 0  # test images attacked in evaluation (0 = all)
    adv_eval_steps: int = 20  # PGD steps in evaluation
    adv_eval_repeats: int = 3  # evaluation repeats: the noisy models answer differently every time
    adv_eot: int = 10  # gradient draws per step of EOT-PGD (Expectation over Transformation)
    # Robust lightweight layers (GroupNL, Ghost, SineFM, MonoCNN against plain convs; book/notes/groupnl.md):
    # the paper trains CIFAR ResNet-18 at width 64 with SGD, batch 128, lr 0.1 and a cosine schedule; it does
    # not give the epochs (200, as in MonoCNN's code).
    layers_arch: str = "resnet18"
    layers_width: int = 64
    layers_epochs: int = 200
    layers_train_subset: int = 0  # training images (0 = all)

    def __post_init__(self) -> None:
        validate(self)

    # -- derived values ---------------------------------------------------------------------------
    def epochs(self, method: str, dataset: str) -> Dict[str, int]:
        """Scaled epochs for 'gearnn1' (E1, E2), 'gearnn2' (E1, E2, ER) or 'small' (E) on a dataset."""
        table = PAPER_EPOCHS[_paper_key(dataset)]
        if method not in table:
            raise ValueError(f"unknown epoch schedule {method!r}; choose one of {', '.join(table)}")
        explicit = {k: getattr(self, name) for k, name in EPOCH_FIELDS.items()}
        return {k: explicit[k] or max(1, int(round(v * self.epoch_scale))) for k, v in table[method].items()}

    def trend_images(self, arch: str) -> int:
        """Training images of a run of `arch` that only illustrates a trend (0 = all): trend_subset where
        trend_archs names `arch` (or is empty), else train_subset."""
        named = _names(self.trend_archs)
        if self.trend_subset and (not named or arch in named):
            return self.trend_subset
        return self.train_subset

    def growth_ratio(self, dataset: str, arch: str) -> float:
        """gamma of Table 1 for (dataset, arch), times `growth_ratio_scale`."""
        ratios = GROWTH_RATIO[_paper_key(dataset)]
        if arch not in ratios:
            raise ValueError(f"no growth ratio for arch {arch!r}; choose one of {', '.join(ratios)}")
        return ratios[arch] * self.growth_ratio_scale

    @property
    def rmsprop(self) -> Dict[str, float]:
        """RMSprop settings of the growth step: the `rmsprop_variant` preset at `rmsprop_lr`."""
        return dict(RMSPROP_PRESETS[self.rmsprop_variant], lr=self.rmsprop_lr)

    def resolved_device(self) -> str:
        """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'."""
        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def training_dict(self, family: str = "gearnn") -> Dict[str, Any]:
        """The fields training reads (what a trained run's identity hashes) for a method family."""
        if family == "adversarial":
            return {k: getattr(self, k) for k in ADVERSARIAL_SHARED_FIELDS + ADVERSARIAL_TRAINING_FIELDS}
        if family == "layers":
            fields = LAYERS_SHARED_FIELDS + LAYERS_TRAINING_FIELDS
            return {k: getattr(self, k) for k in fields if not _neutral(k, getattr(self, k))}
        skip = EVALUATION_FIELDS + BOOK_FIELDS + ADVERSARIAL_TRAINING_FIELDS + ADVERSARIAL_EVALUATION_FIELDS
        skip += LAYERS_TRAINING_FIELDS
        if self.growth_ratio_mode != "fit":
            skip += MEMORY_FIT_FIELDS
        return {k: v for k, v in self.to_dict().items() if k not in skip and not _neutral(k, v)}

    def evaluation_dict(self, family: str = "gearnn") -> Dict[str, Any]:
        """The fields only evaluation reads (test subset, images per corruption block, latency repeats)."""
        fields = ADVERSARIAL_EVALUATION_FIELDS if family == "adversarial" else EVALUATION_FIELDS
        return {k: getattr(self, k) for k in fields}

    def override(self, changes: Union[Mapping[str, Any], Iterable[str], None]) -> Profile:
        """A copy with fields replaced; accepts a mapping or 'key=value' strings (values parsed by type)."""
        parsed = parse_overrides(changes)
        return dataclasses.replace(self, **parsed) if parsed else self


def _neutral(key: str, value: Any) -> bool:
    """Whether a field holds the value that reproduces runs stored before it was added."""
    return key in NEUTRAL_WHEN_ADDED and value == NEUTRAL_WHEN_ADDED[key]


# Field constraints: (minimum, maximum) for numbers, or the allowed strings.
_RANGES: Dict[str, Tuple[float, float]] = {
    "batch_size": (1, 65536),
    "lr": (0.0, 10.0),
    "momentum": (0.0, 1.0),
    "weight_decay": (0.0, 1.0),
    "lr_gamma": (0.0, 1.0),
    "backbone_width": (1, 4096),
    "new_neurons": (1, 4096),
    "growth_batch_size": (1, 65536),
    "rmsprop_lr": (0.0, 1.0),
    "growth_ratio_scale": (0.0, 100.0),
    "memory_margin": (0.0, 0.9),
    "jsd_lambda": (0.0, 1000.0),
    "bn_recalibration": (0, 10**6),
    "epoch_scale": (0.0, 100.0),
    "epochs_e1": (0, 100000),
    "epochs_e2": (0, 100000),
    "epochs_er": (0, 100000),
    "epochs_small": (0, 100000),
    "train_subset": (0, 10**9),
    "trend_subset": (0, 10**9),
    "clean_floor": (0.0, 100.0),
    "prime_robust_epochs": (0, 100000),
    "test_subset": (0, 10**9),
    "robust_per_block": (0, 10**9),
    "latency_iters": (1, 10**6),
    "latency_windows": (1, 1000),
    "num_workers": (0, 256),
    "era_width": (1, 16),
    "era_depth": (-1, 16),
    "era_views": (0, 16),
    "adv_width": (1, 4096),
    "adv_epochs": (1, 100000),
    "adv_train_subset": (0, 10**9),
    "adv_eps": (0.0, 255.0),
    "adv_train_steps": (1, 1000),
    "adv_test_subset": (0, 10**9),
    "adv_eval_images": (0, 10**9),
    "adv_eval_steps": (1, 10000),
    "adv_eval_repeats": (1, 100),
    "adv_eot": (1, 1000),
    "layers_width": (1, 4096),
    "layers_epochs": (1, 100000),
    "layers_train_subset": (0, 10**9),
}
_CHOICES: Dict[str, Tuple[str, ...]] = {
    "name": PROFILE_NAMES,
    "rmsprop_variant": tuple(RMSPROP_PRESETS),
    "lr_scaling": LR_SCALINGS,
    "growth_ratio_mode": GROWTH_RATIO_MODES,
    "adv_arch": ("resnet10", "resnet18", "resnet34"),
    "layers_arch": ("resnet10", "resnet18", "resnet34", "vgg11"),
}


def _names(text: str) -> List[str]:
    """The names of a comma-separated setting such as trend_archs, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def validate(profile: Profile) -> None:
    """Check types and ranges of every field; raise ValueError naming the field, the value and the fix."""
    hints = typing.get_type_hints(Profile)
    for f in dataclasses.fields(profile):
        value = getattr(profile, f.name)
        kind = hints[f.name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ValueError(f"profile field {f.name!r} must be {kind.__name__}, got {value!r}")
        if f.name in _RANGES:
            low, high = _RANGES[f.name]
            if not (low <= value <= high) or (isinstance(value, float) and math.isnan(value)):
                raise ValueError(f"profile field {f.name!r} must be between {low} and {high}, got {value!r}")
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise ValueError(f"profile field {f.name!r} must be one of {_CHOICES[f.name]}, got {value!r}")
    if profile.device != "auto" and not (profile.device == "cpu" or profile.device.startswith("cuda")):
        raise ValueError(f"profile field 'device' must be auto, cpu, cuda or cuda:N, got {profile.device!r}")
    unknown = [a for a in _names(profile.trend_archs) if a not in ARCHS]
    if unknown:
        raise ValueError(
            f"profile field 'trend_archs' names unknown architecture(s) {', '.join(unknown)}; "
            f"use a comma-separated list of {', '.join(ARCHS)} (or nothing for all)"
        )
    if profile.memory_budget:
        parse_bytes(profile.memory_budget)  # a clear error for a size it cannot read
    if profile.growth_ratio_mode == "fit" and not profile.memory_budget:
        raise ValueError("growth_ratio_mode=fit needs a memory_budget, e.g. memory_budget=8GB")
    if profile.epoch_scale <= 0:
        raise ValueError(
            f"epoch_scale must be positive (epochs cannot be negative), got {profile.epoch_scale}"
        )


def _parse_value(name: str, raw: Any) -> Any:
    hints = typing.get_type_hints(Profile)
    kind = hints[name]
    if not isinstance(raw, str):
        return float(raw) if kind is float and isinstance(raw, int) and not isinstance(raw, bool) else raw
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(f"cannot read {name}={raw!r}: expected {kind.__name__}") from None
    return text


def split_pairs(items: Iterable[str], what: str = "setting") -> Dict[str, str]:
    """['lr=0.05', 'seed=1'] -> {'lr': '0.05', 'seed': '1'}: gearlib's one parser of key=value text."""
    pairs: Dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what} {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value
    return pairs


def parse_overrides(changes: Union[Mapping[str, Any], Iterable[str], None]) -> Dict[str, Any]:
    """Turn {'lr': '0.05'} or ['lr=0.05'] into typed values; unknown keys raise listing the valid ones."""
    if not changes:
        return {}
    pairs = dict(changes) if isinstance(changes, Mapping) else split_pairs(changes, "override")
    names = [f.name for f in dataclasses.fields(Profile)]
    unknown = sorted(set(pairs) - set(names))
    if unknown:
        raise ValueError(f"unknown profile setting(s) {unknown}; valid settings: {', '.join(names)}")
    return {k: _parse_value(k, v) for k, v in pairs.items()}


# The four profiles. Only values that differ from the paper's (quadro) defaults are listed.
_PROFILES: Dict[str, Dict[str, Any]] = {
    # CI and tests: minutes on a 2-core CPU, tiny data, one epoch per phase.
    "smoke": dict(
        device="cpu",
        num_workers=2,
        batch_size=32,  # twice the SGD steps of batch 64 for the same images (the smoke runs learn more)
        bn_recalibration=16,  # BN statistics over 16 batches (512 training images) at the final weights
        growth_batch_size=64,  # the machine
        backbone_width=16,
        new_neurons=20,  # the networks
        epoch_scale=0.025,
        train_subset=1024,  # training: 32 SGD steps a phase (at 16 the thin MobileNet-V1 may not leave chance)
        test_subset=1000,  # the whole synthetic test set: guessing stays under 11.9% (10% + 2 s.e.)
        robust_per_block=32,
        latency_iters=30,  # evaluation
        adv_arch="resnet10",
        adv_width=8,
        adv_epochs=2,
        adv_train_subset=512,
        adv_train_steps=3,  # adversarial training: 512 images, 2 epochs, PGD-3
        adv_test_subset=256,
        adv_eval_images=64,
        adv_eval_steps=3,
        adv_eval_repeats=2,
        adv_eot=2,  # adversarial evaluation
        layers_width=16,  # 16: every strided 1x1 conv keeps >= 16 input channels (oneDNN 6035, layout.py)
        layers_epochs=2,
        layers_train_subset=512,  # layer comparison: ResNet-18 at width 16, 512 images, 2 epochs
    ),  # fmt: skip
    # A laptop-scale reproduction sized for signal: 10,000 training images at a tenth of the paper's epochs
    # (its ratios between phases kept), 2,000 test images, 200 images per corruption block; c_0 24 with K 30
    # keeps K / c_0 = 1.25 as on smoke, so every Table 1 growth ratio is feasible. Measured cost: README.
    "cpu": dict(
        device="cpu",
        num_workers=2,
        batch_size=128,
        backbone_width=24,
        new_neurons=30,
        epoch_scale=0.1,
        train_subset=10000,
        trend_subset=4000,
        trend_archs="resnet18",
        clean_floor=30.0,
        prime_robust_epochs=8,
        test_subset=2000,
        robust_per_block=200,
        latency_iters=50,
        adv_arch="resnet10",
        adv_width=16,
        adv_epochs=15,
        adv_train_subset=5000,
        adv_train_steps=5,  # adversarial training: 5,000 images, 15 epochs, PGD-5
        adv_test_subset=1000,
        adv_eval_images=300,
        adv_eval_steps=10,
        adv_eot=4,  # adversarial evaluation: PGD-10, FGSM and EOT-PGD on 300 images, 3 repeats
        layers_width=16,
        layers_epochs=10,
        layers_train_subset=5000,  # layer comparison: ResNet-18 at a quarter width, 5,000 images, 10 epochs
    ),  # fmt: skip
    # The paper's server GPU (Quadro RTX 6000): the paper's settings.
    "quadro": dict(),
    # Jetson Xavier NX: K = 40 new neurons instead of 70 (Appendix A), no channels-last. Its 8 GB are shared
    # by CPU and GPU: growth_ratio_mode=fit keeps a quarter free for the OS, the CUDA context and the data.
    "jetson": dict(
        new_neurons=40, channels_last=False, num_workers=4, memory_budget="8GB", memory_margin=0.25
    ),
}


def get_profile(name: str, overrides: Union[Mapping[str, Any], Iterable[str], None] = None) -> Profile:
    """The named profile, with optional overrides ({'lr': 0.05} or ['lr=0.05'])."""
    if name not in _PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    base = Profile(name=name, **_PROFILES[name])
    return base.override(overrides)


# Make field defaults visible for documentation (`gearlib info --profiles`).
PROFILE_FIELDS = tuple(f.name for f in dataclasses.fields(Profile))
