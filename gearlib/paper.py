"""The GEARnn paper's reported numbers (Tables 2-11), as data frames labelled as the paper's.

The book prints these beside our measured numbers; nothing here is produced by gearlib.
Units: accuracies in %, size in % of the full model, T in minutes, E in kJ. Quadro = RTX 6000, Jetson = Xavier NX.
"""

from __future__ import annotations

from typing import Any

SOURCE = "GEARnn paper"

_METHODS = ["small-clean", "small-augmix", "gearnn1", "gearnn2"]
# Table 2 (Quadro): (size, C-acc, R-acc, T, E) per (arch, dataset, method).
_TABLE2 = {
    "mobilenet_v1": {
        "cifar10": [(8, 92.28, 66.31, 42, 192), (8, 92.90, 83.21, 211, 1130), (7, 90.64, 80.71, 88, 379), (8, 91.35, 81.96, 56, 270)],
        "cifar100": [(8, 67.66, 39.04, 45, 274), (8, 68.88, 54.95, 212, 1330), (8, 65.07, 51.46, 93, 651), (8, 67.95, 53.28, 72, 432)],
        "tinyimagenet": [(8, 55.13, 18.48, 262, 2030), (8, 56.46, 28.17, 765, 7200), (8, 54.57, 27.46, 506, 4410), (8, 56.16, 28.56, 429, 3565)],
    },
    "vgg19": {
        "cifar10": [(5, 92.69, 70.57, 31, 241), (5, 93.08, 85.73, 215, 1140), (5, 91.25, 82.86, 86, 552), (5, 92.18, 83.77, 53, 298)],
        "cifar100": [(9, 68.07, 41.24, 38, 335), (9, 70.01, 56.94, 219, 927), (9, 65.73, 52.68, 111, 779), (9, 68.44, 54.31, 65, 566)],
        "tinyimagenet": [(9, 53.9, 17.78, 218, 2040), (9, 55.51, 30.01, 668, 7120), (9, 54.38, 28.56, 428, 4220), (9, 56.19, 29.79, 357, 3219)],
    },
    "resnet18": {
        "cifar10": [(6, 93.34, 68.85, 61, 546), (6, 94.18, 86.50, 217, 1730), (6, 92.36, 83.86, 108, 747), (6, 93.14, 84.45, 77, 567)],
        "cifar100": [(7, 68.74, 40.83, 67, 490), (7, 71.97, 57.30, 219, 1250), (8, 69.15, 55.62, 142, 1020), (7, 70.94, 56.54, 97, 905)],
        "tinyimagenet": [(7, 54.72, 18.11, 381, 3390), (7, 54.50, 25.74, 1103, 12400), (7, 53.17, 24.93, 898, 9100), (7, 54.79, 26.64, 649, 7270)],
    },
}  # fmt: skip
# Table 3 (Jetson): (C-acc, R-acc, size, latency ms, T, E).
_TABLE3 = {
    "mobilenet_v1": {
        "cifar10": [(91.88, 68.35, 7, 0.9, 675, 175), (92.58, 83.84, 7, 0.9, 1216, 511), (90.20, 79.65, 7, 0.9, 560, 238), (91.43, 81.64, 7, 0.9, 553, 162)],
        "cifar100": [(68.59, 39.47, 8, 0.9, 744, 166), (69.24, 54.84, 8, 0.9, 1333, 586), (65.48, 50.46, 8, 1.0, 704, 226), (67.42, 52.39, 8, 0.9, 690, 216)],
    },
    "vgg19": {
        "cifar10": [(92.97, 71.08, 5, 1.0, 533, 128), (93.36, 85.73, 5, 1.0, 1543, 522), (90.94, 82.25, 5, 1.2, 652, 207), (92.07, 83.45, 5, 1.0, 596, 155)],
        "cifar100": [(67.92, 40.49, 9, 1.4, 714, 187), (70.07, 56.68, 9, 1.4, 2016, 678), (62.89, 49.63, 9, 1.5, 936, 281), (67.59, 53.64, 9, 1.4, 884, 328)],
    },
}  # fmt: skip


def table2(arch: str = "vgg19", dataset: str = "cifar10") -> Any:
    """Table 2 (Quadro RTX 6000) for one architecture and dataset, as the paper reports it."""
    import pandas as pd

    rows = _TABLE2[arch][dataset]
    frame = pd.DataFrame(
        rows, columns=["size (%)", "C-acc (%)", "R-acc (%)", "T (min)", "E (kJ)"], index=_METHODS
    )
    frame.index.name = "method"
    return frame


def table3(arch: str = "vgg19", dataset: str = "cifar10") -> Any:
    """Table 3 (Jetson Xavier NX) for one architecture and dataset."""
    import pandas as pd

    cols = ["C-acc (%)", "R-acc (%)", "size (%)", "latency (ms)", "T (min)", "E (kJ)"]
    frame = pd.DataFrame(_TABLE3[arch][dataset], columns=cols, index=_METHODS)
    frame.index.name = "method"
    return frame


