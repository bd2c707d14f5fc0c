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
# # §3 Problem set-up: clean data, corrupted data, robust accuracy
#
# A classifier is trained on *clean* images and later meets *corrupted* ones: the same scenes seen
# through noise, blur, weather or lossy compression. The common-corruption benchmark
# {cite:p}`hendrycks2019benchmarking` makes this measurable. It applies 15 corruption functions, each
# at 5 severities, to every test image; four more are kept apart as extras. **Clean accuracy**
# (C-acc) is the accuracy on the untouched test set. **Robust accuracy** (R-acc), as RobustBench
# {cite:p}`croce2021robustbench` computes it, is the plain mean of the 75 accuracies over
# (corruption, severity) blocks.
#
# GEARnn wants both accuracies high, with few parameters, little training time and little energy.
# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
arch: str = "vgg19"  # vgg19 | mobilenet_v1 | resnet18
seed: int = 0  # seed of data subsets, initialisation and augmentation
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from gearlib import corrupt
from gearlib.experiments import open_chapter

chapter = open_chapter(globals())
display(Markdown(chapter.banner()))

# %% [markdown]
# ## One image, nineteen corruptions, five severities
#
# gearlib generates every corruption itself (NumPy, SciPy and PIL; no external programs), seeded per
# image so that a generated benchmark is reproducible. Rows are corruptions in the benchmark's order
# (the four extras last), columns severities 1 to 5.

# %%
test = chapter.test_images(8)
image = test.images[7].permute(1, 2, 0).numpy()
fig = corrupt.gallery(image)

# %% [markdown]
# ## Robust accuracy of a plainly trained network
#
# A network trained only on clean data (the paper's Small(D) baseline) is evaluated on every block.
# The table shows accuracy per corruption (rows) and severity (columns). Noise and blur are where
# clean training fails first; brightness barely hurts.

# %%
run = chapter.run("small-clean")
print(f"clean accuracy {run['clean_acc']:.2f}%, robust accuracy {run['robust_acc']:.2f}%")
print(f"corrupted images: {run['robust_source']}")

# %%
import pandas as pd
import seaborn as sns

table = pd.DataFrame(run["robust_table"]).T
fig = sns.heatmap(table, annot=True, fmt=".0f", cmap="viridis", cbar_kws={"label": "accuracy (%)"}).figure
fig.set_size_inches(6, 7)

# %% [markdown]
# Robust accuracy is the mean of this table. Each block here holds the number of images the profile
# allows; with a subset, the run also reports a 95% confidence interval of the mean:

# %%
print("95% interval:", [round(v, 2) for v in run["robust_ci95"]] if run["robust_ci95"] else "exact")
