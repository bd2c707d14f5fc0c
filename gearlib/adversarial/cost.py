"""Costs of in-situ accuracy-robustness knobs: conv delay (FLOAT, Eqs. 7-9), parameters, MACs and additions.

PGD-AT, OAT (FiLM conditioning), FLOAT (noisy weights, dual BN) and SMART (two sparse masks) on CIFAR ResNets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "RESNET18_BLOCKS",
    "RESNET34_BLOCKS",
    "RESNET_WIDTHS",
    "SMART_TABLE2",
    "ConvShape",
    "DelayConstants",
    "comparison_table",
    "conv_delay",
    "delay_summary",
    "delay_table",
    "film_channels",
    "film_convs",
    "film_macs",
    "film_params",
    "float_delay",
    "float_params",
    "noise_additions_ratio",
    "noisy_weights",
    "oat_delay",
    "oat_extra_macs",
    "oat_params",
    "resnet_layers",
    "resnet_macs",
    "resnet_params",
    "smart_counts",
]

RESNET18_BLOCKS = (2, 2, 2, 2)
RESNET34_BLOCKS = (3, 4, 6, 3)
RESNET_WIDTHS = (64, 128, 256, 512)

# The ratios of a delay_table row, in the order FLOAT reports them (FLOAT, Fig. 7c).
RATIOS = ("float_over_base", "oat_over_base", "oat_over_float")

# SMART, Table 2 (ResNet-34 on CIFAR-10, lambda = 1): normalised non-zero parameters, extra MACs, extra ADDs.
# PGD-AT's normalised parameters are printed as "N" (one model per trade-off point); SMART's text says 11.84 M
# additions where its table says 11.4 M.
SMART_TABLE2: Dict[str, Tuple[Optional[float], int, int]] = {
    "PGD-AT": (None, 0, 0),
    "OAT": (1.47, 15_000_000, 0),
    "FLOAT": (1.0, 0, 21_280_000),
    "SMART": (0.54, 0, 11_400_000),
}


def _ceil_div(a: int, b: int) -> int:
    """ceil(a / b) of non-negative integers, exactly."""
    return -(-a // b)


@dataclass(frozen=True)
class DelayConstants:
    """Von-Neumann ASIC of FLOAT, Sec. 4.3 (after its refs [1, 20]): 65 nm CMOS, 8-bit weights.

    b_io: memory IO bandwidth in bits per read; b_w: bits per stored weight; n_bank: memory banks;
    n_mult: multiply units; tau_read, tau_mult: one read and one multiply, in seconds.
    """

    b_io: int = 16
    b_w: int = 8
    n_bank: int = 4
    n_mult: int = 175
    tau_read: float = 9e-9
    tau_mult: float = 4e-9

    def reads(self, n: int) -> int:
        """Memory reads to fetch n weights: ceil(n / ((B_IO / B_W) N_bank)), 8 weights per read by default."""
        return _ceil_div(n * self.b_w, self.b_io * self.n_bank)

    def mult_rounds(self, n: int) -> int:
        """Passes of the multiplier array over n weights: ceil(n / N_mult)."""
        return _ceil_div(n, self.n_mult)


DEFAULT_CONSTANTS = DelayConstants()


@dataclass(frozen=True)
class ConvShape:
    """A k x k convolution (a linear layer is k = 1 with a 1 x 1 output) and its output map size."""

    c_in: int
    c_out: int
    k: int
    h_out: int
    w_out: int
    name: str = ""

    @property
    def weights(self) -> int:
        """Weights k^2 C_i C_o (no bias)."""
        return self.k * self.k * self.c_in * self.c_out

    @property
    def pixels(self) -> int:
        """Output positions H_o W_o."""
        return self.h_out * self.w_out

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass on one image: weights x output positions."""
        return self.weights * self.pixels


def conv_delay(layer: ConvShape, constants: DelayConstants = DEFAULT_CONSTANTS) -> float:
    """Delay of a plain conv in seconds: weight reads, then H_o W_o multiplier passes (FLOAT, Eq. 7)."""
    c = constants
    return c.reads(layer.weights) * c.tau_read + c.mult_rounds(layer.weights) * layer.pixels * c.tau_mult


def float_delay(layer: ConvShape, constants: DelayConstants = DEFAULT_CONSTANTS) -> float:
    """Delay of a FLOAT noisy conv (FLOAT, Eq. 8): one more multiplier pass adds the noise to the weights."""
    c = constants
    return (
        c.reads(layer.weights) * c.tau_read + c.mult_rounds(layer.weights) * (1 + layer.pixels) * c.tau_mult
    )


