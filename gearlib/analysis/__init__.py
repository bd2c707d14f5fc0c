"""Analysis for the book's Discussion: Fourier spectra and heat maps, loss landscapes, topology, curves.

Plot helpers return matplotlib Figures (pyplot is imported inside them) and never call plt.show().
"""

from __future__ import annotations

from gearlib.analysis.curves import plot_loss_curves
from gearlib.analysis.fourier import (
    fourier_basis,
    fourier_heatmap,
    perturbation_spectrum,
    plot_fourier_heatmap,
    plot_spectra,
    spectrum,
)
from gearlib.analysis.landscape import filter_normalized_direction, loss_landscape_1d, plot_landscapes
from gearlib.analysis.topology import plot_topology, topology_frame

__all__ = [
    "filter_normalized_direction",
    "fourier_basis",
    "fourier_heatmap",
    "loss_landscape_1d",
    "perturbation_spectrum",
    "plot_fourier_heatmap",
    "plot_landscapes",
    "plot_loss_curves",
    "plot_spectra",
    "plot_topology",
    "spectrum",
    "topology_frame",
]
