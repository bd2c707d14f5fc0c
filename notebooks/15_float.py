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
# # FLOAT: a knob made of weight noise
#
# FLOAT (Kundu et al., WACV 2023) keeps OAT's goal, one network whose balance between clean and robust
# accuracy is set at inference, and drops OAT's FiLM layers. Its conditional layers add Gaussian noise
# to their own weights, scaled by the weights' spread and by one learned number $\alpha$ per layer; the
# knob decides how much of that noise is used and which of two batch-norm sets normalises. Training
# splits every batch: half trains the clean path (no noise, BN$_C$), half is attacked and trains the
# noisy path (BN$_A$). The next chapter prunes the same network while it trains (FLOATS). The algorithms
# and every choice gearlib makes are in {ref}`notes-adv-float`.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
seed: int = 0  # seed of data subsets, initialisation, attacks and noise
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training

# %% tags=["remove-cell"]
import statistics

import pandas as pd
from IPython.display import HTML, Markdown, display

from gearlib import experiments as ex
from gearlib.adversarial import cost, report
from gearlib.adversarial.knobs import float_condition
from gearlib.adversarial.paper import float_table1

chapter = ex.open_chapter(globals())
display(Markdown(chapter.adversarial_banner()))
p = chapter.profile_config

# %% [markdown]
# ## The trade-off along the knob
#
# At inference the knob $\lambda_n \in [0, 1]$ scales the noise, and a threshold $\lambda_\text{th}$ picks
# the batch-norm set. With $\lambda_\text{th} = 0$, BN$_A$ serves every $\lambda_n > 0$ and the noise is
# $\lambda_n\alpha$; with $\lambda_\text{th} = 0.5$, BN$_C$ serves $\lambda_n \le 0.5$ and each set sweeps its
# noise from zero to $\alpha$ (FLOAT paper, Eq. 6). Every setting below is the same trained network.

# %%
runs = chapter.runs(["float", "pgd-at-0", "pgd-at"])
flt = runs["float"]
display(HTML(ex.readable_html(report.knob_frame(flt))))
if ex.collapse_note(flt):
    display(Markdown(f"**float**: {ex.collapse_note(flt)}"))

# %%
fig = report.tradeoff_curve(
    {"FLOAT": flt}, {"PGD-AT λ=0": runs["pgd-at-0"], "PGD-AT λ=1": runs["pgd-at"]},
    title="FLOAT: one network along its knob, PGD-AT's two models as squares",
)  # fmt: skip

# %% [markdown]
# Only $\lambda_n = 0$ and $\lambda_n = 1$ (at $\lambda_\text{th} = 0$) are paths the network was trained on;
# the settings between them mix a batch-norm set with a noise level it never saw. Whether CA falls and
# RA rises along the knob, as the paper reports, can be read off the table above: the direction is
# computed here from the first and last setting of each threshold.

# %%
direction = []
for th in (0.0, 0.5):
    first, last = flt["adv_settings"][f"lam_n=0,lam_th={th:g}"], flt["adv_settings"][f"lam_n=1,lam_th={th:g}"]
    direction.append({
        "λ_th": th, "CA at λ_n=0": first["clean_acc"], "CA at λ_n=1": last["clean_acc"],
        "RA at λ_n=0": first["adv_acc"], "RA at λ_n=1": last["adv_acc"],
        "CA falls": last["clean_acc"] < first["clean_acc"], "RA rises": last["adv_acc"] > first["adv_acc"],
    })  # fmt: skip
pd.DataFrame(direction).set_index("λ_th")

# %% [markdown]
# The paper's FLOAT (ResNet-34, CIFAR-10, 200 epochs; FLOAT paper, Table 1) at both ends:

# %%
float_table1().loc[["float"]]

# %% [markdown]
# ## What the noise learned
#
# Every conditional layer starts with $\alpha = 0.25$ and learns its own noise scale through the
# reparameterised noise. The learned values, layer by layer:

# %%
fig = report.alpha_bars({"float": flt}, title="FLOAT: learned noise scale α per layer")

# %% [markdown]
# ## A random network needs a stronger attack
#
# FLOAT draws fresh noise on every forward pass, also during an attack, so one gradient is a noisy
# estimate of the one the attacker wants. EOT-PGD averages several draws per step. The table above
# lists both for every noisy setting, and the checklist of the previous chapter, run on FLOAT's
# robust end, compares them directly:


# %%
checks = chapter.cached(
    "masking-float",
    lambda: ex.masking_checks_of(chapter, "float", float_condition(1.0, 0.0)),
    arch=p.adv_arch,
)
report.masking_frame(checks)

# %%
fig = report.masking_sweeps([checks], ["FLOAT (λ_n = 1)"], title="Gradient-masking checks on FLOAT")

# %% [markdown]
# The strongest published evaluation of randomised defences is AutoAttack's "rand" version (Croce and
# Hein, 2020: APGD on two losses, 100 iterations, 20 EOT draws), which FLOAT reports too. It comes from
# its authors' repository, not from the package index, so it runs here only where it is installed:


# %%
auto = chapter.cached("autoattack-float", lambda: ex.autoattack_of(chapter, "float", float_condition(1.0, 0.0)),
                      arch=p.adv_arch)  # fmt: skip
display(Markdown(report.autoattack_note(auto)))

# %% [markdown]
# ## Training time against PGD-AT
#
# FLOAT attacks only half of each batch, PGD-AT all of it; the paper reports PGD-AT's epochs at 1.37
# times FLOAT's and OAT's at 1.43 times (FLOAT paper, Sec. 4.3). Counting passes alone predicts a larger
# gap ({ref}`notes-adv-cost`), so we measure. The runs' own epoch times are below, but they were trained
# at different moments on a shared machine; the benchmark that follows times one training step of each
# method side by side, interleaved in one process, on this profile's model and attack.

# %%
epochs = {m: statistics.mean(r["epoch_seconds"]) for m, r in runs.items() if m != "pgd-at-0"}
pd.DataFrame({"s / epoch (stored runs)": epochs})


# %%
timing = chapter.cached("bench-adversarial", lambda: ex.bench_adversarial_of(chapter), arch=p.adv_arch)
display(HTML(ex.readable_html(report.timing_frame(timing))))

# %% [markdown]
# ## The cost model
#
# FLOAT argues its conditional layers are cheap in hardware too, with a delay model of a
# memory-bound accelerator (FLOAT paper, Eqs. 7-9): FLOAT adds one pass that adds noise to the weights,
# OAT has to read and run its FiLM MLPs. Over the 33 FiLM-conditioned convolutions of CIFAR ResNet-34,
# computed by `gearlib.adversarial.cost`:

# %%
rows = cost.delay_table(cost.film_convs())
summary = cost.delay_summary(rows)
pd.DataFrame(summary).T

# %% [markdown]
# The largest OAT-to-FLOAT ratio is the paper's "up to 1.66×", at the first convolution of the last
# stage, where the FiLM MLP ($4C^2$ weights for $C = 512$) outweighs the $4\times4$ feature map. Parameters
# and additions of the three conditional designs (ResNet-34), with SMART's Table 2 beside ours:

# %%
display(HTML(ex.readable_html(pd.DataFrame(cost.comparison_table()).set_index("method"))))
