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
# # §4.3 The GEARnn algorithms
#
# The two ingredients combine in two orders:
#
# - **GEARnn-1 (one phase).** Train the backbone with ERA for E₁ epochs, grow once on ERA batches,
#   train the grown network with ERA for E₂ epochs.
# - **GEARnn-2 (two phases).** Train the backbone on clean data for E₁ epochs, grow once on clean
#   batches, train for E₂ clean epochs; then train with ERA for E_R epochs.
#
# Clean epochs are cheap (one view per image), so GEARnn-2 spends most of its budget where it is
# cheapest and uses the grown, already-accurate network as the starting point of the robust phase.
# In gearlib each method is a *plan*: a list of steps that the runner times, meters, checkpoints and
# resumes in the same way.
# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
arch: str = "vgg19"  # vgg19 | mobilenet_v1 | resnet18
seed: int = 0  # seed of data subsets, initialisation and augmentation
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training

# %% tags=["remove-cell"]
import dataclasses

import pandas as pd
from IPython.display import Markdown, display

from gearlib.analysis import plot_loss_curves
from gearlib.experiments import epoch_curve, metrics_table, open_chapter, stage_boundaries
from gearlib.train.methods import plan_for

chapter = open_chapter(globals())
display(Markdown(chapter.banner()))

# %% [markdown]
# ## The two plans at this profile's scale

# %%
for name in ("gearnn1", "gearnn2"):
    _, plan = plan_for(name, chapter.profile_config, chapter.dataset, arch)
    print(name)
    display(pd.DataFrame([dataclasses.asdict(s) for s in plan]))

# %% [markdown]
# ## Running them

# %%
runs = chapter.runs(["gearnn1", "gearnn2"])
metrics_table(runs)

# %% [markdown]
# Training loss per epoch, with the growth step marked. The jump in GEARnn-2's curve where ERA starts
# is the consistency term switching on, not a loss of accuracy.

# %%
fig = plot_loss_curves(
    {name: epoch_curve(run) for name, run in runs.items()},
    stage_boundaries={name: stage_boundaries(run) for name, run in runs.items()},
)

# %%
stage_rows = [
    {"method": n, "stage": s["name"], "seconds": round(s["seconds"], 2)}
    for n, r in runs.items()
    for s in r["stages"]
]
pd.DataFrame(stage_rows).pivot(index="method", columns="stage", values="seconds")