def oat_delay(layer: ConvShape, constants: DelayConstants = DEFAULT_CONSTANTS) -> float:
    """Delay of an OAT conv + FiLM (FLOAT, Eq. 9): the FiLM MLP 1 -> 2C_o -> 2C_o is read and evaluated too.

    The MLP holds 2C_o + 4C_o^2 weights (biases ignored, as in Eq. 9); they are read with the conv weights and
    multiplied once (a scalar lambda input, so no per-pixel work).
    """
    c = constants
    mlp = 2 * layer.c_out + 4 * layer.c_out**2
    return (
        c.reads(layer.weights + mlp) * c.tau_read
        + c.mult_rounds(layer.weights) * layer.pixels * c.tau_mult
        + c.mult_rounds(mlp) * c.tau_mult
    )


def resnet_layers(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    image_size: int = 32,
    shortcuts: bool = False,
    num_classes: Optional[int] = None,
    in_channels: int = 3,
) -> List[ConvShape]:
    """Layers of a CIFAR ResNet of basic blocks (ResNet-18: blocks (2, 2, 2, 2); ResNet-34: (3, 4, 6, 3)).

    The stem is a 3x3 conv in_channels -> widths[0] at full resolution; stage s > 0 halves the map in its
    first conv. shortcuts adds the 1x1 projection of every block whose stride or width changes (placed after
    the block's second conv); num_classes adds the linear classifier widths[-1] -> num_classes as a 1x1 layer.
    """
    layers = [ConvShape(in_channels, widths[0], 3, image_size, image_size, "stem")]
    c_prev = widths[0]
    for s, (n_blocks, width) in enumerate(zip(blocks, widths)):
        size = image_size // 2**s
        for b in range(n_blocks):
            c_in = c_prev if b == 0 else width
            prefix = f"stage{s + 1}.block{b + 1}"
            layers.append(ConvShape(c_in, width, 3, size, size, prefix + ".conv1"))
            layers.append(ConvShape(width, width, 3, size, size, prefix + ".conv2"))
            if shortcuts and b == 0 and (s > 0 or c_in != width):
                layers.append(ConvShape(c_in, width, 1, size, size, prefix + ".shortcut"))
        c_prev = width
    if num_classes is not None:
        layers.append(ConvShape(widths[-1], num_classes, 1, 1, 1, "fc"))
    return layers


def film_convs(
    blocks: Sequence[int] = RESNET34_BLOCKS, widths: Sequence[int] = RESNET_WIDTHS, image_size: int = 32
) -> List[ConvShape]:
    """The FiLM-conditioned 3x3 convs of an OAT ResNet: stem and both convs of every block, no shortcuts.

    ResNet-34 has 33 (FLOAT, Fig. 7c evaluates its delay model on them).
    """
    return resnet_layers(blocks, widths, image_size, shortcuts=False)


def delay_table(
    layers: Sequence[ConvShape], constants: DelayConstants = DEFAULT_CONSTANTS
) -> List[Dict[str, Any]]:
    """One row per layer: shape, the three delays (seconds) and their ratios (FLOAT, Eqs. 7-9 and Fig. 7c)."""
    rows = []
    for layer in layers:
        tau, tau_f, tau_o = (
            conv_delay(layer, constants),
            float_delay(layer, constants),
            oat_delay(layer, constants),
        )
        rows.append(
            {
                "name": layer.name,
                "c_in": layer.c_in,
                "c_out": layer.c_out,
                "k": layer.k,
                "h_out": layer.h_out,
                "w_out": layer.w_out,
                "tau": tau,
                "tau_float": tau_f,
                "tau_oat": tau_o,
                "float_over_base": tau_f / tau,
                "oat_over_base": tau_o / tau,
                "oat_over_float": tau_o / tau_f,
            }
        )
    return rows


