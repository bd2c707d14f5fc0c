"""Methods by name, each a plan of steps: train E epochs on some augmentation, grow once (Firefly), take
the widths of another method's run, or train adversarially. Plans are registered with `@register` next to
their definition.

GEARnn-1/-2, the Small baselines, N-shot growth, the Table 7 ablation, the adversarial methods (PGD-AT,
OAT, FLOAT, SMART) and the layer comparison (GroupNL, Ghost, SineFM, MonoCNN, vanilla) are all short lists
of steps, so the runner (gearlib.train.runner) can time, meter, checkpoint and resume every one of them the
same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from gearlib.grow.memory import fit_growth_ratio
from gearlib.profiles import Profile

PlanFn = Callable[[Profile, str, str], List["Step"]]
STEP_KINDS = ("train", "grow", "topology", "adversarial")
FAMILIES = ("gearnn", "adversarial", "layers")


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    Attributes:
        kind: "train" (a stage trainer run of `epochs` epochs), "grow" (one Firefly growth step) or
            "topology" (rebuild the network, freshly initialised, with the final widths of the stored
            `source` run: the Small baselines' GEARnn-2 topology).
        stage: the label costs are reported under (Table 6: osg1, osg2 (growth + E_2), era ...).
        augment: augmentation of the batches: clean, augmix, era, era_j3, prime, era_prime.
        epochs: epochs of a train step.
        growth_ratio: gamma of a grow step (its neuron budget is floor(gamma * sum of widths)).
        source: the method whose run a topology step reads (same profile, arch, dataset and seed).
        objective: the loss of an adversarial step: pgd-at, float, smart or oat (gearlib.adversarial).
        lam: PGD-AT's fixed lambda, the weight of the adversarial loss term.
        layer: the conv layer of a layer-comparison network ("conv", "groupnl", "ghost", "sinefm", "monocnn";
            gearlib.layers.models); empty for the growable GEARnn networks.
        schedule: lr schedule of a train step: "step" (GEARnn's stage trainer: Nesterov SGD, x0.1 at 1/2 and
            3/4 of the epochs) or "cosine" (the GroupNL paper's recipe: momentum SGD, cosine annealing).
    """

    kind: str
    stage: str
    augment: str = "clean"
    epochs: int = 0
    growth_ratio: float = 0.0
    source: str = ""
    objective: str = ""
    lam: float = 0.0
    layer: str = ""
    schedule: str = "step"


@dataclass(frozen=True)
class Method:
    """A registered method: its name, what it is, where the paper reports it, its plan, and its family
    ("gearnn": growth and robust augmentation on the GEARnn backbones; "adversarial": the conditional
    CIFAR ResNets of FLOAT and SMART, evaluated under attack; "layers": CIFAR networks built from GroupNL or
    one of its baseline layers, evaluated like GEARnn's)."""

    name: str
    description: str
    plan: PlanFn
    paper: str = ""
    family: str = "gearnn"

    def topology_source(
        self, profile: Profile, dataset: str = "cifar10", arch: str = "vgg19"
    ) -> Optional[str]:
        """The method whose run this one takes its widths from (a topology step), or None."""
        return next((s.source for s in self.plan(profile, dataset, arch) if s.kind == "topology"), None)


METHODS: Dict[str, Method] = {}


