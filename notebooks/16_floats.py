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
# # FLOATS: pruning the noisy network while it trains
#
# FLOATS (FLOAT paper, Sec. 3.2) trains FLOAT's network under a fixed budget of non-zero weights and
# comes in three forms: FLOATS-i prunes single weights, FLOATS-c whole input channels (which a
# dense accelerator can skip), and FLOATS slim also trains a half-width network inside the full one,
# so one set of weights serves two model sizes as well as two accuracy-robustness balances.
# {ref}`notes-adv-floats` gives the sparse-momentum algorithm and gearlib's choices.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
seed: int = 0  # seed of data subsets, initialisation, attacks and noise
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training

# %% tags=["remove-cell"]
from IPython.display import HTML, Markdown, display

from gearlib.adversarial import report
from gearlib.adversarial.paper import float_table1
from gearlib.experiments import collapse_note, open_chapter, readable_html

chapter = open_chapter(globals())
display(Markdown(chapter.adversarial_banner()))
p = chapter.profile_config

# %% [markdown]
# ## Three ways to prune
#
# FLOATS keeps a fixed budget of non-zero weights, a fraction $d$ of all of them (FLOAT paper, Eq. 5), and
# moves that budget during training with sparse momentum (Dettmers and Zettlemoyer, 2019): at every
# epoch's end each layer drops its smallest weights, and the freed budget regrows where the momentum of
# the pruned weights is largest. FLOATS-i prunes single weights ($d = 0.1$), FLOATS-c whole input
# channels ($d = 0.34$), FLOATS slim prunes to $d = 0.3$ and also trains a half-width network inside the
# full one.

# %%
flt = chapter.run("float")
floats = chapter.runs(["floats-i", "floats-c", "floats-slim"])
table = report.endpoint_table({"float": flt, **floats})
table["density"] = [
    r["mask_counts"]["clean_nonzero"] / r["mask_counts"]["weights"] for r in [flt, *floats.values()]
]
display(HTML(readable_html(table)))
for m, run in floats.items():
    if collapse_note(run):
        display(Markdown(f"**{m}**: {collapse_note(run)}"))

# %% [markdown]
# The paper's FLOATS variants (FLOAT paper, Table 1):

# %%
float_table1()

# %% [markdown]
# How sparse momentum moved FLOATS-i's budget between layers, epoch by epoch (the total stays fixed):

# %%
fig = report.density_drift(floats["floats-i"])

# %% [markdown]
# FLOATS slim at both widths, along the knob (λ_th = 0):

# %%
slim = report.knob_frame(floats["floats-slim"])
display(HTML(readable_html(slim[slim.index.str.endswith("lam_th=0")])))

# %%
fig = report.tradeoff_curve({"FLOATS slim": floats["floats-slim"], "FLOAT": flt},
                            title="FLOATS slim's two widths and FLOAT along the knob")  # fmt: skip