def delay_summary(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Min, max, per-layer mean of each ratio of delay_table rows, and the layers giving the min and max."""
    summary = {}
    for key in RATIOS:
        values = [row[key] for row in rows]
        i_min = min(range(len(values)), key=values.__getitem__)
        i_max = max(range(len(values)), key=values.__getitem__)
        summary[key] = {
            "min": values[i_min],
            "max": values[i_max],
            "mean": sum(values) / len(values),
            "argmin": rows[i_min]["name"],
            "argmax": rows[i_max]["name"],
        }
    return summary


def _bn_channels(blocks: Sequence[int], widths: Sequence[int], shortcuts: bool) -> List[int]:
    """Channels of every BatchNorm of a CIFAR ResNet (one per conv; shortcut BNs only if shortcuts)."""
    return [layer.c_out for layer in resnet_layers(blocks, widths, shortcuts=shortcuts)]


def film_channels(
    blocks: Sequence[int] = RESNET34_BLOCKS, widths: Sequence[int] = RESNET_WIDTHS
) -> List[int]:
    """Channels C of every OAT FiLM: after the stem BN and both BNs of every block, not after shortcut BNs."""
    return _bn_channels(blocks, widths, shortcuts=False)


def resnet_macs(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    num_classes: int = 10,
    image_size: int = 32,
) -> int:
    """MACs of the convs (shortcuts included) and classifier of a CIFAR ResNet on one image (no BN, ReLU)."""
    return sum(layer.macs for layer in resnet_layers(blocks, widths, image_size, True, num_classes))


def noisy_weights(
    blocks: Sequence[int] = RESNET34_BLOCKS, widths: Sequence[int] = RESNET_WIDTHS, num_classes: int = 10
) -> int:
    """Weights given noise in FLOAT (Eq. 4): every conv (shortcuts included) and the classifier; no biases."""
    return sum(layer.weights for layer in resnet_layers(blocks, widths, 32, True, num_classes))


def resnet_params(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    num_classes: int = 10,
    bn_sets: int = 1,
) -> int:
    """Parameters of a plain CIFAR ResNet: bias-free convs, BN weight and bias per BN set, linear with bias.

    ResNet-34: 21,282,122; ResNet-18: 11,173,962. bn_sets = 2 counts a dual BN (clean and adversarial sets).
    """
    bn = 2 * sum(_bn_channels(blocks, widths, shortcuts=True))
    return noisy_weights(blocks, widths, num_classes) + num_classes + bn_sets * bn


def film_params(channels: int, d_e: int = 1) -> int:
    """Parameters of one OAT FiLM, an MLP d_e -> 2C -> 2C with biases: 2C d_e + 2C + 4C^2 + 2C.

    With a scalar lambda (d_e = 1): 4C^2 + 6C.
    """
    return 2 * channels * d_e + 2 * channels + 4 * channels**2 + 2 * channels


def film_macs(channels: int, d_e: int = 1, pixels: int = 0) -> int:
    """MACs of one FiLM on one image: its MLP (2C d_e + 4C^2) and the affine x mu + sigma on C x pixels."""
    return 2 * channels * d_e + 4 * channels**2 + channels * pixels


def oat_params(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    num_classes: int = 10,
    d_e: int = 1,
    dual_bn: bool = False,
) -> int:
    """Parameters of an OAT ResNet: the plain model and one FiLM per conditioned BN (FLOAT, Sec. 4.3: 31.4 M).

    ResNet-34: 31,403,978 (single BN), 31,421,002 (dual BN), 33,355,466 (dual BN, 128-d lambda encoding; the
    encoding matrix is fixed, not trained).
    """
    films = sum(film_params(c, d_e) for c in film_channels(blocks, widths))
    return resnet_params(blocks, widths, num_classes, bn_sets=2 if dual_bn else 1) + films


def oat_extra_macs(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    d_e: int = 1,
    image_size: int = 32,
    modulation: bool = True,
) -> int:
    """MACs OAT adds to one forward pass: every FiLM MLP, plus (if modulation) the per-activation affine.

    ResNet-34, d_e = 1: 10,091,392 MLP + 966,656 affine = 11,058,048 (SMART, Table 2 prints 15 M).
    """
    return sum(
        film_macs(layer.c_out, d_e, layer.pixels if modulation else 0)
        for layer in film_convs(blocks, widths, image_size)
    )


def float_params(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    num_classes: int = 10,
    dual_bn: bool = True,
) -> int:
    """Parameters of a FLOAT ResNet: the plain model, a second BN set, one noise scale alpha per noisy layer.

    Noisy layers are every conv (shortcuts included) and the classifier (FLOAT, Eq. 4). ResNet-34: 21,299,183.
    """
    alphas = len(resnet_layers(blocks, widths, 32, True, num_classes))
    return resnet_params(blocks, widths, num_classes, bn_sets=2 if dual_bn else 1) + alphas


def noise_additions_ratio(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    num_classes: int = 10,
    image_size: int = 32,
) -> float:
    """FLOAT's noise additions on the lambda > 0 path (one per noisy weight) over the model's MACs.

    ResNet-34: 21,265,088 / 1,159,402,496 = 1.834 %. FLOAT, Sec. 4.3 prints 1.182 % for ~21.28 M additions
    against ~1.165 GFLOPs, whose ratio is 1.83 %: the printed figure does not follow from its own operands.
    """
    return noisy_weights(blocks, widths, num_classes) / resnet_macs(blocks, widths, num_classes, image_size)


def smart_counts(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    num_classes: int = 10,
    sparse_stages: Sequence[int] = (2, 3),
    density: float = 0.5,
    shared: float = 0.25,
) -> Dict[str, float]:
    """Weights of a SMART ResNet: dense early stages, two frozen masks in the sparse stages (SMART, Sec. 4).

    sparse_stages are 0-based stage indices (ResNet-34 stages 3-4: (2, 3)); each mask has density d, and the
    two share a fraction d_s of each tensor. Noise is added only on the adversarial mask's support (SMART,
    Eq. 4), so noise additions equal the per-path non-zeros. Counts cover the masked tensors (conv weights,
    shortcuts included, and the classifier weight, which stays dense) and are normalised against the dense
    model's weights. ResNet-34: 11,303,616 per path (0.53; SMART, Table 2: 0.54 and 11.4 M additions), union
    0.77 (d_s = 0.25) or 1.0 (d_s = 0, complementary masks). Counts are integers, *_fraction entries floats.
    """
    sparse_names = tuple(f"stage{s + 1}." for s in sparse_stages)
    dense = sparse = 0
    for layer in resnet_layers(blocks, widths, 32, True, num_classes):
        if layer.name.startswith(sparse_names):
            sparse += layer.weights
        else:
            dense += layer.weights
    total = dense + sparse
    per_path = dense + round(density * sparse)
    union = dense + round((2 * density - shared) * sparse)
    return {
        "dense_weights": total,
        "always_dense": dense,
        "sparse_stage_weights": sparse,
        "per_path": per_path,
        "noise_additions": per_path,
        "union": union,
        "per_path_fraction": per_path / total,
        "union_fraction": union / total,
    }


def comparison_table(
    blocks: Sequence[int] = RESNET34_BLOCKS,
    widths: Sequence[int] = RESNET_WIDTHS,
    num_classes: int = 10,
    oat_d_e: int = 1,
    oat_dual_bn: bool = False,
) -> List[Dict[str, Any]]:
    """PGD-AT, OAT, FLOAT and SMART on one ResNet at lambda = 1: our counts beside SMART, Table 2's.

    per_path_params: parameters one forward pass uses (one BN set; OAT with its FiLMs; FLOAT with its alphas;
    SMART with one mask's non-zeros, BN, classifier bias and alphas); normalised_params divides it by the
    plain model's parameters. stored_params: what is stored (dual BN for FLOAT and SMART, and for SMART the
    union of both masks).
    extra_macs / extra_adds: operations added to a plain forward pass (OAT: FiLM MLPs and affines, 11.06 M
    for ResNet-34 against the printed 15 M). paper_*: SMART_TABLE2 (ResNet-34 figures, whatever the blocks).
    """
    plain = resnet_params(blocks, widths, num_classes)
    weights = noisy_weights(blocks, widths, num_classes)
    alphas = len(resnet_layers(blocks, widths, 32, True, num_classes))
    bn_set = plain - weights - num_classes  # one BN set
    smart = smart_counts(blocks, widths, num_classes)
    smart_per_path = smart["per_path"] + (plain - weights) + alphas
    smart_stored = smart["union"] + (plain - weights) + bn_set + alphas
    ours = {  # method: (per-path parameters, stored parameters, extra MACs, extra ADDs)
        "PGD-AT": (plain, plain, 0, 0),
        "OAT": (
            oat_params(blocks, widths, num_classes, oat_d_e, dual_bn=False),
            oat_params(blocks, widths, num_classes, oat_d_e, dual_bn=oat_dual_bn),
            oat_extra_macs(blocks, widths, oat_d_e),
            0,
        ),
        "FLOAT": (plain + alphas, float_params(blocks, widths, num_classes), 0, weights),
        "SMART": (smart_per_path, smart_stored, 0, smart["noise_additions"]),
    }
    rows = []
    for method, (per_path, stored, macs, adds) in ours.items():
        paper_norm, paper_macs, paper_adds = SMART_TABLE2[method]
        rows.append(
            {
                "method": method,
                "per_path_params": per_path,
                "normalised_params": per_path / plain,
                "stored_params": stored,
                "extra_macs": macs,
                "extra_adds": adds,
                "paper_normalised_params": paper_norm,
                "paper_extra_macs": paper_macs,
                "paper_extra_adds": paper_adds,
            }
        )
    return rows