def table4() -> Any:
    """Table 4 (Jetson, VGG-19, CIFAR-10, 1.4% -> 5%): N-shot growth for GEARnn-1 and GEARnn-2."""
    import pandas as pd

    rows = [
        (1, 90.94, 82.25, 652, 207, 92.07, 83.45, 596, 155),
        (2, 90.01, 81.92, 640, 191, 91.94, 83.34, 593, 157),
        (3, 89.73, 80.86, 653, 194, 91.79, 83.05, 624, 177),
        (4, 89.90, 81.08, 845, 223, 91.65, 82.75, 645, 173),
    ]
    cols = ["steps", "G1 C-acc", "G1 R-acc", "G1 T", "G1 E", "G2 C-acc", "G2 R-acc", "G2 T", "G2 E"]
    return pd.DataFrame(rows, columns=cols).set_index("steps")


def table5() -> Any:
    """Table 5 (Quadro, VGG-19, CIFAR-10): PRIME transforms instead of AugMix's."""
    import pandas as pd

    rows = {
        "small-clean": (92.69, 70.57, 31, 241),
        "small-prime": (91.30, 87.01, 829, 2550),
        "gearnn1-prime": (88.37, 83.18, 458, 1410),
        "gearnn2-prime": (90.26, 84.45, 234, 856),
    }
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=["C-acc (%)", "R-acc (%)", "T (min)", "E (kJ)"]
    )
    frame.index.name = "method"
    return frame


def table6() -> Any:
    """Table 6 (Quadro, VGG-19, CIFAR-10): cost per stage. OSG-2 includes the growth step."""
    import pandas as pd

    rows = [
        ("gearnn1", "osg1", 38, 180),
        ("gearnn1", "osg2", 48, 372),
        ("gearnn2", "osg1", 5, 26),
        ("gearnn2", "osg2", 10, 71),
        ("gearnn2", "era", 38, 201),
    ]
    return pd.DataFrame(rows, columns=["method", "stage", "T (min)", "E (kJ)"])


def table7() -> Any:
    """Table 7 (Quadro, VGG-19, CIFAR-100): phase ablation, R-acc / T / E.

    The paper's check-mark columns were lost in our copy; the 53.74 row is most likely vanilla -> AugMix.
    """
    import pandas as pd

    rows = {
        "phase1-vanilla": (38.72, 18, 161),
        "osg-clean": (38.01, 16, 118),
        "phase2-augmix": (46.50, 62, 385),
        "phase2-era": (46.13, 46, 406),
        "vanilla-augmix": (53.74, 79, 534),
        "gearnn2": (54.31, 64, 515),
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["R-acc (%)", "T (min)", "E (kJ)"])
    frame.index.name = "method"
    return frame


def table8() -> Any:
    """Table 8: augmentation diagnosis over chain width w, depth d and JSD views J (R-acc %, T min)."""
    import pandas as pd

    rows = [
        ("basic", 1, 1, 0, 77.74, 10),
        ("+width", 3, 1, 0, 78.51, 16),
        ("+depth", 1, 3, 0, 80.31, 12),
        ("+JSD-3", 1, 1, 3, 82.43, 20),
        ("+width+depth", 3, 3, 0, 80.47, 21),
        ("+width+JSD-3", 3, 1, 3, 82.27, 32),
        ("+depth+JSD-3", 1, 3, 3, 83.67, 22),
        ("+depth+JSD-2", 1, 3, 2, 82.41, 13),
        ("+depth+JSD-4 (ERA)", 1, 3, 4, 84.10, 29),
        ("AugMix", 3, -1, 3, 84.05, 41),
    ]
    return pd.DataFrame(rows, columns=["variant", "w", "d", "J", "R-acc (%)", "T (min)"]).set_index("variant")


def table10() -> Any:
    """Table 10 (Jetson, VGG-19, CIFAR-10, clean growth, 80 epochs): C-acc / T / E."""
    import pandas as pd

    rows = {"small-clean": (91.96, 267, 73), "osg-clean": (90.80, 210, 51), "osg-clean-n2": (90.49, 209, 53),
            "osg-clean-n3": (90.31, 231, 59), "osg-clean-n4": (90.08, 275, 65)}  # fmt: skip
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["C-acc (%)", "T (min)", "E (kJ)"])
    frame.index.name = "method"
    return frame


def table11() -> Any:
    """Table 11 (Quadro, VGG-19): N-shot growth on augmented data (GEARnn-1 style), R-acc / T / E."""
    import pandas as pd

    rows = [
        (1, 82.86, 75, 449, 52.68, 84, 426),
        (2, 82.31, 81, 329, 51.34, 100, 554),
        (3, 81.94, 82, 506, 50.52, 103, 517),
        (4, 81.81, 86, 389, 50.45, 102, 590),
    ]
    cols = ["steps", "C10 R-acc", "C10 T", "C10 E", "C100 R-acc", "C100 T", "C100 E"]
    return pd.DataFrame(rows, columns=cols).set_index("steps")
