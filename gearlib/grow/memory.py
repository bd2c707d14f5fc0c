"""Memory-aware One-Shot Growth (book/notes/growth.md#notes-growth-memory): the largest growth ratio whose
grown network's training step, and the growth step's candidate network, fit a memory budget.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.augment.defaults import AUGMIX_DEFAULTS, ERA_J3
from gearlib.data.info import dataset_info
from gearlib.grow.candidate import Candidate
from gearlib.grow.firefly import group_budget
from gearlib.models import build, build_meta, unit_names

# matplotlib and pandas are imported inside the picture and table functions: gearlib.profiles imports this
# module, and reading a profile must not load them.

_UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}  # fmt: skip
MEASURE_BATCH = 8  # images of the measuring forward; activations scale linearly with the batch
CHANNEL_STEP = 4  # channels added to one unit to measure its per-channel cost


def parse_bytes(text: str) -> int:
    """'8GB' -> 8e9, '512MB' -> 512e6, '1.5GiB' -> 1.5 * 2^30 (SI units are powers of 10, IEC of 2)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"cannot read the memory size {text!r}: write a number and a unit, e.g. 8GB, 512MB, 1.5GiB "
            f"(units: B, KB, MB, GB, TB = powers of 1000; KiB, MiB, GiB, TiB = powers of 1024)"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if value <= 0:
        raise ValueError(f"a memory size must be positive, got {text!r}")
    return int(value)


