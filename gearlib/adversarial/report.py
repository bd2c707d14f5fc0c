"""Tables and figures of the adversarial chapters, built from stored run metrics (live or replayed): the
knob settings of one run, both ends of the knob per method, the trade-off curve, learned noise, densities.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Mapping, Optional, Sequence

from gearlib.adversarial.cost import smart_counts
from gearlib.adversarial.knobs import knob_settings
from gearlib.adversarial.paper import ENDPOINTS
from gearlib.attacks import AUTOATTACK_INSTALL
from gearlib.bench.adversarial import METHODS, PAPER_RATIOS

# PGD-AT trains one model per lambda: its two ends of the knob are two runs.
PGD_AT_ENDS = ("pgd-at-0", "pgd-at")


def _attack(row: Mapping[str, Any], prefix: str) -> Optional[float]:
    hits = [r["mean"] for name, r in row["attacks"].items() if name.startswith(prefix)]
    return hits[0] if hits else None


def knob_frame(run: Mapping[str, Any]) -> Any:
    """One row per knob setting of a run: the BN set and noise it selects, clean accuracy, accuracy under
    each attack, and the worst case (its robust accuracy)."""
    import pandas as pd

    rows = []
    for label, row in run["adv_settings"].items():
        rows.append(
            {
                "setting": label, "BN": row["bn"], "noise s": row["noise"],
                "CA (%)": row["clean_acc"], "FGSM (%)": _attack(row, "fgsm"), "PGD (%)": _attack(row, "pgd"),
                "EOT-PGD (%)": _attack(row, "eot-pgd"), "RA (%)": row["adv_acc"], "worst attack": row["worst_attack"],
            }
        )  # fmt: skip
    frame = pd.DataFrame(rows).set_index("setting")
    order = [label for label, _ in knob_settings(run.get("objective", ""))]
    if set(order) == set(frame.index):  # the knob's own order (a stored JSON sorts its keys)
        frame = frame.loc[order]
    return frame.dropna(axis=1, how="all").round(2)  # no EOT column for a network without noise


def ends(run: Mapping[str, Any]) -> Dict[str, float]:
    """CA and RA at both ends of a run's knob: its first setting (lambda = 0) and the last robust one
    (lambda = 1; for FLOAT at lambda_th = 0)."""
    settings = list(run["adv_settings"].values())
    first = settings[0]
    last = next((s for s in settings if s["knob"].get("lam_n", s["knob"].get("lam")) == 1.0), settings[-1])
    return dict(zip(ENDPOINTS, [first["clean_acc"], first["adv_acc"], last["clean_acc"], last["adv_acc"]]))


def endpoint_table(runs: Mapping[str, Mapping[str, Any]]) -> Any:
    """Both ends of the knob per method, with parameters and mean seconds per training epoch; PGD-AT's
    lambda = 0 end comes from its lambda = 0 run (`pgd-at-0`) when both runs are given."""
    import pandas as pd

    rows: Dict[str, Dict[str, Any]] = {}
    for method, run in runs.items():
        if method == PGD_AT_ENDS[0] and PGD_AT_ENDS[1] in runs:
            continue
        row = ends(run)
        if method == PGD_AT_ENDS[1] and PGD_AT_ENDS[0] in runs:
            zero = ends(runs[PGD_AT_ENDS[0]])
            row[ENDPOINTS[0]], row[ENDPOINTS[1]] = zero[ENDPOINTS[0]], zero[ENDPOINTS[1]]
        counts = run.get("mask_counts") or {}
        row["parameters"] = run["params"]
        row["non-zero weights / path"] = counts.get("adv_nonzero")
        row["s / epoch"] = statistics.mean(run["epoch_seconds"]) if run.get("epoch_seconds") else None
        rows[method] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "method"
    return frame.round(2)


def tradeoff_curve(
    curves: Mapping[str, Mapping[str, Any]],
    fixed: Optional[Mapping[str, Mapping[str, Any]]] = None,
    title: str = "",
) -> Any:
    """Clean (CA) and robust (RA) accuracy against the knob: one line per run of `curves` and threshold
    or slimming factor, and each run of `fixed` (one model per lambda, PGD-AT) as a square at its lambda."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for label, run in curves.items():
        groups: Dict[str, List[Any]] = {}
        for row in run["adv_settings"].values():
            knob = row["knob"]
            name = ", ".join(f"{k} {v:g}" for k, v in knob.items() if k not in ("lam_n", "lam"))
            groups.setdefault(name, []).append((knob.get("lam_n", knob.get("lam", 0.0)), row))
        for name, points in groups.items():
            points.sort(key=lambda point: point[0])
            for ax, key in zip(axes, ("clean_acc", "adv_acc")):
                ax.plot([x for x, _ in points], [r[key] for _, r in points], marker="o",
                        label=f"{label} ({name})" if name else label)  # fmt: skip
    for label, run in (fixed or {}).items():
        lam = float(run.get("lam", 1.0))
        row = next(iter(run["adv_settings"].values()))
        for ax, key in zip(axes, ("clean_acc", "adv_acc")):
            ax.scatter([lam], [row[key]], marker="s", s=50, zorder=3, label=f"{label} (one model)")
    for ax, what in zip(axes, ("clean accuracy CA (%)", "robust accuracy RA (%), worst attack")):
        ax.set_xlabel("knob λ (λ_n for FLOAT)")
        ax.set_title(what, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def alpha_frame(runs: Mapping[str, Mapping[str, Any]]) -> Any:
    """The learned noise scale alpha of every noisy layer (rows) per run (columns); all start at 0.25."""
    import pandas as pd

    return pd.DataFrame({m: r["noise_scales"] for m, r in runs.items() if r.get("noise_scales")})


def alpha_bars(runs: Mapping[str, Mapping[str, Any]], title: str = "") -> Any:
    """Bars of the learned alpha per layer, one colour per run, the initial 0.25 as a line."""
    import matplotlib.pyplot as plt

    frame = alpha_frame(runs)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    width = 0.8 / max(1, len(frame.columns))
    for i, column in enumerate(frame.columns):
        ax.bar([x + i * width for x in range(len(frame))], frame[column], width, label=column)
    ax.axhline(0.25, color="grey", lw=1, ls="--", label="initial α = 0.25")
    ax.set_xticks(range(len(frame)))
    ax.set_xticklabels(frame.index, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("learned α")
    ax.legend(fontsize=8)
    ax.set_title(title or "learned noise scale per layer", fontsize=10)
    fig.tight_layout()
    return fig


def density_frame(run: Mapping[str, Any]) -> Any:
    """Per-layer density after every epoch's prune-regrow of a FLOATS run (rows: epochs)."""
    import pandas as pd

    records = run.get("sparsity") or []
    return pd.DataFrame(
        [{n: layer["density"] for n, layer in r["layers"].items()} for r in records],
        index=[r["epoch"] for r in records],
    )


def density_drift(run: Mapping[str, Any], title: str = "") -> Any:
    """How sparse momentum moves the weight budget between layers, epoch by epoch (one line per layer)."""
    import matplotlib.pyplot as plt

    frame = density_frame(run)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for column in frame.columns:
        ax.plot(frame.index, frame[column], marker=".", lw=1, label=column)
    ax.set_xlabel("epoch")
    ax.set_ylabel("layer density")
    ax.set_title(title or f"{run['method']}: per-layer density after each prune-regrow", fontsize=10)
    ax.legend(fontsize=6, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def masking_frame(checks: Mapping[str, Any]) -> Any:
    """The checklist's verdicts with the numbers behind them."""
    import pandas as pd

    sweep, steps = checks["eps_sweep"], checks["steps_sweep"]
    evidence = {
        "fgsm no stronger than pgd": f"FGSM {checks['fgsm']:.1f}% vs PGD-{checks['steps']} {checks['pgd']:.1f}%",
        "accuracy vanishes as eps grows": f"{list(sweep.values())[-1]:.1f}% at eps {list(sweep)[-1]}/255",
        "plateau in steps": ", ".join(f"K={k}: {v:.1f}%" for k, v in steps.items()),
        "eot no weaker than pgd": "no noise: not applicable"
        if checks["eot_pgd"] is None
        else f"EOT-PGD {checks['eot_pgd']:.1f}% vs PGD {checks['pgd']:.1f}%",
    }
    return pd.DataFrame(
        [{"check": k, "passes": v, "measured": evidence[k]} for k, v in checks["verdicts"].items()]
    ).set_index("check")


def masking_sweeps(checks: Sequence[Mapping[str, Any]], labels: Sequence[str], title: str = "") -> Any:
    """Accuracy against the radius eps and against PGD's step count K, one line per checked model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for check, label in zip(checks, labels):
        eps = check["eps_sweep"]
        axes[0].plot([float(e) for e in eps], list(eps.values()), marker="o", label=label)
        steps = check["steps_sweep"]
        axes[1].plot([int(k) for k in steps], list(steps.values()), marker="o", label=label)
    axes[0].set_xscale("symlog", linthresh=2)
    axes[0].set_xlabel("ε (units of 1/255)")
    axes[1].set_xlabel(f"PGD steps K (ε = {checks[0]['eps']:g}/255)")
    for ax in axes:
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def mask_table(run: Mapping[str, Any]) -> Any:
    """SMART's weights per path on a trained run beside the same counts, by formula, for the papers'
    ResNet-34 (gearlib.adversarial.cost.smart_counts)."""
    import pandas as pd

    ours, paper = run["mask_counts"], smart_counts()

    def column(total: int, per_path: int, union: int) -> Dict[str, str]:
        return {
            "conv/linear weights": f"{total:,}", "non-zeros per path": f"{per_path:,}",
            "per path / dense": f"{per_path / total:.3f}", "stored union / dense": f"{union / total:.3f}",
        }  # fmt: skip

    return pd.DataFrame(
        {
            f"ours ({run['arch']}, width {run['width']})": column(
                ours["weights"], ours["clean_nonzero"], ours["union"]
            ),
            "ResNet-34, width 64 (formula)": column(
                paper["dense_weights"], paper["per_path"], paper["union"]
            ),
        }
    )


def timing_frame(timing: Mapping[str, Any]) -> Any:
    """`gearlib bench adversarial`'s seconds per step, their ratio to FLOAT's, and the FLOAT paper's ratios."""
    import pandas as pd

    rows = [
        {"method": m, "s / step": timing[f"{m}_s_per_step"],
         "× FLOAT (ours)": timing[f"{m}_s_per_step"] / timing["float_s_per_step"],
         "× FLOAT (FLOAT paper)": PAPER_RATIOS.get(m, float("nan"))}
        for m in METHODS
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index("method").round(3)


def autoattack_note(result: Mapping[str, Any]) -> str:
    """One sentence for a page: AutoAttack's accuracy, or why it did not run."""
    if result["available"]:
        return f"AutoAttack (rand) on {result['images']} test images: **{result['accuracy']:.1f}%**."
    return (
        "The reference AutoAttack package is not installed where this page was built, so it did not run "
        f"(`{AUTOATTACK_INSTALL}` installs it; torchattacks' re-implementation is not used, as it runs 10 APGD "
        "steps instead of 100)."
    )
