"""White-box L-inf attacks (FGSM, PGD, EOT-PGD) and adversarial ("robust") accuracy under them.

Inputs are images in [0, 1]; any normalisation lives inside the model. Attacks never change BN statistics.
"""

from __future__ import annotations

import contextlib
import operator
import statistics
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
# EOT draws per step for the named EOT attacks (Athalye et al. 2018 average the gradient over random draws
# of the defence; 10 draws keeps EOT-PGD-20 at 200 forward/backward passes per batch).
EOT_DRAWS = 10
CLEAN = "clean"
AUTOATTACK_INSTALL = "pip install git+https://github.com/fra31/auto-attack"


def oat_step_size(eps: float, steps: int) -> float:
    """The PGD step size of OAT (Wang et al. 2020): min(1.25 * eps, eps + 4/255) / steps.

    PGD-7 at eps 8/255 steps (10/255) / 7 (about 1.43/255); PGD-20 steps 0.5/255.
    """
    _check_eps(eps)
    _check_count("steps", steps)
    return min(1.25 * eps, eps + 4 / 255) / steps


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the duration; every flag is restored exactly on exit.

    Each submodule's `training` flag and each parameter's `requires_grad` are put back as they were (a
    model with some submodules in eval mode stays mixed), also when the body raises. In eval mode BatchNorm
    uses and never updates its running statistics, so an attack leaves them unchanged.
    """
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.requires_grad) for param in model.parameters()]
    try:
        model.eval()
        for param, _ in grads:
            param.requires_grad_(False)
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, requires_grad in grads:
            param.requires_grad_(requires_grad)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    steps: int = 10,
    step_size: Optional[float] = None,
    random_start: bool = True,
    eot: int = 1,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """L-inf PGD on the cross-entropy (Madry et al. 2018), optionally with Expectation over Transformation.

    x0 = clip01(x + U(-eps, eps)) (or x without `random_start`), then `steps` times
    x <- clip01(proj_eps(x + step_size * sign(grad))). Runs inside `attack_mode`.

    Args:
        model: maps a batch in [0, 1] to logits.
        x: the clean batch, values in [0, 1].
        y: the integer labels, one per image.
        eps: L-inf radius, in [0, 1]; 0 returns a copy of x.
        steps: gradient steps, >= 1.
        step_size: the step; None means `oat_step_size(eps, steps)`.
        random_start: start from a uniform point of the eps-ball (clipped to [0, 1]).
        eot: forward/backward passes per step whose gradients are averaged (EOT, Athalye et al. 2018), for
            models whose forward is random (noisy weights or activations); 1 for deterministic models.
        generator: seeds the random start (the global generator when None).

    Returns:
        The adversarial batch, detached, with the dtype and device of x.
    """
    _check_attack(eps, steps, step_size, eot)
    _check_batch(x, y)
    if step_size is None:
        step_size = oat_step_size(eps, steps)
    x = x.detach()
    if eps == 0:
        return x.clone()
    # The eps-ball intersected with [0, 1]: clamping to it is clip01(proj_eps(.)) since x lies in [0, 1].
    lower = (x - eps).clamp(min=0)
    upper = (x + eps).clamp(max=1)
    if random_start:
        device = generator.device if generator is not None else x.device
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
        x_adv = torch.max(torch.min(x + (2 * noise - 1) * eps, upper), lower)
    else:
        x_adv = x.clone()
    with attack_mode(model), torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            grad = torch.zeros_like(x_adv)
            for _ in range(eot):
                # Summed over the batch: each image's gradient is its own loss's gradient (eval mode).
                loss = F.cross_entropy(model(x_adv), y, reduction="sum")
                grad = grad + torch.autograd.grad(loss, x_adv)[0]
            x_adv = x_adv.detach() + step_size * (grad / eot).sign()
            x_adv = torch.max(torch.min(x_adv, upper), lower)
    return x_adv.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps from x, clipped to [0, 1]."""
    return pgd(model, x, y, eps=eps, steps=1, step_size=eps, random_start=False)


def eot_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    steps: int = 10,
    draws: int = EOT_DRAWS,
    step_size: Optional[float] = None,
    random_start: bool = True,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """PGD whose every step averages the gradient over `draws` passes (EOT, Athalye et al. 2018)."""
    return pgd(model, x, y, eps, steps, step_size, random_start, eot=draws, generator=generator)


