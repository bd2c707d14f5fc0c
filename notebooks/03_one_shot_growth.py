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
# # §4.1 One-Shot Growth
#
# Training a full-size network and pruning it afterwards needs the full network first, which is
# exactly what an edge device cannot afford. Growth runs the other way: start from a *thin backbone*
# (here every growable layer has the same small width c₀) and add neurons where they help most.
#
# GEARnn grows widths with Firefly {cite:p}`wu2020firefly` in its *split and new neurons* mode, once:
#
# 1. **Candidates.** Every existing neuron may split into two copies pushed apart along a learned
#    direction; every layer also gets K brand-new neurons whose outgoing weights start near zero.
# 2. **Perturbation pass.** One pass over the data trains only the candidates' parameters, with the
#    original network frozen.
# 3. **Scoring pass.** A second pass measures, for each candidate, how much the loss would drop if it
#    were switched on (a first-order score).
# 4. **Selection and materialisation.** Within a neuron budget set by the growth ratio γ, the
#    best-scoring candidates become real channels; everything else is dropped.
#
# One growth step between two training stages is *One-Shot Growth* (OSG).
# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
arch: str = "vgg19"  # vgg19 | mobilenet_v1 | resnet18
seed: int = 0  # seed of data subsets, initialisation and augmentation
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training
new_neurons: int = 0  # K candidates per layer; 0: the profile's value

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from gearlib import grow, models, plots
from gearlib.data import dataset_info

from gearlib.experiments import open_chapter

chapter = open_chapter(globals(), extra=["new_neurons"])
display(Markdown(chapter.banner()))
p = chapter.profile_config
K = new_neurons or p.new_neurons

# %% [markdown]
# ## A thin backbone
#
# The backbone has every growable width equal to c₀ and is a few percent of the full model:

# %%
num_classes = dataset_info(chapter.dataset).num_classes
backbone = models.build(arch, p.backbone_width, num_classes)
print(
    f"c0 = {p.backbone_width}: {models.count_params(backbone):,} parameters, "
    f"{100 * models.size_fraction(backbone):.2f}% of the full {arch}"
)

# %% [markdown]
# One-Shot Growth on clean data (phase 1 of GEARnn-2) trains this backbone for E₁ epochs, takes one
# growth step with the paper's ratio for this architecture (Table 1), and trains the grown network for
# E₂ epochs; the profile sets the scale (see the banner above).

# %%
extra = [f"new_neurons={new_neurons}"] if new_neurons else []
run = chapter.run("osg-clean", overrides=extra, tag=f"-k{new_neurons}" if new_neurons else "")
record = run["growth"][0]
gamma = record["growth_ratio"]

# %%
fig = plots.widths_before_after(
    record["widths_before"],
    record["widths_after"],
    models.full_widths(arch),
    names=record["unit_names"],
    title=f"{arch}: widths before and after one growth step",
)

# %% [markdown]
# Each bar is a layer's width after growth; the orange part is the backbone's. The selection is
# global within each budget group, so some layers gain many channels and others few. How the new
# channels came about, split copies of existing neurons or brand-new ones:

# %%
import pandas as pd

pd.DataFrame(
    {
        "layer": record["unit_names"],
        "before": record["widths_before"],
        "split": record["split"],
        "new": record["added"],
        "after": record["widths_after"],
    }
).set_index("layer").T

# %%
print(f"growth ratio gamma = {gamma}, K = {K} candidates per layer")
print(f"budget per group M = {record['budgets']}, kept = {record['kept']}")
print(f"size: {100 * record['size_before']:.2f}% -> {100 * record['size_after']:.2f}% of the full model")
print("growth step time: " + ", ".join(f"{k} {v:.2f} s" for k, v in record["seconds"].items()))
print(f"after E2: clean accuracy {run['clean_acc']:.1f}% on {run['test_images']} test images")

# %% [markdown]
# The grown network starts from the trained candidate network's function, so training continues
# from where the backbone left off rather than from scratch. A feasibility rule follows from the
# construction: a group can only add as many neurons as it has candidates, so γ must stay below
# 1 + K·|group| / Σc. gearlib checks this when a run is configured:

# %%
try:
    grow.check_feasible("mobilenet_v1", 45, 2.0, 40)
except ValueError as err:
    print(err)
