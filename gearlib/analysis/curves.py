"""Training curves: per-epoch loss (and accuracy) of several methods, with growth-stage boundaries.

Histories are lists of per-epoch dicts or DataFrames with an `epoch` and a `loss` column.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

__all__ = ["plot_loss_curves"]


def _as_frame(history: Any) -> Any:
    import pandas as pd

    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if "loss" not in frame:
        raise ValueError(f"a history needs a 'loss' column, got columns {list(frame.columns)}")
    if "epoch" not in frame:
        frame = frame.assign(epoch=range(1, len(frame) + 1))
    return frame


def plot_loss_curves(
    histories: Dict[str, Any],
    stage_boundaries: Optional[Union[Sequence[float], Dict[str, Sequence[float]]]] = None,
    acc_key: str = "acc",
    log: bool = False,
) -> Any:
    """Loss per epoch for each method, plus accuracy in a second panel when the histories have it.

    Args:
        histories: method -> list of per-epoch dicts or DataFrame with 'epoch' and 'loss' (and `acc_key`).
        stage_boundaries: epochs where a stage ends (e.g. OSG-1 -> OSG-2 -> ERA): one list for all
            methods, or method -> list (drawn in that method's colour).
        acc_key: accuracy column shown in the second panel when present.
        log: logarithmic loss axis.

    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("plot_loss_curves needs at least one method's history")
    frames = {name: _as_frame(h) for name, h in histories.items()}
    with_acc = any(acc_key in f for f in frames.values())
    fig, axes = plt.subplots(1, 2 if with_acc else 1, figsize=(9.0 if with_acc else 4.8, 3.2), squeeze=False)
    ax_loss = axes[0, 0]
    colours = {}
    for name, frame in frames.items():
        (line,) = ax_loss.plot(frame["epoch"], frame["loss"], label=name)
        colours[name] = line.get_color()
        if with_acc and acc_key in frame:
            axes[0, 1].plot(frame["epoch"], frame[acc_key], color=line.get_color(), label=name)
    if stage_boundaries is not None:
        per_method = stage_boundaries if isinstance(stage_boundaries, dict) else {None: stage_boundaries}
        for name, epochs in per_method.items():
            for epoch in epochs:
                for ax in axes.flat:
                    ax.axvline(epoch, color=colours.get(name, "grey"), linestyle=":", linewidth=1)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    if log:
        ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)
    if with_acc:
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].set_ylabel(acc_key)
        axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    return fig