@dataclass(frozen=True)
class Attack:
    """A named PGD configuration, callable as `attack(model, x, y) -> x_adv`.

    Attributes:
        name: registry name, e.g. "pgd-20"; its upper case titles the description.
        eps: L-inf radius in [0, 1].
        steps: gradient steps.
        step_size: the step; None means OAT's rule (`oat_step_size`).
        random_start: start from a uniform point of the eps-ball.
        eot: gradient draws averaged per step (1: plain PGD).
    """

    name: str
    eps: float = 8 / 255
    steps: int = 10
    step_size: Optional[float] = None
    random_start: bool = True
    eot: int = 1

    def __post_init__(self) -> None:
        _check_attack(self.eps, self.steps, self.step_size, self.eot)

    @property
    def step(self) -> float:
        """The step size actually taken."""
        return oat_step_size(self.eps, self.steps) if self.step_size is None else self.step_size

    @property
    def description(self) -> str:
        """The settings for a table, e.g. "PGD-20, eps 8/255, step 0.5/255"."""
        parts = [self.name.upper(), f"eps {in_255(self.eps)}"]
        if not (self.steps == 1 and not self.random_start and self.step == self.eps):  # FGSM: step = eps
            parts.append(f"step {in_255(self.step)}")
        if self.eot > 1:
            parts.append(f"EOT {self.eot} draws")
        if not self.random_start and self.steps > 1:
            parts.append("no random start")
        return ", ".join(parts)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(model, x, y, self.eps, self.steps, self.step, self.random_start, self.eot)

    def to_dict(self) -> Dict[str, Any]:
        """Plain, JSON-serialisable settings (the step resolved)."""
        return {**asdict(self), "step_size": self.step, "description": self.description}


def _fgsm_config(eps: float) -> Attack:
    return Attack("fgsm", eps, steps=1, step_size=eps, random_start=False)


# Named attack configurations: name -> builder of the Attack at a given eps. PGD-7 is OAT's training attack;
# PGD-20 the usual evaluation; EOT-PGD is the attack that randomised defences must be reported under.
ATTACKS: Dict[str, Callable[[float], Attack]] = {
    "fgsm": _fgsm_config,
    "pgd-7": partial(Attack, "pgd-7", steps=7),
    "pgd-10": partial(Attack, "pgd-10", steps=10),
    "pgd-20": partial(Attack, "pgd-20", steps=20),
    "eot-pgd-10": partial(Attack, "eot-pgd-10", steps=10, eot=EOT_DRAWS),
    "eot-pgd-20": partial(Attack, "eot-pgd-20", steps=20, eot=EOT_DRAWS),
}


def make_attack(name: str, eps: float = 8 / 255) -> Attack:
    """The attack `name` of `ATTACKS` (case-insensitive) at radius eps.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones) or a bad eps.
    """
    key = str(name).lower()
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}: use one of {', '.join(ATTACKS)} (or pass a callable)")
    return ATTACKS[key](eps)


def in_255(value: float) -> str:
    """A value in units of 1/255 with at most two decimals: 8/255 -> "8/255", 0.5/255 -> "0.5/255"."""
    text = f"{value * 255:.2f}".rstrip("0").rstrip(".")
    return f"{text or '0'}/255"


@dataclass
class AttackResult:
    """Accuracy of one model under one attack, in percent.

    Attributes:
        attack: the attack's name ("clean" for no attack).
        description: its settings, e.g. "PGD-20, eps 8/255, step 0.5/255".
        mean: mean accuracy over the repeats, %.
        std: sample standard deviation over the repeats, % (0 for one repeat).
        accuracies: the accuracy of each repeat, %.
        n: images evaluated per repeat.
    """

    attack: str
    description: str
    mean: float
    std: float
    accuracies: List[float] = field(default_factory=list)
    n: int = 0

    @property
    def repeats(self) -> int:
        return len(self.accuracies)

    def to_dict(self) -> Dict[str, Any]:
        """Plain, JSON-serialisable fields."""
        return {**asdict(self), "repeats": self.repeats}