def register(
    name: str, description: str, paper: str = "", family: str = "gearnn"
) -> Callable[[PlanFn], PlanFn]:
    """Decorator: register a plan function under `name` (refuses a second method of the same name)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def add(plan: PlanFn) -> PlanFn:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = Method(name, description, plan, paper, family)
        return plan

    return add


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def plan_for(name: str, profile: Profile, dataset: str, arch: str) -> Tuple[Method, List[Step]]:
    """The method and its plan for a profile, dataset and architecture."""
    method = get_method(name)
    return method, method.plan(profile, dataset, arch)


# -- plan arithmetic ------------------------------------------------------------------------------------
def split_epochs(total: int, parts: int) -> List[int]:
    """Split `total` epochs into `parts` near-equal stages, longer ones first (80, 3 -> [27, 27, 26])."""
    if parts < 1 or total < 0:
        raise ValueError(f"need parts >= 1 and total >= 0 epochs, got {parts}, {total}")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def per_step_ratio(growth_ratio: float, steps: int) -> float:
    """Per-step ratio of N-shot growth, gamma_N = (1 + gamma)^(1/N) - 1 (exactly gamma for N = 1): N steps
    compound to the one-shot budget."""
    if steps < 1:
        raise ValueError(f"steps (N) must be >= 1, got {steps}")
    return float(growth_ratio) if steps == 1 else (1.0 + growth_ratio) ** (1.0 / steps) - 1.0


def feasible_ratio(profile: Profile, dataset: str, arch: str, augment: str = "clean") -> float:
    """Table 1's gamma, capped where K new neurons per layer cannot supply the budget; under
    growth_ratio_mode=fit, the largest gamma up to that whose growth (on `augment` batches) and grown network
    fit the profile's memory budget (gearlib.grow.memory.fit_growth_ratio; growth_fit gives its report).

    A uniform backbone can grow by at most c_0 + K per layer, so gamma must stay below 1 + K / c_0. With
    the Jetson's K = 40 and c_0 = 45 this binds for MobileNet on CIFAR-100 (gamma 2.0): we then keep one
    neuron per layer of margin, gamma = 1 + (K - 1) / c_0, and the plan records the gamma used.
    """
    if profile.growth_ratio_mode == "fit":
        return growth_fit(profile, dataset, arch, augment)[0]
    gamma = profile.growth_ratio(dataset, arch)
    cap = 1.0 + (profile.new_neurons - 1) / profile.backbone_width
    return min(gamma, cap)


def growth_fit(profile: Profile, dataset: str, arch: str, augment: str = "clean") -> Tuple[float, Dict]:
    """(gamma, report) of memory-aware One-Shot Growth (cached: each profile, dataset and arch is measured
    once per process)."""
    return fit_growth_ratio(profile, dataset, arch, augment)


def growth_phase(
    profile: Profile, dataset: str, arch: str, schedule: str, augment: str, steps: int
) -> List[Step]:
    """N growth steps between N+1 train stages over E_1 + E_2 epochs (N = 1 is One-Shot Growth)."""
    epochs = profile.epochs(schedule, dataset)
    if steps > 1 and profile.growth_ratio_mode == "fit":
        raise ValueError(
            f"growth_ratio_mode=fit bounds One-Shot Growth only; {steps}-shot growth needs growth_ratio_mode=table1"
        )
    gamma = feasible_ratio(profile, dataset, arch, augment)
    if steps == 1:
        return [
            Step("train", "osg1", augment, epochs["E1"]),
            Step("grow", "osg2", augment, growth_ratio=gamma),
            Step("train", "osg2", augment, epochs["E2"]),
        ]
    per_step = per_step_ratio(gamma, steps)  # the same final neuron budget, compounded
    plan: List[Step] = []
    for i, size in enumerate(split_epochs(epochs["E1"] + epochs["E2"], steps + 1)):
        stage = "osg1" if i == 0 else "osg2"
        if i > 0:
            plan.append(Step("grow", stage, augment, growth_ratio=per_step))
        plan.append(Step("train", stage, augment, max(1, size)))
    return plan


# -- GEARnn ---------------------------------------------------------------------------------------------
@register("gearnn1", "GEARnn-1: One-Shot Growth on ERA data (1-phase)", "Tables 2, 3")
def gearnn1(profile: Profile, dataset: str, arch: str, steps: int = 1, prime: bool = False) -> List[Step]:
    """GEARnn-1: growth and training on ERA batches throughout (one phase)."""
    return growth_phase(profile, dataset, arch, "gearnn1", "era_prime" if prime else "era", steps)


@register("gearnn2", "GEARnn-2: One-Shot Growth on clean data, then ERA (2-phase)", "Tables 2, 3")
def gearnn2(
    profile: Profile, dataset: str, arch: str, steps: int = 1, prime: bool = False, robust: str = ""
) -> List[Step]:
    """GEARnn-2: growth on clean data (phase 1), then E_R epochs of robust augmentation (phase 2)."""
    augment = robust or ("era_prime" if prime else "era")
    er = profile.epochs("gearnn2", dataset)["ER"]
    stage = "era" if augment.startswith("era") else augment
    return growth_phase(profile, dataset, arch, "gearnn2", "clean", steps) + [
        Step("train", stage, augment, er)
    ]


@register("osg-clean", "One-Shot Growth on clean data only (phase 1 of GEARnn-2)", "Tables 7, 10")
def osg_clean(profile: Profile, dataset: str, arch: str, steps: int = 1) -> List[Step]:
    """Phase 1 of GEARnn-2 alone: growth on clean data."""
    return growth_phase(profile, dataset, arch, "gearnn2", "clean", steps)


register("gearnn1-prime", "GEARnn-1 with PRIME primitives inside ERA", "Table 5")(
    functools.partial(gearnn1, prime=True)
)
register("gearnn2-prime", "GEARnn-2 with PRIME primitives inside ERA", "Table 5")(
    functools.partial(gearnn2, prime=True)
)
register("osg-augmix", "Table 7: One-Shot Growth on clean data, then AugMix", "Table 7")(
    functools.partial(gearnn2, robust="augmix")
)
for _n in (2, 3, 4, 5):
    register(f"gearnn1-n{_n}", f"GEARnn-1 with {_n}-shot growth", "Tables 4, 11")(
        functools.partial(gearnn1, steps=_n)
    )
    register(f"gearnn2-n{_n}", f"GEARnn-2 with {_n}-shot growth", "Table 4")(
        functools.partial(gearnn2, steps=_n)
    )
    register(f"osg-clean-n{_n}", f"{_n}-shot growth on clean data only", "Table 10")(
        functools.partial(osg_clean, steps=_n)
    )


# -- baselines on GEARnn-2's topology -------------------------------------------------------------------
@register("small-clean", "Small(D): GEARnn-2's topology, random init, clean training", "Tables 2, 3")
def small(profile: Profile, dataset: str, arch: str, augment: str = "clean") -> List[Step]:
    """Small(D): GEARnn-2's final widths, freshly initialised, trained E epochs on `augment` batches."""
    epochs = profile.epochs("small", dataset)["E"]
    return [Step("topology", "setup", source="gearnn2"), Step("train", "train", augment, epochs)]


