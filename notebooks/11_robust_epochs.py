# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: gearlib (Python 3)
#     language: python
#     name: gearlib
# ---

# %% [markdown]
# # Appendix C: how many robust epochs are needed?
#
# GEARnn-2 is cheap because its robust phase is short: the network that enters it has already been
# grown and trained on clean data, so a few ERA epochs go a long way. The paper shows this in its
# Fig. 5 and, for more networks and datasets, in Appendix C (Fig. 9): robust accuracy against
# training time as the number of robust epochs changes.
#
# We vary one budget per method and keep everything else fixed:
#
# - **GEARnn-2**: the ERA phase, E_R epochs (the clean growth phase is unchanged);
# - **Small (AugMix)**: its whole training, E epochs, all of them robust;
# - **GEARnn-1**: the epochs after the growth step, E₂ (all its epochs are robust).
#
# The budgets below are absolute epoch counts, the same for every profile.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
arch: str = "vgg19"  # vgg19 | mobilenet_v1 | resnet18
seed: int = 0  # seed of data subsets, initialisation and augmentation
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training
robust_epochs: list = [1, 2, 4]  # robust-epoch budgets (absolute epochs) given to every method

# %% tags=["remove-cell"]
import pandas as pd
from IPython.display import Markdown, display

from gearlib import plots
from gearlib.experiments import metrics_table, open_chapter, provenance, sweep
from gearlib.profiles import get_profile

chapter = open_chapter(globals(), extra=["robust_epochs"])
display(Markdown(chapter.banner()))

# %% [markdown]
# ## The runs
#
# Every (method, budget) pair is one run, stored under its own name (the budget is part of it).

# %%
families = {
    "GEARnn-2 (E_R)": ("gearnn2", "epochs_er"),
    "Small (AugMix) (E)": ("small-augmix", "epochs_small"),
    "GEARnn-1 (E_2)": ("gearnn1", "epochs_e2"),
}
trend, trend_tag = chapter.trend()
display(Markdown(chapter.trend_note("These curves")))
sweeps = {
    label: sweep(chapter, method, setting, robust_epochs, overrides=trend, tag=trend_tag)
    for label, (method, setting) in families.items()
}
curves = {label: metrics_table(runs).rename_axis("robust epochs") for label, runs in sweeps.items()}
pd.concat(curves, names=["method"])

# %% [markdown]
# ## Robust accuracy against training time
#
# One line per method, one point per budget. For any training time on the horizontal axis, the
# highest line is the most robust way to spend it. In the paper GEARnn-2's curve lies above both
# others: its first robust epochs already reach a robust accuracy that Small (AugMix) needs many more
# epochs (and more time) to match, and GEARnn-1 pays for growing on four-view batches.

# %%
label = f"ours ({chapter.profile}, {chapter.dataset})"
fig = plots.lines(curves, y="R-acc (%)", x="T (min)", title="R-acc against training time", ours_label=label)

# %% [markdown]
# The same runs against the robust-epoch budget itself. Here the methods differ in what comes before
# the robust epochs: nothing for Small (AugMix), clean growth for GEARnn-2, robust growth for
# GEARnn-1.

# %%
fig = plots.lines(curves, y="R-acc (%)", title="R-acc against robust epochs", ours_label=label)

# %% [markdown]
# Which method is most robust at each budget, and by how much it leads the next one. These sweeps run
# one seed: a lead smaller than the seed-to-seed spread that chapter 6 and the claims page measure is
# within noise.

# %%
both = pd.concat(curves, names=["method"])
lines = []
for epochs, group in both.groupby(level="robust epochs"):
    ranked = group["R-acc (%)"].sort_values(ascending=False)
    (winner, _), (runner_up, _) = ranked.index[0], ranked.index[1]
    lines.append(
        f"- {epochs} robust epoch(s): **{winner}**, {ranked.iloc[0]:.2f}% robust in "
        f"{both.loc[(winner, epochs), 'T (min)']:.1f} min, {ranked.iloc[0] - ranked.iloc[1]:.2f} points "
        f"ahead of {runner_up}"
    )
display(Markdown("\n".join(lines)))

# %%
floor = get_profile(chapter.profile, chapter.overrides).clean_floor
display(
    Markdown(
        "The shortest budgets are the start of each curve, and on a small profile they can sit below its "
        f"clean-accuracy floor (`clean_floor`, {floor:g}% on `{chapter.profile}`). The note column says so "
        "for such a point: a fixed network trained from scratch for no more than E_R epochs, or a run given "
        "fewer epochs than its method trains at the profile's own settings. Only full schedules are held to "
        "the floor."
        if floor
        else f"The `{chapter.profile}` profile sets no clean-accuracy floor (`clean_floor`), so no point is "
        "held to one."
    )
)

# %% [markdown]
# The paper reports these curves only as figures, so there is no table of its numbers to print beside
# ours. At the `smoke` scale a single epoch on a few hundred images moves accuracy by amounts close to
# the seed-to-seed noise; the `cpu`, `quadro` and `jetson` profiles give the curves their shape. Our
# runs were produced with:

# %%
display(Markdown(provenance(sweeps["GEARnn-2 (E_R)"][robust_epochs[0]])))
