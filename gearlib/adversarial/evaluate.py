"""Evaluate an adversarially trained model at every knob setting: clean accuracy, FGSM, PGD-K and (for the
noisy models) EOT-PGD, each repeated, with the worst case over the attacks reported as its robust accuracy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional

import torch

from gearlib import seed_everything
from gearlib.adversarial.knobs import float_condition, knob_settings, oat_condition, smart_condition
from gearlib.adversarial.layers import Condition, NoisyMixin, conditioned
from gearlib.attacks import Attack, batches, evaluate_attacks, make_attack, robust_accuracy
from gearlib.data.images import stratified_indices
from gearlib.evaluate import COLLAPSE_SHARE, at_chance, prediction_share, predictions
from gearlib.profiles import Profile

EVAL_BATCH = 250


def knob_condition(objective: str, knob: Mapping[str, float]) -> Condition:
    """The Condition of a method's knob setting (FLOAT, FLOATS: lambda_n, lambda_th and the slimming factor
    sf; SMART, OAT: lambda)."""
    if "lam_n" in knob:
        return dataclasses.replace(float_condition(knob["lam_n"], knob["lam_th"]), width=knob.get("sf", 1.0))
    if objective == "smart":
        return smart_condition(knob["lam"])
    if objective.startswith("oat"):
        return oat_condition(knob["lam"])
    return Condition()


def _lam_key(condition: Condition) -> Any:
    return None if condition.lam is None else tuple(condition.lam.flatten().tolist())


def _robust_end(knob: Mapping[str, float]) -> bool:
    return knob.get("lam_n", knob.get("lam", 1.0)) == 1.0


def is_stochastic(model: torch.nn.Module) -> bool:
    """Whether the forward pass draws noise (any noisy layer): such models need EOT and repeats."""
    return any(isinstance(m, NoisyMixin) and m.alpha is not None for m in model.modules())


def eval_attacks(profile: Profile, eot: bool) -> List[Attack]:
    """FGSM, PGD-K at the profile's steps (OAT's step rule), and EOT-PGD-K where `eot`."""
    eps, steps = profile.adv_eps / 255.0, profile.adv_eval_steps
    attacks = [make_attack("fgsm", eps), Attack(f"pgd-{steps}", eps, steps=steps)]
    if eot:
        attacks.append(Attack(f"eot-pgd-{steps}", eps, steps=steps, eot=profile.adv_eot))
    return attacks


def evaluate_adversarial(
    model: torch.nn.Module,
    objective: str,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    profile: Profile,
    num_classes: int = 10,
    seed: int = 0,
    device: Optional[torch.device] = None,
) -> Dict[str, Any]:
    """Metrics of every knob setting of a trained model on uint8 test images (a class-balanced subset of
    adv_eval_images of them is attacked); deterministic under `seed`."""
    seed_everything(seed)
    device = device if device is not None else torch.device("cpu")
    model = model.to(device).eval()
    x = test_x.float().div(255.0)
    attacked = min(profile.adv_eval_images or len(x), len(x))
    pick = stratified_indices(test_y, attacked, seed)  # the attacked images: balanced over the classes
    clean_batches = batches(x, test_y, EVAL_BATCH)
    attack_batches = batches(x[pick], test_y[pick], EVAL_BATCH)
    stochastic = is_stochastic(model)
    repeats = profile.adv_eval_repeats
    settings: Dict[str, Any] = {}
    done: Dict[Any, str] = {}  # condition -> the label it was evaluated under
    for label, knob in knob_settings(objective):
        condition = knob_condition(objective, knob)
        key = (condition.bn, condition.noise, condition.path, condition.width, _lam_key(condition))
        if key in done:  # e.g. FLOAT's lambda_n = 1 is the same network under both thresholds
            settings[label] = {**settings[done[key]], "knob": dict(knob), "same_as": done[key]}
            continue
        done[key] = label
        # EOT-PGD at the robust end of the knob (lambda = 1, the trained noisy path); its cost (adv_eot
        # gradient draws per step) rules it out at every setting on a CPU (book/notes/adversarial.md)
        eot = stochastic and condition.noise > 0 and _robust_end(knob)
        with conditioned(model, condition):
            clean = robust_accuracy(
                model, clean_batches, None, repeats=repeats if stochastic else 1, device=device
            )
            report = evaluate_attacks(model, attack_batches, eval_attacks(profile, eot), repeats, device)
            share = prediction_share(predictions(model, test_x, EVAL_BATCH, device))
        settings[label] = {
            "knob": dict(knob), "bn": condition.bn, "noise": condition.noise, "path": condition.path,
            "clean_acc": clean.mean, "clean_std": clean.std, "clean_accuracies": clean.accuracies,
            "attacks": {name: r.to_dict() for name, r in report.results.items()},
            "adv_acc": report.worst_accuracy, "worst_attack": report.worst,
            "top_class_share": share, "collapsed": share >= COLLAPSE_SHARE,
        }  # fmt: skip
    first = next(iter(settings.values()))
    last = list(settings.values())[-1]
    return {
        "evaluation": profile.evaluation_dict("adversarial"),
        "test_images": len(x), "attacked_images": attacked, "stochastic": stochastic,
        "attacks": [a.to_dict() for a in eval_attacks(profile, stochastic)],
        "adv_settings": settings,
        # headline numbers: clean accuracy at the clean end of the knob, robust accuracy at its robust end
        "clean_acc": first["clean_acc"], "robust_acc": last["adv_acc"],
        "robust_source": f"worst of {', '.join(last['attacks'])} at {list(settings)[-1]}",
        "collapsed": any(s["collapsed"] for s in settings.values()),
        "top_class_share": max(s["top_class_share"] for s in settings.values()),
        "at_chance": at_chance(first["clean_acc"], len(x), num_classes),
    }  # fmt: skip