@register("phase1-vanilla", "Table 7: fixed network, clean E1+E2 epochs only", "Table 7")
def fixed_then_robust(profile: Profile, dataset: str, arch: str, robust: str = "") -> List[Step]:
    """Table 7: GEARnn-2's topology trained E_1 + E_2 clean epochs, then E_R robust epochs (if `robust`)."""
    e = profile.epochs("gearnn2", dataset)
    steps = [Step("topology", "setup", source="gearnn2"), Step("train", "phase1", "clean", e["E1"] + e["E2"])]
    return steps + ([Step("train", "phase2", robust, e["ER"])] if robust else [])


@register("phase2-era", "Table 7: ERA for E_R epochs from scratch", "Table 7")
def robust_only(profile: Profile, dataset: str, arch: str, robust: str = "era") -> List[Step]:
    """Table 7: GEARnn-2's topology trained only E_R robust epochs, from scratch."""
    er = profile.epochs("gearnn2", dataset)["ER"]
    return [Step("topology", "setup", source="gearnn2"), Step("train", "phase2", robust, er)]


for _augment, _text, _paper in (
    ("augmix", "Small(D_aug): GEARnn-2's topology trained with AugMix + JSD", "Tables 2, 3 (main baseline)"),
    ("era", "GEARnn-2's topology trained with ERA + JSD", "Table 9"),
    ("prime", "GEARnn-2's topology trained with PRIME + JSD", "Table 5"),
):
    register(f"small-{_augment}", _text, _paper)(functools.partial(small, augment=_augment))
register("vanilla-augmix", "Table 7: fixed network, clean E1+E2 epochs, then AugMix", "Table 7")(
    functools.partial(fixed_then_robust, robust="augmix")
)
register("vanilla-era", "Table 7: fixed network, clean E1+E2 epochs, then ERA", "Table 7")(
    functools.partial(fixed_then_robust, robust="era")
)
register("phase2-augmix", "Table 7: AugMix for E_R epochs from scratch", "Table 7")(
    functools.partial(robust_only, robust="augmix")
)


# -- adversarial training with an in-situ knob (FLOAT, SMART and their baselines) --------------------------
@register(
    "float", "FLOAT: noisy weights and dual BN, half-clean / half-PGD batches", "FLOAT Table 1", "adversarial"
)
def float_at(profile: Profile, dataset: str, arch: str, objective: str = "float") -> List[Step]:
    """FLOAT (and SMART, OAT): one adversarial stage of `adv_epochs` epochs with the method's objective."""
    return [Step("adversarial", objective, "crop_flip", profile.adv_epochs, objective=objective)]


