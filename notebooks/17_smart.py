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
# # SMART: two sparse paths through one network
#
# FLOAT's two paths share every weight; only noise and batch-norm statistics tell them apart. SMART
# (Kundu et al., 2023) gives the later layers two fixed binary masks instead, one per path, so that the
# clean and the adversarial network each use half of those weights and share only part of them. The
# early stages stay dense on both paths ("[D D S S]" over ResNet's four stages), the noise of FLOAT is
# kept on the adversarial path, and the knob chooses a path: $\lambda = 0$ the clean one, any
# $\lambda > 0$ the adversarial one with noise $\lambda\alpha$. {ref}`notes-adv-smart` has the details.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
seed: int = 0  # seed of data subsets, initialisation, masks, attacks and noise
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training

# %% tags=["remove-cell"]
from IPython.display import HTML, Markdown, display

from gearlib.adversarial import report
from gearlib.adversarial.paper import smart_table1, smart_table2
from gearlib.experiments import collapse_note, open_chapter, readable_html

chapter = open_chapter(globals())
display(Markdown(chapter.adversarial_banner()))
p = chapter.profile_config

# %% [markdown]
# ## The masks
#
# In every convolution of stages 3 and 4 (shortcuts included), gearlib deals the weight positions out
# exactly: a quarter shared by both paths, a quarter for the clean path only, a quarter for the
# adversarial path only, a quarter for neither. Each path thus keeps half of those weights, and the two
# masks overlap as much as two independent coin flips would on average, without their randomness. Counted
# on our trained network and, by formula, on the paper's ResNet-34:

# %%
smart, flt = chapter.run("smart"), chapter.run("float")
report.mask_table(smart)

# %% [markdown]
# The later stages hold most of a ResNet's weights, so sparsifying only them already halves the
# non-zeros per path; SMART's Table 2 reports 0.54 of FLOAT's for ResNet-34.
#
# ## The knob, against FLOAT

# %%
display(HTML(readable_html(report.knob_frame(smart))))
if collapse_note(smart):
    display(Markdown(f"**smart**: {collapse_note(smart)}"))

# %%
fig = report.tradeoff_curve({"SMART": smart, "FLOAT": flt}, title="SMART and FLOAT along their knobs")

# %%
display(HTML(readable_html(report.endpoint_table({"float": flt, "smart": smart}))))

# %% [markdown]
# The papers' numbers (CIFAR-10, ResNet-34): which stages to make sparse and how much the masks should
# share (SMART paper, Table 1), and the four methods side by side (SMART paper, Table 2). With every stage
# sparse the paper's adversarial path collapses, and sharing a quarter of the positions beats disjoint masks
# (both in its Table 1).

# %%
smart_table1()

# %%
smart_table2()
