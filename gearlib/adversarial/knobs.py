"""The inference knobs: FLOAT's lambda_n in [0, 1] with threshold lambda_th in {0, 0.5} (Eq. 6), SMART's and
OAT's lambda; each maps to a Condition (which BN set, how much weight noise, which mask path).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

from gearlib.adversarial.layers import Condition

TEST_LAMBDAS = (0.0, 0.2, 0.7, 1.0)  # the knob settings FLOAT and SMART report
THRESHOLDS = (0.0, 0.5)  # FLOAT's lambda_th
OAT_DEFAULT_LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 1.0)  # OAT's own default training set S_lambda
# gearlib trains OAT on FLOAT's comparison set, so that every test lambda is one it was trained at
OAT_TRAIN_LAMBDAS = TEST_LAMBDAS


def _check(lam: float, what: str = "lambda") -> float:
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"{what} must lie in [0, 1], got {lam}")
    return lam


def float_condition(lam_n: float, lam_th: float = 0.0) -> Condition:
    """FLOAT's knob (Eq. 6). lambda_th = 0: BN_A iff lambda_n > 0, noise lambda_n * alpha. lambda_th = 0.5:
    BN_C up to and including 0.5 with noise 2 lambda_n * alpha, above it BN_A with noise 2 (lambda_n - 0.5) *
    alpha, so each BN set sweeps its noise from 0 to alpha."""
    lam_n = _check(lam_n, "lambda_n")
    if lam_th not in THRESHOLDS:
        raise ValueError(f"lambda_th must be one of {THRESHOLDS}, got {lam_th}")
    if lam_th == 0.0:
        return Condition("adv" if lam_n > 0 else "clean", lam_n, "clean")
    if lam_n <= 0.5:
        return Condition("clean", 2.0 * lam_n, "clean")
    return Condition("adv", 2.0 * (lam_n - 0.5), "clean")


def smart_condition(lam: float) -> Condition:
    """SMART's knob: lambda = 0 takes the clean path (Pi_C, BN_C, no noise); lambda > 0 the adversarial path
    (Pi_A, BN_A, noise lambda * alpha). The two paths are never mixed."""
    lam = _check(lam)
    return Condition("clean", 0.0, "clean") if lam == 0 else Condition("adv", lam, "adv")


def oat_condition(lam: float) -> Condition:
    """OAT's knob: every FiLM reads lambda (one value for the whole batch); BN_C at lambda = 0, else BN_A."""
    lam = _check(lam)
    return Condition("clean" if lam == 0 else "adv", 0.0, "clean", torch.tensor([lam]))


SLIM_WIDTHS = (1.0, 0.5)  # FLOATS slim's slimming factors


def knob_settings(objective: str) -> List[Tuple[str, Dict[str, float]]]:
    """(label, knob values) of every setting a method is evaluated at, for the trade-off curves: FLOAT and
    FLOATS-i/-c sweep lambda_n under both thresholds, FLOATS slim also its slimming factors, SMART and OAT
    their lambda; PGD-AT has no knob."""
    floats = [
        (f"lam_n={lam:g},lam_th={th:g}", {"lam_n": lam, "lam_th": th})
        for th in THRESHOLDS
        for lam in TEST_LAMBDAS
    ]
    if objective == "floats-slim":
        return [(f"sf={sf:g},{label}", {"sf": sf, **knob}) for sf in SLIM_WIDTHS for label, knob in floats]
    if objective in ("float", "floats-i", "floats-c"):
        return floats
    if objective in ("smart", "oat", "oat-128"):
        return [(f"lam={lam:g}", {"lam": lam}) for lam in TEST_LAMBDAS]
    return [("fixed", {})]
