"""Methods by name, each a plan of steps: train E epochs on some augmentation, or grow once (Firefly).

GEARnn-1/-2, the Small baselines, N-shot growth and the Table 7 ablation are all short lists of steps, so the
runner (gearlib.train.runner) can time, meter, checkpoint and resume every one of them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from gearlib.grow.drivers import per_step_ratio, split_epochs
from gearlib.profiles import Profile


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    Attributes:
        kind: "train" (a stage trainer run of `epochs` epochs) or "grow" (one Firefly growth step).
        stage: the label costs are reported under (Table 6: osg1, osg2 (growth + E_2), era ...).
        augment: augmentation of the batches: clean, augmix, era, era_j3, prime, era_prime.
        epochs: epochs of a train step.
        growth_ratio: gamma of a grow step (its neuron budget is floor(gamma * sum of widths)).
    """

    kind: str
    stage: str
    augment: str = "clean"
    epochs: int = 0
    growth_ratio: float = 0.0


@dataclass(frozen=True)
class Method:
    """A method: where its network starts and how its plan is built from the profile."""

    name: str
    description: str
    start: str  # "backbone" (thin c_0 network) or "small" (GEARnn-2's grown widths, random init)
    plan: Callable[[Profile, str, str], List[Step]]
    paper: str = ""  # where the paper reports it


def _era(profile: Profile, prime: bool = False) -> str:
    return "era_prime" if prime else "era"


def feasible_ratio(profile: Profile, dataset: str, arch: str) -> float:
    """Table 1's gamma, capped where K new neurons per layer cannot supply the budget (spec 2.3, 9.7).

    A uniform backbone can grow by at most c_0 + K per layer, so gamma must stay below 1 + K / c_0. With
    the Jetson's K = 40 and c_0 = 45 this binds for MobileNet on CIFAR-100 (gamma 2.0): we then keep one
    neuron per layer of margin, gamma = 1 + (K - 1) / c_0, and the plan records the gamma used.
    """
    gamma = profile.growth_ratio(dataset, arch)
    cap = 1.0 + (profile.new_neurons - 1) / profile.backbone_width
    return min(gamma, cap)


def _osg(profile: Profile, dataset: str, arch: str, schedule: str, augment: str, steps: int) -> List[Step]:
    """Growth phase: N growth steps between N+1 train stages (N = 1 is One-Shot Growth)."""
    epochs = profile.epochs(schedule, dataset)
    gamma = feasible_ratio(profile, dataset, arch)
    if steps == 1:
        return [
            Step("train", "osg1", augment, epochs["E1"]),
            Step("grow", "osg2", augment, growth_ratio=gamma),
            Step("train", "osg2", augment, epochs["E2"]),
        ]
    # N-shot: the same final neuron budget, compounded: (1 + g)^N = 1 + gamma, over N + 1 stages.
    per_step = per_step_ratio(gamma, steps)
    sizes = split_epochs(epochs["E1"] + epochs["E2"], steps + 1)
    plan: List[Step] = []
    for i, size in enumerate(sizes):
        stage = "osg1" if i == 0 else "osg2"
        if i > 0:
            plan.append(Step("grow", stage, augment, growth_ratio=per_step))
        plan.append(Step("train", stage, augment, max(1, size)))
    return plan


def _gearnn1(steps: int = 1, prime: bool = False) -> Callable[[Profile, str, str], List[Step]]:
    def plan(profile: Profile, dataset: str, arch: str) -> List[Step]:
        return _osg(profile, dataset, arch, "gearnn1", _era(profile, prime), steps)

    return plan


def _gearnn2(
    steps: int = 1, prime: bool = False, robust: str = ""
) -> Callable[[Profile, str, str], List[Step]]:
    def plan(profile: Profile, dataset: str, arch: str) -> List[Step]:
        augment = robust or _era(profile, prime)
        er = profile.epochs("gearnn2", dataset)["ER"]
        stage = "era" if augment.startswith("era") else augment
        return _osg(profile, dataset, arch, "gearnn2", "clean", steps) + [Step("train", stage, augment, er)]

    return plan


def _osg_clean(steps: int = 1) -> Callable[[Profile, str, str], List[Step]]:
    def plan(profile: Profile, dataset: str, arch: str) -> List[Step]:
        return _osg(profile, dataset, arch, "gearnn2", "clean", steps)

    return plan


def _small(augment: str) -> Callable[[Profile, str, str], List[Step]]:
    def plan(profile: Profile, dataset: str, arch: str) -> List[Step]:
        return [Step("train", "train", augment, profile.epochs("small", dataset)["E"])]

    return plan


