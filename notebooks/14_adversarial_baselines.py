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
# # Attacks, PGD-AT and OAT
#
# The GEARnn chapters asked for robustness to *natural* corruptions: noise, blur, fog, JPEG. This part
# of the book asks for robustness to an *adversary*, someone who may change every pixel of an image by
# a small amount, chosen to make the network wrong. Two companion papers by Kundu et al., FLOAT (WACV
# 2023) and SMART (2023), build networks for edge devices that can be switched, after training, between
# being accurate on clean images and being accurate under attack. This chapter sets up the threat model,
# the attacks that measure robustness, and the two baselines those papers compare against:
#
# - **PGD-AT** (Madry et al., ICLR 2018) trains against the strongest first-order attack it can afford,
#   one model per trade-off between clean and robust accuracy;
# - **OAT** (once-for-all adversarial training, Wang et al., NeurIPS 2020) trains one model that takes
#   the trade-off $\lambda$ as an input, through FiLM layers and two sets of batch-norm statistics.
#
# The method notes ({ref}`notes-adv`) give the algorithms and every choice gearlib makes; this page shows
# what they do at this profile's scale.

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

from gearlib.adversarial import cost, report
from gearlib.adversarial.evaluate import eval_attacks
from gearlib.adversarial.layers import Condition
from gearlib.adversarial.paper import smart_table2
from gearlib.experiments import collapse_note, masking_checks_of, open_chapter, readable_html

chapter = open_chapter(globals())
display(Markdown(chapter.adversarial_banner()))
p = chapter.profile_config

# %% [markdown]
# ## The threat model
#
# Images live in $[0, 1]$ and the adversary may move each pixel by at most $\epsilon$ in either direction
# (an $L_\infty$ ball; $\epsilon = 8/255$ as in all three papers). Robust accuracy (RA) is the accuracy on
# the attacked images; clean accuracy (CA) the accuracy on the untouched ones. We attack with:
#
# - **FGSM**: one step of size $\epsilon$ along the sign of the loss gradient;
# - **PGD-$K$**: $K$ such steps from a random start in the ball, each projected back into it. The step
#   follows OAT's rule $\sigma = \min(1.25\epsilon, \epsilon + 4/255)/K$, so the steps together travel
#   $1.25\,\epsilon$;
# - **EOT-PGD**: PGD whose every gradient is averaged over several forward passes, for networks whose
#   forward pass is random (FLOAT's and SMART's are, next chapters).
#
# Every attack runs with the network in evaluation mode and its parameters frozen, so it never changes
# the batch-norm statistics, and every reported RA is the worst over the attacks tried. The attacks of
# this profile:

# %%
display(Markdown("\n".join(f"- {a.description}" for a in eval_attacks(p, eot=True))))

# %% [markdown]
# ## PGD-AT at both ends
#
# PGD-AT minimises $(1-\lambda)\,\mathrm{CE}(x) + \lambda\,\mathrm{CE}(\hat x)$ with $\hat x$ a PGD attack on
# the whole batch. $\lambda$ is fixed before training, so each trade-off point costs a full training run.
# Its two ends: $\lambda = 0$ is plain training, $\lambda = 1$ trains on attacked images only.

# %%
pgd_at = chapter.runs(["pgd-at-0", "pgd-at"])
frame = pd.concat({m: report.knob_frame(run) for m, run in pgd_at.items()}).droplevel(1)
frame.index.name = "run"
display(HTML(readable_html(frame)))
for m, run in pgd_at.items():
    if collapse_note(run):
        display(Markdown(f"**{m}**: {collapse_note(run)}"))

# %% [markdown]
# What the two models trade, computed from the table above (RA is the worst over the attacks):

# %%
zero, one = (next(iter(pgd_at[m]["adv_settings"].values())) for m in ("pgd-at-0", "pgd-at"))
display(Markdown(
    f"Plain training keeps {zero['adv_acc']:.1f}% of the attacked images; training on attacked images "
    f"{'raises' if one['adv_acc'] > zero['adv_acc'] else 'does not raise'} that to {one['adv_acc']:.1f}% "
    f"and moves clean accuracy from {zero['clean_acc']:.1f}% to {one['clean_acc']:.1f}%, while each of its "
    f"epochs took {statistics.mean(pgd_at['pgd-at']['epoch_seconds']) / statistics.mean(pgd_at['pgd-at-0']['epoch_seconds']):.1f} "
    f"times as long (the attack runs before every step)."
))  # fmt: skip

