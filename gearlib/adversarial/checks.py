"""The gradient-masking checklist (Athalye et al. 2018, as FLOAT's Table 2 uses it), measured on a trained
model at one knob setting: FGSM no stronger than PGD, accuracy to ~0 as eps grows, a plateau in K, EOT.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from gearlib.adversarial.evaluate import is_stochastic
from gearlib.adversarial.layers import Condition, conditioned
from gearlib.attacks import Attack, batches, make_attack, robust_accuracy

EPS_SWEEP = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # in units of 1/255
STEPS_SWEEP = (1, 3, 10, 20)
VANISHED = 5.0  # accuracy (%) at the largest radius below which robustness "vanishes" as it must
PLATEAU = 2.0  # points: the last step count changes accuracy by less than this


def masking_checks(
    model: nn.Module,
    condition: Condition,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8.0,
    steps: int = 10,
    eot: int = 4,
    repeats: int = 1,
    eps_sweep: Sequence[float] = EPS_SWEEP,
    steps_sweep: Sequence[int] = STEPS_SWEEP,
    device: Optional[torch.device] = None,
) -> Dict[str, Any]:
    """Accuracies (%) under FGSM, PGD over radii and step counts, and EOT-PGD, with computed verdicts.

    Args:
        model, condition: the trained network at the knob setting to check.
        x, y: float images in [0, 1] and labels (a few hundred suffice).
        eps: the radius of the FGSM / PGD / EOT comparison, in units of 1/255; steps: PGD's steps there.
        eot: gradient draws of EOT-PGD (only run for models that draw noise).
        repeats: evaluations per number (randomised models answer differently each time).
        eps_sweep: radii (1/255) of the PGD-`steps` sweep; steps_sweep: step counts at `eps`.

    Returns:
        JSON-able numbers and the four verdicts (True where the check passes).
    """
    data = batches(x, y, 250)

    def acc(attack: Any) -> float:
        return robust_accuracy(model, data, attack, repeats=repeats, device=device).mean

    out: Dict[str, Any] = {"eps": eps, "steps": steps, "repeats": repeats}
    with conditioned(model, condition):
        out["clean"] = acc(None)
        out["fgsm"] = acc(make_attack("fgsm", eps / 255))
        out["pgd"] = acc(Attack(f"pgd-{steps}", eps / 255, steps=steps))
        out["eps_sweep"] = {
            f"{e:g}": acc(Attack("pgd", e / 255, steps=steps)) if e > 0 else out["clean"] for e in eps_sweep
        }
        out["steps_sweep"] = {str(k): acc(Attack(f"pgd-{k}", eps / 255, steps=k)) for k in steps_sweep}
        out["eot_pgd"] = (
            acc(Attack("eot-pgd", eps / 255, steps=steps, eot=eot)) if is_stochastic(model) else None
        )
    counts = list(out["steps_sweep"].values())
    out["verdicts"] = {
        "fgsm no stronger than pgd": out["fgsm"] >= out["pgd"],
        "accuracy vanishes as eps grows": list(out["eps_sweep"].values())[-1] < VANISHED,
        "plateau in steps": len(counts) < 2 or abs(counts[-1] - counts[-2]) < PLATEAU,
        "eot no weaker than pgd": out["eot_pgd"] is None or out["eot_pgd"] <= out["pgd"] + PLATEAU,
    }
    return out