def _fmt(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


@dataclass(frozen=True)
class Footprint:
    """Bytes of one training step: weights (parameters and buffers), gradients, optimiser state and the
    activations autograd saves for the backward pass (measured, see `saved_activation_bytes`)."""

    weights: int
    grads: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer + self.activations

    def as_dict(self) -> Dict[str, int]:
        return {
            "weights": self.weights, "grads": self.grads, "optimizer": self.optimizer,
            "activations": self.activations, "total": self.total,
        }  # fmt: skip

    def describe(self) -> str:
        return ", ".join(f"{k} {_fmt(v)}" for k, v in self.as_dict().items())


def _storage_key(t: torch.Tensor) -> Tuple[str, int]:
    return (str(t.device), t.untyped_storage().data_ptr())


def saved_activation_bytes(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """MEASURED: bytes of the distinct storages autograd saves for backward over one forward and loss of a
    real batch (torch.autograd.graph.saved_tensors_hooks), the batch itself included, parameters and
    buffers excluded (they are counted as weights)."""
    own = {_storage_key(t) for t in list(module.parameters()) + list(module.buffers())}
    seen: Dict[Tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in own:
            seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(module(x), y)
    del loss
    return sum(seen.values())


def _nbytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _measured_activations(
    module: nn.Module, images: int, input_size: int, measure_batch: Optional[int]
) -> int:
    """Saved-activation bytes at `images` images. Measured directly up to 2 x measure_batch images, else
    measured at measure_batch and 2 x measure_batch images and extended along that line: saved tensors are
    per-sample (linear in the batch) or batch-independent (folded weights, BN statistics), so it is exact."""

    def at(n: int) -> int:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(n, 3, input_size, input_size, generator=gen)
        return saved_activation_bytes(module, x, torch.zeros(n, dtype=torch.long))

    if measure_batch is None or images <= 2 * measure_batch:
        return at(images)
    m1, m2 = at(measure_batch), at(2 * measure_batch)
    return int(round(m1 + (m2 - m1) * (images - measure_batch) / measure_batch))


def training_footprint(
    model: nn.Module, images: int, momentum: bool = True, measure_batch: Optional[int] = MEASURE_BATCH
) -> Footprint:
    """One SGD step of `model` on `images` images (batch size x views): weights, gradients, momentum
    buffers (SGD with momentum keeps one per parameter) and measured saved activations."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    weights = _nbytes(list(model.parameters()) + list(model.buffers()))
    act = _measured_activations(model, images, model.input_size, measure_batch)
    return Footprint(weights, _nbytes(params), _nbytes(params) if momentum else 0, act)


def growth_footprint(
    backbone: nn.Module,
    new_neurons: int,
    images: int,
    rmsprop_momentum: bool = True,
    measure_batch: Optional[int] = MEASURE_BATCH,
) -> Footprint:
    """The growth step's perturbation training on `images` images: the backbone and its candidate network
    (a frozen copy plus V, A, B, D), gradients of the perturbations, RMSprop's square averages (and momentum
    buffers) and the candidate's measured saved activations."""
    candidate = Candidate(backbone, new_neurons, generator=torch.Generator().manual_seed(0))
    perturb = candidate.perturbations()
    held = list(backbone.parameters()) + list(backbone.buffers())
    weights = _nbytes(held + list(candidate.parameters()) + list(candidate.buffers()))
    state = _nbytes(perturb) * (2 if rmsprop_momentum else 1)
    act = _measured_activations(candidate, images, backbone.input_size, measure_batch)
    return Footprint(weights, _nbytes(perturb), state, act)


def channel_costs(
    arch: str, widths: Sequence[int], num_classes: int, input_size: int, images: int
) -> List[float]:
    """MEASURED bytes per added channel of each unit in one training step at `images` images: saved
    activations plus weights, gradients and momentum (3 x parameter bytes), by adding CHANNEL_STEP
    channels to one unit at a time. Activations are linear in each width, so this ranks units exactly."""

    def cost(w: Sequence[int]) -> float:
        fp = training_footprint(build(arch, list(w), num_classes, input_size), images, measure_batch=1)
        return float(fp.total)

    base = cost(widths)
    out = []
    for i in range(len(widths)):
        w = list(widths)
        w[i] += CHANNEL_STEP
        out.append((cost(w) - base) / CHANNEL_STEP)
    return out


def worst_case_widths(
    arch: str,
    widths: Sequence[int],
    growth_ratio: float,
    new_neurons: int,
    costs: Sequence[float],
) -> List[int]:
    """The grown widths that cost most memory under the growth step's budget (book/notes/growth.md#notes-growth-memory).

    Per budget group the step keeps M + 1 = floor(gamma * sum c_l) + 1 neurons (split or new; ties aside),
    at most c_l + K in unit l; they are placed in the units with the highest per-channel cost first.
    """
    names = unit_names(arch)
    graph = build_meta(arch, list(widths), 10).growth_graph()
    out = list(widths)
    for group in [g for g in graph.groups if g]:  # every unit grows (grow_stream=True)
        idx = [names.index(n) for n in group]
        left = group_budget([widths[i] for i in idx], growth_ratio) + 1
        for i in sorted(idx, key=lambda i: -costs[i]):
            add = min(left, widths[i] + new_neurons)
            out[i] += add
            left -= add
    return out


def views_of(augment: str, era_views: int) -> int:
    """Images per sample of a phase's batch: clean 1, ERA J (profile), AugMix and PRIME 3, era_j3 3."""
    if augment == "clean":
        return 1
    if augment in ("era", "era_prime"):
        return max(1, era_views)
    if augment == "era_j3":
        return ERA_J3.views
    return AUGMIX_DEFAULTS.views


def budget_bytes(profile: Any) -> int:
    """The usable budget: `memory_budget` less the `memory_margin` share kept free."""
    return int(parse_bytes(profile.memory_budget) * (1.0 - profile.memory_margin))


@functools.lru_cache(maxsize=64)
def fit_growth_ratio(
    profile: Any, dataset: str, arch: str, growth_augment: str = "clean"
) -> Tuple[float, Dict[str, Any]]:
    """The largest gamma <= Table 1's (capped as in methods.feasible_ratio) whose One-Shot Growth fits
    the profile's budget; returns (gamma, report). Raises ValueError, with the numbers, if even gamma = 0
    does not fit.

    Needed(gamma) = max(backbone training step, growth step, training step of the worst-case grown
    network), each a Footprint measured on the CPU in float32 (book/notes/growth.md#notes-growth-memory).
    """
    info = dataset_info(dataset)
    nc, size = info.num_classes, info.image_size
    budget = budget_bytes(profile)
    c0, k = profile.backbone_width, profile.new_neurons
    hi = min(profile.growth_ratio(dataset, arch), 1.0 + (k - 1) / c0)
    train_images = profile.batch_size * max(
        views_of(a, profile.era_views) for a in ("clean", "era", "augmix")
    )
    grow_images = profile.growth_batch_size * views_of(growth_augment, profile.era_views)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        backbone = build(arch, c0, nc, size)
        widths = list(backbone.widths)
        fixed = {
            "backbone training step": training_footprint(backbone, train_images),
            "growth step (candidate network)": growth_footprint(
                backbone, k, grow_images, profile.rmsprop.get("momentum", 0.0) > 0
            ),
        }
        costs = channel_costs(arch, widths, nc, size, train_images)
        cache: Dict[float, Tuple[List[int], Footprint]] = {}

        def grown(gamma: float) -> Tuple[List[int], Footprint]:
            if gamma not in cache:
                w = worst_case_widths(arch, widths, gamma, k, costs)
                cache[gamma] = (w, training_footprint(build(arch, w, nc, size), train_images))
            return cache[gamma]

        def needed(gamma: float) -> int:
            return max([f.total for f in fixed.values()] + [grown(gamma)[1].total])

        if needed(0.0) > budget:
            parts = dict(fixed, **{"grown network at gamma 0 (training step)": grown(0.0)[1]})
            lines = "; ".join(f"{name}: {fp.describe()}" for name, fp in parts.items())
            raise ValueError(
                f"memory budget too small for {arch} on {dataset}: {_fmt(needed(0.0))} needed, the budget is "
                f"{_fmt(budget)} ({profile.memory_budget} less a {profile.memory_margin:.0%} margin). "
                f"{lines}. Lower batch_size / growth_batch_size / new_neurons or raise memory_budget"
            )
        if needed(hi) <= budget:
            gamma = hi
        else:
            lo, top = 0.0, hi
            while top - lo > 1e-3:
                mid = round(0.5 * (lo + top), 6)
                lo, top = (mid, top) if needed(mid) <= budget else (lo, mid)
            gamma = lo
        curve = sorted((g, needed(g)) for g in cache)
    report = {
        "growth_ratio": gamma, "table1_ratio": hi, "budget_bytes": budget,
        "memory_budget": profile.memory_budget, "memory_margin": profile.memory_margin,
        "needed_bytes": needed(gamma), "train_images": train_images, "growth_images": grow_images,
        "worst_case_widths": grown(gamma)[0], "grown_step": grown(gamma)[1].as_dict(),
        "fixed": {name: fp.as_dict() for name, fp in fixed.items()},
        "curve": [[g, n] for g, n in curve],
        "why": "Table 1's gamma fits" if gamma == hi else "largest gamma whose worst-case footprint fits",
        "measured_on": "cpu, float32 saved tensors (an upper bound under CUDA AMP)",
    }  # fmt: skip
    return gamma, report


# -- a measured peak to compare against ----------------------------------------------------------------
_PEAK_SCRIPT = r"""
import gc, json, sys
import torch, torch.nn.functional as F
from gearlib.models import build
from gearlib.grow.candidate import Candidate
arch, widths, nc, size, images, what, k = json.loads(sys.argv[1])
torch.manual_seed(0)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
model = build(arch, widths, nc, size)
if what == "growth":
    model = Candidate(model.eval(), k, generator=torch.Generator().manual_seed(0))
    params = model.perturbations()
    opt = torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, momentum=0.1)
else:
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
x = torch.rand(images, 3, size, size)
y = torch.randint(nc, (images,))
def step():
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
step()  # kernels loaded, optimiser state allocated
opt.zero_grad(set_to_none=True)
gc.collect()
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
step()
print(json.dumps({"step_peak": status("VmHWM") - before}))
"""


def measured_step_peak(
    arch: str,
    widths: Sequence[int],
    images: int,
    num_classes: int = 10,
    input_size: int = 32,
    what: str = "train",
    new_neurons: int = 20,
) -> int:
    """MEASURED on the CPU: the resident-memory peak of one step above the memory held before it (weights,
    optimiser state), in a fresh process: VmHWM after resetting it (/proc/self/clear_refs) minus VmRSS, with
    glibc's mmap threshold fixed at 64 KiB so that freed tensors go back to the system. `what`: "train" (SGD
    step of the network) or "growth" (RMSprop step of its candidate network with K = new_neurons)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    args = json.dumps([arch, list(widths), num_classes, input_size, images, what, new_neurons])
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, args], env=env, capture_output=True, text=True, check=True
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["step_peak"])


def cuda_step_peak(
    arch: str,
    widths: Sequence[int],
    images: int,
    num_classes: int = 10,
    input_size: int = 32,
    what: str = "train",
    new_neurons: int = 20,
    device: str = "cuda",
) -> int:
    """MEASURED on a GPU (not run in gearlib's CPU tests): torch.cuda.max_memory_allocated over one step
    above what was allocated before it, after a warm-up step; the same quantity as `measured_step_peak`."""
    torch.manual_seed(0)
    model = build(arch, list(widths), num_classes, input_size)
    if what == "growth":
        model = Candidate(model.eval(), new_neurons, generator=torch.Generator().manual_seed(0))
        model.to(device)
        params = model.perturbations()
        opt: torch.optim.Optimizer = torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, momentum=0.1)
    else:
        model.to(device)
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.rand(images, 3, input_size, input_size, device=device)
    y = torch.randint(num_classes, (images,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def memory_fit_figure(report: Dict[str, Any], ax: Any = None) -> Any:
    """The memory-fit picture: needed bytes against the growth ratio gamma, the budget line and the chosen
    gamma (from `fit_growth_ratio`'s report). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    gammas = [g for g, _ in report["curve"]]
    needed = [n / 2**30 for _, n in report["curve"]]
    ax.plot(gammas, needed, "o-", label="needed (worst-case grown widths)")
    ax.axhline(report["budget_bytes"] / 2**30, color="k", ls="--", label="budget (less margin)")
    ax.axvline(report["growth_ratio"], color="C2", ls=":", label=f"chosen gamma {report['growth_ratio']:.3f}")
    ax.set_xlabel("growth ratio gamma")
    ax.set_ylabel("GiB")
    ax.legend(fontsize=8)
    return ax.figure


def fit_reports(profile: Any, dataset: str, archs: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """arch -> `fit_growth_ratio`'s report (JSON-ready) under `profile` switched to growth_ratio_mode=fit;
    the profile must carry a memory_budget (the jetson profile's is 8GB with a 25% margin)."""
    fit = profile.override({"growth_ratio_mode": "fit"})
    return {arch: fit_growth_ratio(fit, dataset, arch)[1] for arch in archs}


def fit_table(reports: Dict[str, Dict[str, Any]]) -> Any:
    """One row per architecture: Table 1's gamma, the gamma that fits, the memory it needs, the budget, why."""
    import pandas as pd

    rows = [
        {
            "arch": arch,
            "Table 1 gamma": r["table1_ratio"],
            "fitted gamma": round(r["growth_ratio"], 3),
            "needed (GiB)": round(r["needed_bytes"] / 2**30, 2),
            "budget less margin (GiB)": round(r["budget_bytes"] / 2**30, 2),
            "why": r["why"],
        }
        for arch, r in reports.items()
    ]
    return pd.DataFrame(rows).set_index("arch")


def memory_fit_figures(reports: Dict[str, Dict[str, Any]]) -> Any:
    """`memory_fit_figure` for several architectures side by side (one panel each)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(4.4 * len(reports), 3.3), squeeze=False)
    for ax, (arch, report) in zip(axes[0], reports.items()):
        memory_fit_figure(report, ax)
        ax.set_title(arch, fontsize=10)
    fig.tight_layout()
    return fig