@dataclass
class AttackReport:
    """One `AttackResult` per attack and the worst case over the attacks (clean accuracy excluded).

    Randomised defences must be reported at `worst_accuracy`: the attack that hurts them most differs.
    """

    results: Dict[str, AttackResult]
    worst: str
    worst_accuracy: float

    def to_dict(self) -> Dict[str, Any]:
        """Plain, JSON-serialisable fields."""
        return {
            "results": {name: result.to_dict() for name, result in self.results.items()},
            "worst": self.worst,
            "worst_accuracy": self.worst_accuracy,
        }


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) slices of at most `batch_size` images (views, no copy); a list, so it can be iterated again."""
    _check_count("batch_size", batch_size)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels: pass one label per image")
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def robust_accuracy(
    model: nn.Module,
    loader: Iterable[Sequence[torch.Tensor]],
    attack: Union[str, AttackFn, None] = "pgd-20",
    repeats: int = 1,
    device: Union[str, torch.device, None] = None,
    eps: float = 8 / 255,
) -> AttackResult:
    """Accuracy (%) on adversarial examples crafted batch by batch, the whole evaluation `repeats` times.

    Args:
        model: maps images in [0, 1] to logits; its modes and requires_grad flags are restored afterwards.
        loader: a re-iterable of (x, y) batches: a list (see `batches`) or a DataLoader, not a generator.
        attack: a name of `ATTACKS`, a callable `(model, x, y) -> x_adv`, or None for clean accuracy.
        repeats: evaluations to run; randomised models (or attacks) give a different number each time.
        device: where to evaluate; None means the device of the model's parameters.
        eps: the radius of a named attack (ignored for a callable).

    Returns:
        The mean, standard deviation and per-repeat accuracies, in percent.
    """
    _check_count("repeats", repeats)
    run, name, description = _resolve(attack, eps)
    device = _device_of(model) if device is None else torch.device(device)
    accuracies: List[float] = []
    n = 0
    with attack_mode(model):
        for repeat in range(repeats):
            correct = n = 0
            for batch in loader:
                x, y = batch[0].to(device), batch[1].to(device)
                if run is not None:
                    x = run(model, x, y)
                model.eval()  # a callable attack may have changed the mode; attack_mode restores it
                with torch.no_grad():
                    correct += int((model(x).argmax(dim=1) == y).sum())
                n += len(y)
            if n == 0:
                raise ValueError(
                    f"the loader gave no images on repeat {repeat + 1}: pass a non-empty, re-iterable "
                    "loader (a list of (x, y) batches or a DataLoader), not a generator"
                )
            accuracies.append(100.0 * correct / n)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return AttackResult(name, description, statistics.mean(accuracies), std, accuracies, n)


def evaluate_attacks(
    model: nn.Module,
    loader: Iterable[Sequence[torch.Tensor]],
    attacks: Sequence[Union[str, AttackFn, None]] = ("fgsm", "pgd-20", "eot-pgd-20"),
    repeats: int = 3,
    device: Union[str, torch.device, None] = None,
    eps: float = 8 / 255,
) -> AttackReport:
    """`robust_accuracy` under each attack and the worst case over them (the lowest mean accuracy).

    Args:
        attacks: names of `ATTACKS` or callables; None adds clean accuracy, which the worst case ignores.
        Other arguments as in `robust_accuracy`.
    """
    results: Dict[str, AttackResult] = {}
    for attack in attacks:
        result = robust_accuracy(model, loader, attack, repeats=repeats, device=device, eps=eps)
        if result.attack in results:
            raise ValueError(f"attack {result.attack!r} is listed twice: list each attack once")
        results[result.attack] = result
    attacked = [result for result in results.values() if result.attack != CLEAN]
    if not attacked:
        raise ValueError(f"no attack among {list(attacks)!r}: list at least one, e.g. 'pgd-20'")
    worst = min(attacked, key=lambda result: result.mean)
    return AttackReport(results, worst.attack, worst.mean)


def autoattack_available() -> bool:
    """Whether the reference AutoAttack package (Croce & Hein 2020) can be imported."""
    try:
        import autoattack  # noqa: F401
    except ImportError:
        return False
    return True


def autoattack_rand(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    batch_size: int = 250,
    seed: Optional[int] = None,
    verbose: bool = False,
) -> torch.Tensor:
    """The reference AutoAttack, version "rand" (APGD-CE and APGD-DLR with 20 EOT draws), for random defences.

    Returns:
        The adversarial batch.

    Raises:
        RuntimeError: when the reference package is not installed (it is not on the package index).
    """
    _check_eps(eps)
    _check_batch(x, y)
    try:
        from autoattack import AutoAttack
    except ImportError as error:
        raise RuntimeError(
            f"autoattack_rand needs the reference AutoAttack package: install it with `{AUTOATTACK_INSTALL}`"
        ) from error
    with attack_mode(model):
        adversary = AutoAttack(
            model, norm="Linf", eps=eps, version="rand", seed=seed, verbose=verbose, device=x.device
        )
        x_adv = adversary.run_standard_evaluation(x, y, bs=batch_size)
    return x_adv.detach()


def _resolve(attack: Union[str, AttackFn, None], eps: float) -> Tuple[Optional[AttackFn], str, str]:
    """(callable or None, name, description) of an attack given by name, as a callable, or None."""
    if attack is None:
        return None, CLEAN, "clean (no attack)"
    if isinstance(attack, str):
        attack = make_attack(attack, eps)
    if not callable(attack):
        raise ValueError(
            f"attack {attack!r} is neither a name of ATTACKS nor a callable (model, x, y) -> x_adv"
        )
    name = getattr(attack, "name", None) or getattr(attack, "__name__", None) or type(attack).__name__
    return attack, str(name), str(getattr(attack, "description", name))


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _check_eps(eps: float) -> None:
    if not 0 <= eps <= 1:
        raise ValueError(f"eps={eps!r} is outside [0, 1]: give the L-inf radius in pixel units, e.g. 8/255")


def _check_count(what: str, value: int) -> None:
    try:
        count = operator.index(value)
    except TypeError:
        count = 0
    if isinstance(value, bool) or count < 1:
        raise ValueError(f"{what}={value!r} is invalid: {what} must be an integer >= 1")


def _check_attack(eps: float, steps: int, step_size: Optional[float], eot: int) -> None:
    _check_eps(eps)
    _check_count("steps", steps)
    _check_count("eot", eot)
    if step_size is not None and not step_size >= 0:
        raise ValueError(f"step_size={step_size!r} is negative: give a step >= 0, or None for OAT's rule")


def _check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.numel() == 0:
        raise ValueError("the batch x is empty: pass at least one image")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(
            f"y has shape {tuple(y.shape)} for {len(x)} images: pass one integer label per image"
        )
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"inputs outside [0, 1] (min {low:.4g}, max {high:.4g}): attacks work on unnormalised images; "
            "move the normalisation inside the model"
        )