def _vanilla_then(robust: str) -> Callable[[Profile, str, str], List[Step]]:
    """Table 7: a fixed network trained E_1 + E_2 clean epochs, then E_R robust epochs."""

    def plan(profile: Profile, dataset: str, arch: str) -> List[Step]:
        e = profile.epochs("gearnn2", dataset)
        steps = [Step("train", "phase1", "clean", e["E1"] + e["E2"])]
        if robust:
            steps.append(Step("train", "phase2", robust, e["ER"]))
        return steps

    return plan


def _phase2_only(robust: str) -> Callable[[Profile, str, str], List[Step]]:
    def plan(profile: Profile, dataset: str, arch: str) -> List[Step]:
        return [Step("train", "phase2", robust, profile.epochs("gearnn2", dataset)["ER"])]

    return plan


def _build_registry() -> Dict[str, Method]:
    methods = [
        Method(
            "small-clean",
            "Small(D): GEARnn-2's topology, random init, clean training",
            "small",
            _small("clean"),
            "Tables 2, 3",
        ),
        Method(
            "small-augmix",
            "Small(D_aug): GEARnn-2's topology trained with AugMix + JSD",
            "small",
            _small("augmix"),
            "Tables 2, 3 (main baseline)",
        ),
        Method(
            "small-era",
            "GEARnn-2's topology trained with ERA + JSD (Table 9)",
            "small",
            _small("era"),
            "Table 9",
        ),
        Method(
            "small-prime", "GEARnn-2's topology trained with PRIME + JSD", "small", _small("prime"), "Table 5"
        ),
        Method(
            "gearnn1",
            "GEARnn-1: One-Shot Growth on ERA data (1-phase)",
            "backbone",
            _gearnn1(),
            "Tables 2, 3",
        ),
        Method(
            "gearnn2",
            "GEARnn-2: One-Shot Growth on clean data, then ERA (2-phase)",
            "backbone",
            _gearnn2(),
            "Tables 2, 3",
        ),
        Method(
            "gearnn1-prime",
            "GEARnn-1 with PRIME primitives inside ERA",
            "backbone",
            _gearnn1(prime=True),
            "Table 5",
        ),
        Method(
            "gearnn2-prime",
            "GEARnn-2 with PRIME primitives inside ERA",
            "backbone",
            _gearnn2(prime=True),
            "Table 5",
        ),
        Method(
            "osg-clean",
            "One-Shot Growth on clean data only (phase 1 of GEARnn-2)",
            "backbone",
            _osg_clean(),
            "Tables 7, 10",
        ),
        Method(
            "vanilla-augmix",
            "Table 7: fixed network, clean E1+E2 epochs, then AugMix",
            "small",
            _vanilla_then("augmix"),
            "Table 7",
        ),
        Method(
            "vanilla-era",
            "Table 7: fixed network, clean E1+E2 epochs, then ERA",
            "small",
            _vanilla_then("era"),
            "Table 7",
        ),
        Method(
            "osg-augmix",
            "Table 7: One-Shot Growth on clean data, then AugMix",
            "backbone",
            _gearnn2(robust="augmix"),
            "Table 7",
        ),
        Method(
            "phase1-vanilla",
            "Table 7: fixed network, clean E1+E2 epochs only",
            "small",
            _vanilla_then(""),
            "Table 7",
        ),
        Method(
            "phase2-augmix",
            "Table 7: AugMix for E_R epochs from scratch",
            "small",
            _phase2_only("augmix"),
            "Table 7",
        ),
        Method(
            "phase2-era", "Table 7: ERA for E_R epochs from scratch", "small", _phase2_only("era"), "Table 7"
        ),
    ]
    for n in (2, 3, 4, 5):
        methods += [
            Method(
                f"gearnn1-n{n}",
                f"GEARnn-1 with {n}-shot growth",
                "backbone",
                _gearnn1(steps=n),
                "Tables 4, 11",
            ),
            Method(
                f"gearnn2-n{n}", f"GEARnn-2 with {n}-shot growth", "backbone", _gearnn2(steps=n), "Table 4"
            ),
            Method(
                f"osg-clean-n{n}",
                f"{n}-shot growth on clean data only",
                "backbone",
                _osg_clean(steps=n),
                "Table 10",
            ),
        ]
    return {m.name: m for m in methods}


METHODS: Dict[str, Method] = _build_registry()


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def plan_for(name: str, profile: Profile, dataset: str, arch: str) -> Tuple[Method, List[Step]]:
    """The method and its plan for a profile, dataset and architecture."""
    method = get_method(name)
    return method, method.plan(profile, dataset, arch)
