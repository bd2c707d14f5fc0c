"""Plots the book draws again and again: our measurements beside the paper's, and cost against robustness.

Every function returns a matplotlib Figure and never shows it; the notebook decides what to do with it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence


def _plt() -> Any:
    """matplotlib.pyplot, imported on the first plot: loading it picks a GUI backend, which importing
    gearlib.plots (from the book's tables, say) should not do."""
    import matplotlib.pyplot as plt

    return plt


def _method_axis(ax: Any, xs: List[int], methods: Sequence[str], title: str) -> None:
    """Method names under the bars, slanted; the metric as the panel's title."""
    ax.set_xticks(xs)
    ax.set_xticklabels(methods, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)


def _finish(fig: Any, axes: Any, title: str) -> Any:
    """Legend in the first panel, the figure's title, tight layout."""
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def compare_bars(
    ours: Any, paper: Any, columns: Sequence[str], title: str = "", ours_label: str = "ours"
) -> Any:
    """Grouped bars per method for each column: ours next to the paper's (same index = method names).

    Args:
        ours, paper: pandas DataFrames indexed by method with the given columns.
        columns: metrics to draw, one panel each (e.g. ["R-acc (%)", "T (min)"]).
        title: figure title; ours_label: legend text for our numbers (profile, dataset).
    """
    plt = _plt()
    methods = [m for m in ours.index if m in paper.index] or list(ours.index)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4), squeeze=False)
    width = 0.38
    for ax, col in zip(axes[0], columns):
        xs = range(len(methods))
        ours_vals = [ours.loc[m, col] if m in ours.index else float("nan") for m in methods]
        paper_vals = [paper.loc[m, col] if m in paper.index else float("nan") for m in methods]
        ax.bar([x - width / 2 for x in xs], ours_vals, width, label=ours_label, color="#3b75af")
        ax.bar(
            [x + width / 2 for x in xs], paper_vals, width, label="paper", color="#c9c9c9", edgecolor="#777"
        )
        _method_axis(ax, list(xs), methods, col)
    return _finish(fig, axes, title)


def seed_bars(
    table: Any, columns: Sequence[str] = ("C-acc (%)", "R-acc (%)", "T (min)"), title: str = "",
    paper: Optional[Any] = None,
) -> Any:  # fmt: skip
    """Bars of the mean over seeds with +- one standard deviation, one panel per metric.

    Args:
        table: `experiments.seed_table` output ("<column> mean" and "<column> std" per method).
        columns: metrics to draw; paper: the paper's table (same index) drawn as grey bars beside ours.
    """
    plt = _plt()
    columns = [c for c in columns if f"{c} mean" in table.columns]
    methods = list(table.index)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4), squeeze=False)
    width = 0.38 if paper is not None else 0.6
    for ax, col in zip(axes[0], columns):
        xs = list(range(len(methods)))
        errors = [0.0 if v is None or v != v else v for v in table[f"{col} std"].tolist()]
        left = [x - width / 2 for x in xs] if paper is not None else xs
        ax.bar(left, table[f"{col} mean"], width, yerr=errors, capsize=4, color="#3b75af",
               label=f"ours (mean ± std, {int(table['seeds'].min())}+ seeds)")  # fmt: skip
        if paper is not None:
            values = [paper.loc[m, col] if m in paper.index else float("nan") for m in methods]
            ax.bar(
                [x + width / 2 for x in xs], values, width, color="#c9c9c9", edgecolor="#777", label="paper"
            )
        _method_axis(ax, xs, methods, col)
    return _finish(fig, axes, title)