register("floats-i", "FLOATS-i: FLOAT with 10% of its weights kept (sparse momentum)", "FLOAT Table 1",
         "adversarial")(functools.partial(float_at, objective="floats-i"))  # fmt: skip
register("floats-c", "FLOATS-c: FLOAT with input channels pruned to about 34% (sparse momentum)",
         "FLOAT Table 1", "adversarial")(functools.partial(float_at, objective="floats-c"))  # fmt: skip
register("floats-slim", "FLOATS slim: FLOATS-i at 30% with slimming factors 1.0 and 0.5", "FLOAT Table 1",
         "adversarial")(functools.partial(float_at, objective="floats-slim"))  # fmt: skip
register("smart", "SMART: FLOAT with two frozen masks (clean / adversarial paths) in stages 3-4", "SMART Tables 1, 2",
         "adversarial")(functools.partial(float_at, objective="smart"))  # fmt: skip
register("oat-128", "OAT with its public code's 128-d orthogonal encoding of lambda", "OAT (optional)",
         "adversarial")(functools.partial(float_at, objective="oat-128"))  # fmt: skip
register("oat", "OAT: FiLM on lambda and dual BN, lambda sampled per sample", "FLOAT Table 1 (baseline)",
         "adversarial")(functools.partial(float_at, objective="oat"))  # fmt: skip


@register("pgd-at", "PGD-AT at lambda = 1: the whole batch attacked, one model per lambda", "FLOAT, SMART Table 2",
          "adversarial")  # fmt: skip
def pgd_at(profile: Profile, dataset: str, arch: str, lam: float = 1.0) -> List[Step]:
    """PGD-AT with a fixed lambda: (1 - lambda) CE(clean) + lambda CE(PGD); lambda = 0 is plain training."""
    return [Step("adversarial", "pgd-at", "crop_flip", profile.adv_epochs, objective="pgd-at", lam=lam)]


for _lam in (0.0, 0.2, 0.7):
    register(f"pgd-at-{_lam:g}", f"PGD-AT at lambda = {_lam:g}", "FLOAT's PGD-AT comparison", "adversarial")(
        functools.partial(pgd_at, lam=_lam)
    )


# -- robust lightweight layers (GroupNL and its baselines) ------------------------------------------------
def layer_training(
    profile: Profile, dataset: str, arch: str, layer: str, augment: str = "clean"
) -> List[Step]:
    """The layer comparison: the profile's `layers_arch` with `layer` convs, trained `layers_epochs` epochs on
    `augment` batches with the GroupNL paper's cosine schedule."""
    return [Step("train", "train", augment, profile.layers_epochs, layer=layer, schedule="cosine")]


_ARCH = "layers_arch network (ResNet-18 by default)"
for _name, _layer, _text, _paper in (
    ("vanilla", "conv", "the layer comparison's reference: plain convs", "GroupNL Tables 3, 5"),
    (
        "groupnl",
        "groupnl",
        "GroupNL: seed conv, grouped fixed sinusoids (r = 2, g = 4)",
        "GroupNL Tables 3, 5",
    ),
    (
        "ghost",
        "ghost",
        "Ghost module: primary conv plus a depthwise 3x3 cheap op (r = 2)",
        "GroupNL Tables 3, 5",
    ),
    (
        "sinefm",
        "sinefm",
        "SineFM: seed conv, 5 fixed sinusoids, BN, grouped 1x1 (r = 2)",
        "GroupNL Tables 3, 5",
    ),
    ("sinefm-raw", "sinefm-raw", "SineFM, its sinusoids on the raw seed maps (our first reading)", ""),
    (
        "monocnn",
        "monocnn",
        "MonoCNN: seed filters tiled by fixed monomials, eta in [1, 7]",
        "GroupNL Tables 3, 5",
    ),
):
    register(_name, f"{_text}; clean training, {_ARCH}", _paper, "layers")(
        functools.partial(layer_training, layer=_layer)
    )
for _augment, _label in (("augmix", "AugMix + JSD"), ("era", "ERA + JSD")):
    register(f"groupnl-{_augment}", f"GroupNL trained with {_label} (no paper tried this), {_ARCH}", "",
             "layers")(functools.partial(layer_training, layer="groupnl", augment=_augment))  # fmt: skip
