"""Tables and figures of the GroupNL chapter: the five layer types' costs (formulas against instantiated modules),
their clean and CIFAR-10-C accuracy over seeds with computed verdicts, and the maps one seed generates.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F

from gearlib.bench.layers import KINDS as BENCH_KINDS
from gearlib.claims import verdict
from gearlib.data.corruption_names import BLUR, DIGITAL, NOISE, WEATHER
from gearlib.layers.accounting import model_cost
from gearlib.layers.groupnl import GroupNLConv2d, apply_nlf
from gearlib.layers.models import layer_network
from gearlib.layers.paper import PAPER_TABLE3

__all__ = [
    "CATEGORY_CORRUPTIONS",
    "LAYER_METHODS",
    "READING_METHODS",
    "category_accuracy",
    "comparison_table",
    "corrupted_name",
    "cost_table",
    "groupnl_verdicts",
    "plot_accuracy",
    "table16_frame",
    "plot_seed_maps",
    "seed_maps",
]

# The chapter's five networks: method name -> layer kind of gearlib.layers.models.
LAYER_METHODS: Dict[str, str] = {
    "vanilla": "conv", "monocnn": "monocnn", "ghost": "ghost", "sinefm": "sinefm", "groupnl": "groupnl",
}  # fmt: skip
# Other readings of a layer, trained beside the five (gearlib.layers.models.LAYER_VARIANTS): method -> layer kind.
READING_METHODS: Dict[str, str] = {"sinefm-raw": "sinefm-raw"}
CATEGORY_CORRUPTIONS: Dict[str, List[str]] = {
    "Noise": NOISE,
    "Blur": BLUR,
    "Weather": WEATHER,
    "Digital": DIGITAL,
}
Runs = Mapping[str, Sequence[Mapping[str, Any]]]  # method -> one metrics dict per seed
CORRUPTED_NAMES = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C", "tinyimagenet": "Tiny-ImageNet-C"}


def corrupted_name(runs: Runs) -> str:
    """The corrupted test set the runs were evaluated on ("CIFAR-10-C", or "synthetic-C" on the synthetic set)."""
    dataset = next(iter(runs.values()))[0].get("dataset", "cifar10")
    return CORRUPTED_NAMES.get(dataset, f"{dataset}-C")


def category_accuracy(run: Mapping[str, Any]) -> Dict[str, float]:
    """Mean accuracy (%) over the corruptions and severities of each of Table 5's four categories."""
    table = run["robust_table"]
    out = {}
    for category, names in CATEGORY_CORRUPTIONS.items():
        values = [float(v) for name in names for v in table[name].values()]
        out[category] = statistics.fmean(values)
    return out


def _mean_std(xs: Sequence[float]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:.1f}" if xs else "n/a"
    return f"{statistics.fmean(xs):.1f} ± {statistics.stdev(xs):.1f}"