def claim_gaps(table: Any, title: str = "") -> Any:
    """One bar per claim: its gap in units of the seeds' spread; inside the band at +-1 it is noise.

    Args:
        table: `claims.judge` output (columns "gap", "seed spread", "verdict"); rows without a gap are skipped.
    """
    plt = _plt()
    rows = table[table["gap"].notna()]
    colours = {"holds": "#3b8f4e", "fails": "#b8423a", "within noise": "#9a9a9a"}
    scaled = [g / s if s else g for g, s in zip(rows["gap"], rows["seed spread"].fillna(0))]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    ys = list(range(len(rows)))
    ax.barh(ys, scaled, color=[colours.get(v, "#3b75af") for v in rows["verdict"]])
    ax.axvspan(-1, 1, color="#dddddd", alpha=0.6, label="within the seeds' spread")
    ax.axvline(0, color="#555", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(list(rows.index), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("gap / seed spread (positive: the claim is met)")
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def relative_cost(
    ours: Any, paper: Any, baseline: str, columns: Sequence[str] = ("T (min)", "E (kJ)")
) -> Any:
    """Each method's cost divided by the baseline's, ours and the paper's side by side (a pandas table).

    Absolute times are not comparable across machines and scales; ratios to the same baseline are.
    """
    import pandas as pd

    rows = {}
    for col in columns:
        for name, frame in (("ours", ours), ("paper", paper)):
            if col in frame.columns and baseline in frame.index:
                base = frame.loc[baseline, col]
                rows[f"{col} / {baseline} ({name})"] = (
                    frame[col] / base if base else frame[col] * float("nan")
                )
    return pd.DataFrame(rows).round(3)


def cost_vs_robustness(
    points: Any,
    x: str = "T (min)",
    y: str = "R-acc (%)",
    label: str = "method",
    title: str = "",
    paper: Optional[Any] = None,
) -> Any:
    """Scatter of robustness against training cost, one point per run (and the paper's in grey)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2 if paper is not None else 1, figsize=(9 if paper is not None else 5, 3.6),
                             squeeze=False)  # fmt: skip
    frames = [("ours", points)] + ([("paper", paper)] if paper is not None else [])
    for ax, (name, frame) in zip(axes[0], frames):
        for _, row in frame.reset_index().iterrows():
            ax.scatter(row[x], row[y], s=40)
            ax.annotate(
                str(row[label]), (row[x], row[y]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _layer_axis(fig: Any, ax: Any, xs: List[int], names: Optional[Sequence[str]], title: str) -> Any:
    """Shared finish of the per-layer width plots: layer names on x, channels on y, legend, title."""
    ax.set_xticks(xs)
    ax.set_xticklabels(
        names if names is not None else [str(i) for i in xs], rotation=60, ha="right", fontsize=7
    )
    ax.set_ylabel("output channels")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def widths_before_after(before: Sequence[int], after: Sequence[int], full: Optional[Sequence[int]] = None,
                        names: Optional[Sequence[str]] = None, title: str = "") -> Any:  # fmt: skip
    """Bar chart of the width of every growable layer before and after growth (and the full model's)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(after)), 3.4))
    xs = list(range(len(after)))
    ax.bar(xs, after, color="#3b75af", label="after growth")
    ax.bar(xs, before, color="#f0a04b", label="before (backbone)")
    if full is not None:
        ax.plot(xs, full, "k_", markersize=14, label="full model")
        ax.set_yscale("log")
    return _layer_axis(fig, ax, xs, names, title)


def view_grid(views: Sequence[Any], titles: Sequence[str], rows: int = 4) -> Any:
    """Images (rows) under several views (columns): each view a float [N,3,H,W] tensor in [0,1]."""
    plt = _plt()
    n = min(rows, int(views[0].shape[0]))
    fig, axes = plt.subplots(n, len(views), figsize=(1.3 * len(views), 1.3 * n), squeeze=False)
    for c, (view, title) in enumerate(zip(views, titles)):
        for r in range(n):
            ax = axes[r][c]
            ax.imshow(view[r].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def lines(
    frames: Dict[str, Any],
    y: str,
    x: Optional[str] = None,
    paper: Optional[Dict[str, Any]] = None,
    title: str = "",
    ours_label: str = "ours",
) -> Any:
    """One line per family of runs (e.g. GEARnn-1 and GEARnn-2 against N), ours and the paper's side by side.

    Args:
        frames: label -> DataFrame with column `y` (and `x`; None uses the index as x).
        y, x: column names (e.g. y="R-acc (%)", x="T (min)").
        paper: the same for the paper's numbers (drawn in a second panel), optional.
        title: figure title; ours_label: title of our panel (profile, dataset).
    """
    plt = _plt()
    panels = [(ours_label, frames)] + ([("paper", paper)] if paper is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    for ax, (name, group) in zip(axes[0], panels):
        integer_x = True
        for label, frame in group.items():
            xs = list(frame.index if x is None else frame[x])
            integer_x = integer_x and all(float(v).is_integer() for v in xs)
            ax.plot(xs, list(frame[y]), marker="o", label=label)
        if integer_x:  # steps or epochs: no fractional ticks
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x or (next(iter(group.values())).index.name or ""))
        ax.set_ylabel(y)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def stage_shares(stages: Any, paper: Optional[Any] = None, column: str = "T (min)", title: str = "") -> Any:
    """Stacked bars of each stage's share of a method's cost (Table 6), ours beside the paper's.

    Args:
        stages: DataFrame with columns method, stage and `column` (e.g. from experiments.stage_table).
        paper: the same layout from the paper (paper.table6()), optional.
        column: the cost to split: "T (min)" or "E (kJ)".
    """
    import pandas as pd

    plt = _plt()
    parts = [("ours", stages)] + ([("paper", paper)] if paper is not None else [])
    bars = []
    for source, frame in parts:
        table = frame.pivot_table(index="method", columns="stage", values=column, aggfunc="sum", sort=False)
        shares = 100 * table.div(table.sum(axis=1), axis=0)
        shares.index = [f"{m}\n({source})" for m in shares.index]
        bars.append(shares)
    shares = pd.concat(bars).fillna(0.0)
    fig, ax = plt.subplots(figsize=(1.2 * len(shares) + 2.5, 3.4))
    bottom = [0.0] * len(shares)
    for stage in shares.columns:
        values = list(shares[stage])
        ax.bar(range(len(shares)), values, bottom=bottom, label=stage)
        for i, (b, v) in enumerate(zip(bottom, values)):
            if v >= 5:
                ax.text(i, b + v / 2, f"{v:.0f}%", ha="center", va="center", fontsize=7)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(shares)))
    ax.set_xticklabels(list(shares.index), fontsize=8)
    ax.set_ylabel(f"share of {column.split(' ')[0]} (%)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title(title or f"cost per stage ({column})", fontsize=10)
    fig.tight_layout()
    return fig


def widths_by_run(
    widths: Dict[str, Sequence[int]],
    names: Optional[Sequence[str]] = None,
    full: Optional[Sequence[int]] = None,
    title: str = "",
) -> Any:
    """Per-layer widths of several grown networks (one line each), with the full model's, on a log axis."""
    plt = _plt()
    n = len(next(iter(widths.values())))
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * n), 3.4))
    xs = list(range(n))
    for label, w in widths.items():
        if len(w) != n:
            raise ValueError(
                f"{label} has {len(w)} widths, the first run has {n}; same architecture expected"
            )
        ax.plot(xs, list(w), marker="o", markersize=3, label=label)
    if full is not None:
        ax.plot(xs, list(full), "k--", linewidth=1, label="full model")
    log2_axis(ax)
    return _layer_axis(fig, ax, xs, names, title)


def log2_axis(ax: Any, axis: str = "y") -> Any:
    """Put a width axis on a base-2 log scale labelled with plain numbers (16, 32, 64, ...)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    getattr(ax, f"set_{axis}scale")("log", base=2)
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(ScalarFormatter())
    target.set_minor_formatter(NullFormatter())
    return ax
