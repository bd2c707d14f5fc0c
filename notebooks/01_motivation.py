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
# # §1 Motivation: what robust training costs at the edge
#
# A network deployed on a drone or a field robot sees fog, motion blur and sensor noise that were never
# in its training set. The usual cure is *robust data augmentation*: train on many distorted copies of
# every image and ask the network to answer consistently across them. The cure is expensive. The GEARnn
# paper opens with the observation that robustly training even a small VGG-19 on CIFAR-10 takes more
# than a day on a Jetson Xavier NX, far more than plain training.
#
# This chapter measures that gap on the machine that executed this page, with the same small network
# trained three ways: on clean data, with AugMix (the robust baseline), and with GEARnn-2 (the method
# this book builds up to).

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
arch: str = "vgg19"  # vgg19 | mobilenet_v1 | resnet18
seed: int = 0  # seed of data subsets, initialisation and augmentation
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from gearlib.experiments import metrics_table, open_chapter
from gearlib import paper, plots

chapter = open_chapter(globals())
display(Markdown(chapter.banner()))

# %% [markdown]
# ## Three ways to train the same small network
#
# All three networks have the same final topology (the one GEARnn-2 grows), so the comparison isolates
# the training recipe. `chapter.runs` trains each method (or, with `replay=True`, reads a stored result)
# and returns everything the paper's tables report.

# %%
runs = chapter.runs(["small-clean", "small-augmix", "gearnn2"])
ours = metrics_table(runs)
ours

# %% [markdown]
# The same three rows as the paper reports them for VGG-19 on CIFAR-10 (Table 2, Quadro RTX 6000):

# %%
paper.table2("vgg19", "cifar10").loc[["small-clean", "small-augmix", "gearnn2"]]

# %% [markdown]
# Absolute minutes depend on the machine and on the scale of the run, so we compare *ratios to clean
# training*: how many times more does robustness cost?

# %%
plots.relative_cost(ours, paper.table2("vgg19", "cifar10"), baseline="small-clean")

# %%
hw = runs["small-augmix"]
fig = plots.cost_vs_robustness(
    ours.reset_index(),
    paper=paper.table2("vgg19", "cifar10").reset_index(),
    title="Robust accuracy against training time",
)

# %% [markdown]
# Robust augmentation buys robust accuracy with training time. GEARnn's question is whether part of
# that price can be avoided: grow a small network cheaply on clean data, then spend only a short,
# efficient robust phase on it. The measurements above were produced with:

# %%
print(f"hardware: {hw['hardware']['cpu_model']} / {hw['hardware'].get('cuda_device') or 'no GPU'}")
print(f"energy meter: {hw['energy_backend_detail']}")
print(f"data: {hw['data_source']} ({hw['train_images']} training images)")
