"""The GroupNL paper's CIFAR-10 result tables as data (its Table 3: size, FLOPs and accuracy; Table 5: CIFAR-10-C
accuracy per corruption category), with the rows whose printed mean does not match their own columns flagged.
"""

from __future__ import annotations

from typing import Dict, Tuple

import pandas as pd

__all__ = ["PAPER_LAYERS", "PAPER_TABLE3", "PAPER_TABLE5", "MACC_TOLERANCE", "paper_table3", "paper_table5"]

# The paper's column names, keyed by gearlib's method names.
PAPER_LAYERS: Dict[str, str] = {
    "vanilla": "Vanilla CNN",
    "monocnn": "MonoCNN",
    "ghost": "GhostNet",
    "sinefm": "SineFM",
    "groupnl": "GroupNL",
}
# GroupNL paper, Table 3 (CIFAR-10): (parameters in M, FLOPs in M, top-1 %) per backbone and method.
PAPER_TABLE3: Dict[str, Dict[str, Tuple[float, float, float]]] = {
    "vgg11": {
        "vanilla": (9.23, 152.92, 91.89), "monocnn": (0.66, 162.18, 88.84), "ghost": (4.64, 77.22, 92.65),
        "sinefm": (4.64, 77.68, 91.27), "groupnl": (4.62, 76.62, 91.62),
    },
    "resnet18": {
        "vanilla": (11.17, 556.04, 95.04), "monocnn": (2.58, 565.51, 92.05), "ghost": (5.61, 281.13, 93.36),
        "sinefm": (5.57, 280.81, 94.36), "groupnl": (5.60, 279.49, 95.12),
    },
    "resnet34": {
        "vanilla": (21.28, 1160.43, 95.24), "monocnn": (3.66, 1180.05, 92.26), "ghost": (10.68, 584.97, 93.90),
        "sinefm": (10.65, 586.28, 94.77), "groupnl": (10.65, 582.09, 95.45),
    },
    "resnet101": {
        "vanilla": (42.51, 2515.09, 95.48), "monocnn": (16.33, 2544.66, 94.97), "ghost": (30.51, 1838.52, 95.04),
        "sinefm": (29.48, 1796.49, 95.06), "groupnl": (18.46, 1158.68, 95.51),
    },
}  # fmt: skip
# GroupNL paper, Table 5 (CIFAR-10-C): accuracy (%) on the Noise, Blur, Weather and Digital corruptions and
# the printed mAcc, per backbone and method.
PAPER_TABLE5: Dict[str, Dict[str, Tuple[float, float, float, float, float]]] = {
    "resnet18": {
        "vanilla": (52.60, 72.78, 84.55, 80.70, 72.58), "monocnn": (56.36, 63.24, 77.79, 75.17, 68.14),
        "ghost": (59.26, 72.57, 82.99, 79.95, 73.69), "sinefm": (53.77, 68.60, 84.63, 80.94, 71.99),
        "groupnl": (57.55, 72.96, 85.25, 80.68, 74.11),
    },
    "resnet34": {
        "vanilla": (53.72, 71.70, 85.08, 82.27, 73.19), "monocnn": (57.16, 63.50, 78.78, 75.81, 68.81),
        "ghost": (60.30, 74.57, 84.10, 80.71, 74.92), "sinefm": (59.20, 71.72, 86.11, 81.83, 74.72),
        "groupnl": (59.84, 73.64, 86.01, 81.26, 75.19),
    },
    "resnet101": {
        "vanilla": (53.97, 73.05, 86.02, 81.90, 74.78), "monocnn": (49.03, 74.36, 86.60, 82.00, 74.26),
        "ghost": (55.03, 74.00, 86.13, 82.45, 74.40), "sinefm": (58.33, 72.08, 85.08, 81.44, 74.23),
        "groupnl": (57.90, 71.22, 86.45, 81.17, 75.04),
    },
    "vgg11": {
        "vanilla": (65.37, 75.45, 82.06, 80.48, 75.84), "monocnn": (42.74, 68.73, 78.08, 76.58, 66.53),
        "ghost": (52.91, 70.28, 80.05, 78.65, 70.47), "sinefm": (62.31, 72.46, 82.46, 82.61, 74.96),
        "groupnl": (64.10, 77.24, 83.46, 83.87, 77.17),
    },
}  # fmt: skip
CATEGORIES = ("Noise", "Blur", "Weather", "Digital")
# A printed mAcc further than this from the mean of its four columns is flagged (the columns have 2 decimals).
MACC_TOLERANCE = 0.05


def paper_table3() -> pd.DataFrame:
    """GroupNL's Table 3 (the paper's numbers, CIFAR-10): one row per backbone and method."""
    rows = [
        {"backbone": arch, "method": method, "params (M)": p, "FLOPs (M)": f, "top-1 (%)": acc}
        for arch, table in PAPER_TABLE3.items()
        for method, (p, f, acc) in table.items()
    ]
    return pd.DataFrame(rows).set_index(["backbone", "method"])


def paper_table5() -> pd.DataFrame:
    """GroupNL's Table 5 (the paper's numbers, CIFAR-10-C), with the mean of the four category columns beside
    the printed mAcc and a flag where they differ by more than MACC_TOLERANCE (4 of the 20 rows)."""
    rows = []
    for arch, table in PAPER_TABLE5.items():
        for method, values in table.items():
            *categories, printed = values
            mean = sum(categories) / len(categories)
            row = {"backbone": arch, "method": method, **dict(zip(CATEGORIES, categories))}
            row.update({"mAcc printed": printed, "mean of columns": round(mean, 2)})
            row["mismatch"] = abs(mean - printed) > MACC_TOLERANCE
            rows.append(row)
    return pd.DataFrame(rows).set_index(["backbone", "method"])