def comparison_table(runs: Runs) -> pd.DataFrame:
    """One row per method: parameters, size against vanilla, clean and corrupted accuracy and the four
    categories as mean ± std over seeds, training seconds per epoch and CPU latency."""
    rows = []
    for method, per_seed in runs.items():
        first = per_seed[0]
        cats = [category_accuracy(r) for r in per_seed]
        epochs = sum(s.get("epochs", 0) for s in first.get("plan", []))
        row: Dict[str, Any] = {
            "method": method,
            "seeds": len(per_seed),
            "params": f"{first['params']:,}",
            "size vs vanilla": f"{100 * first['size_fraction']:.0f}%",
            "clean (%)": _mean_std([r["clean_acc"] for r in per_seed]),
            f"{corrupted_name(runs)} (%)": _mean_std([r["robust_acc"] for r in per_seed]),
        }
        for category in CATEGORY_CORRUPTIONS:
            row[category] = _mean_std([c[category] for c in cats])
        row["s / epoch"] = round(statistics.fmean(r["train_seconds"] for r in per_seed) / max(1, epochs), 1)
        row["latency (ms)"] = round(statistics.fmean(r["latency_ms_per_sample"] for r in per_seed), 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def groupnl_verdicts(runs: Runs, method: str = "groupnl") -> pd.DataFrame:
    """`method` against each other layer type on clean and corrupted accuracy: the gap of the means, the
    seeds' spread it is judged against, and the verdict ('holds', 'fails' or 'within noise'), computed."""
    rows = []
    if method not in runs:  # retried at a lower lr: "groupnl (lr 0.05)"
        method = next((k for k in runs if k.startswith(f"{method} (")), method)
    ours = runs[method]
    for other, theirs in runs.items():
        if other == method:
            continue
        for key, label in (("clean_acc", "clean"), ("robust_acc", corrupted_name(runs))):
            v = verdict([r[key] for r in ours], [r[key] for r in theirs])
            rows.append(
                {
                    "claim": f"{method} beats {other} ({label})",
                    "gap (points)": None if v.gap is None else round(v.gap, 2),
                    "seed spread": None if v.spread is None else round(v.spread, 2),
                    "seeds": f"{v.seeds[0]} vs {v.seeds[1]}",
                    "verdict": v.verdict,
                }
            )
    return pd.DataFrame(rows).set_index("claim")


def cost_table(arch: str = "resnet18", width: int = 64, num_classes: int = 10) -> pd.DataFrame:
    """Per layer type: trainable parameters from the paper's formulas (Eqs. 12-15, summed over the network's
    counted layers) against the instantiated modules, the whole network's parameters and FLOPs (one image,
    BN outputs counted as the paper does) and, at the paper's width 64, its Table 3 numbers."""
    rows = []
    paper = PAPER_TABLE3.get(arch, {}) if width == 64 else {}
    for method, layer in LAYER_METHODS.items():
        with torch.random.fork_rng():
            model, _ = layer_network(layer, arch, width, num_classes)
        cost = model_cost(model)
        formula = sum(c.trainable for _, _, c in cost.rows)
        measured = sum(sum(p.numel() for p in model.get_submodule(n).parameters()) for n, _, _ in cost.rows)
        row: Dict[str, Any] = {
            "method": method,
            "conv/linear params, formula": f"{formula:,}",
            "measured": f"{measured:,}",
            "match": formula == measured,
            "network params (M)": round(cost.paper_params / 1e6, 4),
            "FLOPs (M)": round(cost.flops_with_bn / 1e6, 2),
        }
        if method in paper:
            row["paper params (M)"], row["paper FLOPs (M)"] = paper[method][0], paper[method][1]
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def plot_accuracy(runs: Runs, title: str = "") -> Any:
    """Clean against corrupted accuracy, one point per seed and the mean with a +-1 std cross per method."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, per_seed in runs.items():
        clean = [r["clean_acc"] for r in per_seed]
        robust = [r["robust_acc"] for r in per_seed]
        (dots,) = ax.plot(clean, robust, "o", alpha=0.45)
        sx = statistics.stdev(clean) if len(clean) > 1 else 0.0
        sy = statistics.stdev(robust) if len(robust) > 1 else 0.0
        ax.errorbar(
            statistics.fmean(clean), statistics.fmean(robust), xerr=sx, yerr=sy, fmt="s",
            color=dots.get_color(), capsize=3, label=f"{method} ({len(per_seed)} seeds)",
        )  # fmt: skip
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(f"{corrupted_name(runs)} accuracy (%)")
    ax.set_title(title or "Layer types: clean against corrupted accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def first_groupnl(model: torch.nn.Module) -> GroupNLConv2d:
    """The first GroupNL layer of a network (in module order)."""
    for module in model.modules():
        if isinstance(module, GroupNLConv2d):
            return module
    raise ValueError("the model has no GroupNLConv2d layer; build it with layer_network('groupnl', ...)")


def seed_maps(
    model: torch.nn.Module, image: torch.Tensor, channel: int = 0, layer: Optional[GroupNLConv2d] = None
) -> Dict[str, Any]:
    """What one seed map becomes: the input of the first GroupNL layer for `image` ([3, H, W] in [0, 1]),
    seed map `channel` of its (normalised) seed conv, and that map passed through every one of the layer's
    gamma * g NLFs (the network itself applies only its group's), with their hyperparameters. JSON-ready."""
    layer = layer if layer is not None else first_groupnl(model)
    captured: Dict[str, torch.Tensor] = {}
    handle = layer.register_forward_pre_hook(lambda _m, inputs: captured.update(x=inputs[0].detach()))
    try:
        with torch.no_grad():
            model.eval()(image.unsqueeze(0).float())
    finally:
        handle.remove()
    with torch.no_grad():
        seed = F.normalize(layer.seed(captured["x"]), dim=1)[0, channel]
        hyper = layer.hyperparameters()
        variants = [
            apply_nlf(layer.nlf, seed, {k: v[i] for k, v in hyper.items()}) for i in range(layer.num_nlfs)
        ]
    return {
        "channel": channel,
        "seed": seed.tolist(),
        "variants": [v.tolist() for v in variants],
        "hyper": [{k: round(float(v[i]), 3) for k, v in hyper.items()} for i in range(layer.num_nlfs)],
        "image": image.permute(1, 2, 0).tolist(),
    }


def plot_seed_maps(maps: Mapping[str, Any]) -> Any:
    """The picture of `seed_maps`: the image, the seed map, and one panel per NLF (titled by its parameters)."""
    variants = maps["variants"]
    fig, axes = plt.subplots(1, 2 + len(variants), figsize=(2.0 * (2 + len(variants)), 2.4))
    axes[0].imshow(maps["image"])
    axes[0].set_title("input image", fontsize=9)
    axes[1].imshow(maps["seed"], cmap="viridis")
    axes[1].set_title(f"seed map {maps['channel']}", fontsize=9)
    for i, (ax, values, hyper) in enumerate(zip(axes[2:], variants, maps["hyper"])):
        ax.imshow(values, cmap="viridis")
        ax.set_title(f"NLF {i}: " + ", ".join(f"{k} {v:.2f}" for k, v in hyper.items()), fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def table16_frame(bench: Mapping[str, Any]) -> pd.DataFrame:
    """`gearlib bench layers` output as a table: per layer type its parameters and MFLOPs (the paper's
    formulas), our inference and training-step milliseconds and their ratios to the plain conv, and the
    paper's Raspberry Pi inference ratio (GroupNL's Table 16) where it has one."""
    rows = []
    for kind in BENCH_KINDS:
        rows.append(
            {
                "layer": kind,
                "params": f"{bench[f'{kind}_params']:,}",
                "MFLOPs": round(bench[f"{kind}_mflops"], 2),
                "infer (ms)": round(bench[f"{kind}_infer_ms"], 2),
                "infer / conv": round(bench[f"{kind}_infer_over_conv"], 2),
                "train step (ms)": round(bench[f"{kind}_train_ms"], 2),
                "train / conv": round(bench[f"{kind}_train_over_conv"], 2),
                "paper's Pi infer / conv": (
                    round(bench[f"{kind}_infer_over_conv_paper_pi"], 2)
                    if f"{kind}_infer_over_conv_paper_pi" in bench
                    else None
                ),
            }
        )
    return pd.DataFrame(rows).set_index("layer")