# %% [markdown]
# The paper's numbers for the same two models (ResNet-34 trained for 200 epochs on all of CIFAR-10;
# SMART paper, Table 2):

# %%
smart_table2().loc[["pgd-at"]]

# %% [markdown]
# ## Is the robustness real? The gradient-masking checklist
#
# A network can look robust because its gradients are useless to the attack rather than because it is
# robust (Athalye et al., ICML 2018). FLOAT runs a checklist against that; we measure four of its checks
# on the PGD-AT ($\lambda = 1$) network: an iterative attack must be at least as strong as a single
# step, accuracy must fall towards zero as $\epsilon$ grows, more PGD steps must stop helping the
# attacker, and (for random networks) averaging gradients (EOT) must not find more than plain PGD.


# %%
checks = chapter.cached(
    "masking-pgd-at", lambda: masking_checks_of(chapter, "pgd-at", Condition()), arch=p.adv_arch
)
report.masking_frame(checks)

# %%
fig = report.masking_sweeps([checks], ["PGD-AT (λ = 1)"], title="Gradient-masking checks on PGD-AT")

# %% [markdown]
# With OAT's step rule PGD's steps add up to only $1.25\,\epsilon$, and from a random start it may not
# reach the corner of the ball that FGSM jumps to directly; on a weak or nearly linear network FGSM can
# then be the stronger attack, and the first check fails without any masking. That is one reason every
# RA in this part is the worst case over FGSM, PGD and, for noisy networks, EOT-PGD.
#
# ## OAT: one network, a knob $\lambda$
#
# OAT feeds $\lambda$ to FiLM layers that rescale and shift every batch-norm output, and keeps two sets
# of batch-norm statistics (one for $\lambda = 0$, one for all $\lambda > 0$). During training each sample
# draws its own $\lambda$ from $\{0, 0.2, 0.7, 1\}$, FLOAT's comparison set; at inference any $\lambda$ can
# be set. Its accuracy at each setting:

# %%
oat = chapter.run("oat")
display(HTML(readable_html(report.knob_frame(oat))))
if collapse_note(oat):
    display(Markdown(f"**oat**: {collapse_note(oat)}"))

# %%
fig = report.tradeoff_curve({"OAT": oat}, {"PGD-AT λ=0": pgd_at["pgd-at-0"], "PGD-AT λ=1": pgd_at["pgd-at"]},
                            title="OAT's knob against PGD-AT's two models")  # fmt: skip

# %% [markdown]
# OAT's knob is not free. Each FiLM is a small MLP from $\lambda$ to two numbers per channel, so its
# parameters grow with the square of the width: at the paper's scale (CIFAR ResNet-34, width 64) the
# FiLMs take the model from 21.28 M to 31.40 M parameters. Counted by `gearlib.adversarial.cost` and
# checked against our instantiated models, for the paper's network and for this profile's:

# %%
blocks = {"resnet10": (1, 1, 1, 1), "resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}[p.adv_arch]
ours_widths = tuple(p.adv_width * 2**i for i in range(4))
rows = []
for label, b, w in (("paper's ResNet-34, width 64", (3, 4, 6, 3), (64, 128, 256, 512)),
                    (f"this profile's {p.adv_arch}, width {p.adv_width}", blocks, ours_widths)):  # fmt: skip
    plain, film = cost.resnet_params(b, w), cost.oat_params(b, w, dual_bn=True)
    rows.append({"network": label, "plain": plain, "OAT (FiLM, dual BN)": film, "ratio": film / plain})
pd.DataFrame(rows).set_index("network")

# %% [markdown]
# The paper's OAT numbers (SMART paper, Table 2):

# %%
smart_table2().loc[["oat"]]

# %% [markdown]
# The next chapter replaces OAT's FiLM layers by something almost free: noise on the weights.
