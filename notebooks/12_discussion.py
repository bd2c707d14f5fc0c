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
# # §8 Discussion: what growth builds, and why clean first works
#
# The results chapters showed *that* GEARnn-2 works. This chapter looks inside, with four views:
#
# 1. **Topology.** Which layers does One-Shot Growth widen, and is the pattern stable across seeds?
# 2. **Training curves.** How quickly does each method's loss fall?
# 3. **Loss landscape.** What does the loss look like around each method's final weights?
# 4. **Fourier spectra.** Where, in frequency, do clean images, augmented views and corruptions put
#    their energy, and what does that say about starting robust training from a clean-trained network?

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # smoke | cpu | quadro | jetson
dataset: str = "auto"  # auto: synthetic on smoke; else CIFAR-10 when on disk, else synthetic
arch: str = "vgg19"  # vgg19 | mobilenet_v1 | resnet18
seed: int = 0  # seed of data subsets, initialisation and augmentation
data_dir: str = ""  # empty: $GEARLIB_DATA, then ./data
replay: bool = False  # True: read results/<profile>/ instead of training
seeds: list = [0, 1, 2]  # seeds of the One-Shot Growth runs whose topologies are averaged
corruptions: list = ["gaussian_noise", "motion_blur", "fog"]  # corruptions shown one by one (severity 3)
spectrum_images: int = 64  # test images behind each Fourier spectrum (at most 64, the stored sample)

# %% tags=["remove-cell"]
import torch
from IPython.display import Markdown, display

from gearlib import analysis, augment, corrupt, plots
from gearlib.data import to_float
from gearlib.experiments import (
    corrupted_views,
    epoch_curve,
    landscape_curves,
    open_chapter,
    provenance,
    stage_boundaries,
)
from gearlib.models import full_widths, unit_names

chapter = open_chapter(globals(), extra=["seeds", "corruptions", "spectrum_images"])
display(Markdown(chapter.banner()))

# %% [markdown]
# ## §8.1 The topology One-Shot Growth chooses
#
# One-Shot Growth on clean data (the first phase of GEARnn-2) from the same thin backbone, repeated
# with different seeds. Bars: mean width per layer over the seeds, with the spread as error bars;
# black ticks: the backbone; dashed red: the full network. The axis is logarithmic because the full
# network is several times wider than the grown one.

# %%
osg = {s: chapter.run("osg-clean", seed=s) for s in seeds}
backbone = osg[seeds[0]]["width_history"][0]
frame = analysis.topology_frame(
    {s: r["widths"] for s, r in osg.items()}, unit_names(arch), backbone, full_widths(arch)
)
fig = analysis.plot_topology(frame, title=f"{arch}: widths after One-Shot Growth")
plots.log2_axis(fig.axes[0])
frame[["layer", "mean", "std", "backbone", "full", "mean_frac"]].round(3)

# %% [markdown]
# What the paper reports: in VGG-19 the early layers receive more filters than the late ones, the
# opposite of the full network's doubling widths; in ResNet-18 the pattern does not follow depth but
# alternates, the first convolution of each residual block growing more than the second. The growth
# step decides this from first-order loss reductions alone, so the pattern is a property of the data
# and the architecture. How stable it is can be read off the error bars.
#
# ## §8.2 Why two phases: training curves
#
# Training loss per epoch for the two GEARnn variants and the robust baseline, with stage boundaries
# dotted. The loss of a robust stage includes the consistency term (weight λ = 12), so it jumps where
# GEARnn-2 switches from clean to ERA batches; compare the curves within a stage, and their end points.

# %%
curve_runs = chapter.runs(["gearnn1", "gearnn2", "small-augmix"])
fig = analysis.plot_loss_curves(
    {m: epoch_curve(r) for m, r in curve_runs.items()},
    stage_boundaries={m: stage_boundaries(r) for m, r in curve_runs.items()},
)

# %% [markdown]
# ## §8.2 The loss around the final weights
#
# We use the filter normalisation of {cite:p}`li2018visualizing`: draw one random direction d in weight
# space, rescale it filter by filter to the norms of the trained filters, and evaluate the test loss
# at θ* + α d over a range of α. The rescaling makes curves of different networks comparable. A low,
# wide basin is associated with weights that generalise; in the paper GEARnn-2's curve has the lowest
# minimum and a wide basin.
#
# This needs the trained networks, which only exist where the runs were trained; on a replayed page the
# curves come from the results saved by the live run.

# %%
methods = ["gearnn1", "gearnn2", "small-augmix"]
curves = chapter.cached("landscape", lambda: landscape_curves(chapter, methods, seed=seed))
fig = analysis.plot_landscapes({m: (c["alphas"], c["losses"]) for m, c in curves.items()})

# %% [markdown]
# ## §8.2 Why clean data is a good start: Fourier spectra
#
# As in {cite:p}`yin2019fourier`, the spectrum of a set of images is the mean magnitude of their
# 2-D Fourier transforms, with the lowest frequencies at the centre of each panel (log scale, each
# panel normalised to its own maximum). First the images themselves: clean, ERA views, a few corruptions
# at severity 3, and the mean over the 15 benchmark corruptions.

# %%
clean = to_float(chapter.test_images(spectrum_images).images)
era_views = torch.cat(augment.era(clean, generator=torch.Generator().manual_seed(seed))[1:])
corrupted = corrupted_views(clean, corrupt.BENCHMARK_CORRUPTIONS, severity=3, seed=seed)
spectra = {"clean": analysis.spectrum(clean), "ERA views": analysis.spectrum(era_views)}
spectra.update({name: analysis.spectrum(corrupted[name]) for name in corruptions})
spectra["mean of 15 corruptions"] = torch.stack([analysis.spectrum(v) for v in corrupted.values()]).mean(0)
fig = analysis.plot_spectra(spectra, ncols=3)

# %% [markdown]
# Then the *changes* each transformation makes, |F(T(x) − x)|: what the network must learn to ignore.
# Noise spreads its energy over all frequencies; blur and fog remove or add mostly low-frequency
# content.

# %%
deltas = {"ERA views": analysis.perturbation_spectrum(clean.repeat(3, 1, 1, 1), era_views)}
deltas.update({name: analysis.perturbation_spectrum(clean, corrupted[name]) for name in corruptions})
deltas["mean of 15 corruptions"] = torch.stack(
    [analysis.perturbation_spectrum(clean, v) for v in corrupted.values()]
).mean(0)
fig = analysis.plot_spectra(deltas, ncols=3)

# %% [markdown]
# The paper's argument: individual corruptions can reach high frequencies, but averaged over the whole
# benchmark, and over the augmentations used in training, the energy sits at low frequencies, like
# the clean images'. A network trained on clean data has already learned to use that part of the
# spectrum, so robust training can start from it rather than from scratch. This would not hold for
# perturbations that live at high frequencies, such as adversarial or Gaussian noise.
#
# The runs behind this page were produced with:

# %%
display(Markdown(provenance(curve_runs["gearnn2"])))
