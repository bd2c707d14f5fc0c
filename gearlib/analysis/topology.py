"""Growth topology: per-layer widths of grown models, averaged over seeds, against backbone and full widths.

Widths come as lists (e.g. from `gearlib.models.widths_of`), so this module needs no model code.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["topology_frame", "plot_topology"]


def _check_widths(name: str, widths: Optional[Sequence[int]], n_layers: int) -> Optional[List[int]]:
    if widths is None:
        return None
    widths = [int(w) for w in widths]
    if len(widths) != n_layers:
        raise ValueError(
            f"{name} has {len(widths)} layers but the seeds have {n_layers}; pass one width per layer"
        )
    return widths


def topology_frame(
    width_lists_by_seed: Dict[int, Sequence[int]],
    layer_names: Optional[Sequence[str]] = None,
    backbone: Optional[Sequence[int]] = None,
    full: Optional[Sequence[int]] = None,
) -> Any:
    """Per-layer width statistics over seeds.

    Args:
        width_lists_by_seed: seed -> output channels per layer in forward order (classifier excluded).
        layer_names: one name per layer (default 'L0', 'L1', ...).
        backbone: widths of the initial (backbone) model, optional.
        full: widths of the full-size model, optional (adds fractions of full).

    Returns:
        pandas DataFrame, one row per layer: layer, mean, std (sample std, ddof=1; 0 for one seed),
        min, max, n_seeds, one `seed_<s>` column per seed, and backbone / full / mean_frac / std_frac /
        backbone_frac when given.
    """
    import pandas as pd

    if not width_lists_by_seed:
        raise ValueError("width_lists_by_seed is empty; pass {seed: [width per layer]}")
    seeds = list(width_lists_by_seed)
    lengths = {len(v) for v in width_lists_by_seed.values()}
    if len(lengths) != 1:
        raise ValueError(
            f"seeds disagree on the number of layers {sorted(lengths)}; same architecture expected"
        )
    n_layers = lengths.pop()
    table = np.array([[int(w) for w in width_lists_by_seed[s]] for s in seeds], dtype=np.float64)
    names = list(layer_names) if layer_names is not None else [f"L{k}" for k in range(n_layers)]
    if len(names) != n_layers:
        raise ValueError(f"layer_names has {len(names)} entries for {n_layers} layers")
    frame = pd.DataFrame({"layer": names})
    frame["mean"] = table.mean(axis=0)
    frame["std"] = table.std(axis=0, ddof=1) if len(seeds) > 1 else np.zeros(n_layers)
    frame["min"] = table.min(axis=0)
    frame["max"] = table.max(axis=0)
    frame["n_seeds"] = len(seeds)
    for row, seed in enumerate(seeds):
        frame[f"seed_{seed}"] = table[row].astype(int)
    backbone = _check_widths("backbone", backbone, n_layers)
    full = _check_widths("full", full, n_layers)
    if backbone is not None:
        frame["backbone"] = backbone
    if full is not None:
        frame["full"] = full
        full_arr = np.asarray(full, dtype=np.float64)
        frame["mean_frac"] = frame["mean"] / full_arr
        frame["std_frac"] = frame["std"] / full_arr
        if backbone is not None:
            frame["backbone_frac"] = np.asarray(backbone, dtype=np.float64) / full_arr
    return frame


def plot_topology(frame: Any, fraction: bool = False, title: Optional[str] = None, ax: Any = None) -> Any:
    """Bar plot of mean width per layer (error bar = std over seeds) with backbone and full widths overlaid.

    Args:
        frame: DataFrame from `topology_frame` (or its input dict {seed: widths}).
        fraction: plot widths as a fraction of the full model (needs a `full` column).
        title: axes title.
        ax: existing matplotlib Axes (default: a new figure).

    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if isinstance(frame, dict):
        frame = topology_frame(frame)
    if fraction and "full" not in frame:
        raise ValueError("fraction=True needs the full-model widths; pass full=... to topology_frame")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(frame) + 1.5), 3.2))
    else:
        fig = ax.figure
    x = np.arange(len(frame))
    mean = frame["mean_frac"] if fraction else frame["mean"]
    std = frame["std_frac"] if fraction else frame["std"]
    ax.bar(
        x,
        mean,
        yerr=std,
        capsize=2,
        color="tab:blue",
        alpha=0.8,
        label=f"grown (mean of {int(frame['n_seeds'].iloc[0])} seeds)",
    )
    if "backbone" in frame:
        values = frame["backbone_frac"] if fraction and "backbone_frac" in frame else frame["backbone"]
        ax.plot(x, values, "k_", markersize=12, markeredgewidth=2, label="backbone")
    if "full" in frame:
        values = np.ones(len(frame)) if fraction else frame["full"]
        ax.step(x, values, where="mid", color="tab:red", linestyle="--", label="full")
    ax.set_xticks(x)
    ax.set_xticklabels(frame["layer"], rotation=90, fontsize=7)
    ax.set_ylabel("width / full width" if fraction else "output channels")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
