"""The FLOAT and SMART papers' reported numbers (CIFAR-10, ResNet-34), as data frames labelled as the papers'.

The book prints these beside our measured numbers; nothing here is produced by gearlib. Accuracies in %.
"""

from __future__ import annotations

from typing import Any

# FLOAT, Table 1: (CA at lambda 0, RA at lambda 0, CA at lambda 1, RA at lambda 1, compression, CR of FLOPs).
_FLOAT_TABLE1 = {
    "float": (94.83, 22.52, 89.10, 56.71, 1.0, 1.0),
    "floats-i": (94.12, 18.70, 88.60, 55.92, 10.0, 1.0),
    "floats-c": (93.84, 17.20, 86.87, 53.20, 2.94, 1.54),
    "floats-slim": (94.26, 19.10, 88.90, 55.44, 4.76, 2.0),
}
# SMART, Table 1: (sparse stages, d_s, CA / RA at lambda 0, CA / RA at lambda 1).
_SMART_TABLE1 = [
    ("S S S S", 0.0, 95.20, 1.18, 43.20, 9.68),
    ("D D S S", 0.0, 95.22, 16.18, 84.60, 51.56),
    ("D D S S", 0.25, 95.26, 19.26, 89.04, 57.84),
]
# SMART, Table 2: CA / RA at lambda 0 and at lambda 1 of each method.
_SMART_TABLE2 = {
    "pgd-at": (94.81, 0.84, 87.43, 55.72),
    "oat": (92.82, 21.72, 88.15, 53.67),
    "float": (95.22, 21.97, 89.01, 56.31),
    "smart": (95.26, 19.36, 89.04, 57.84),
}
ENDPOINTS = ["CA λ=0 (%)", "RA λ=0 (%)", "CA λ=1 (%)", "RA λ=1 (%)"]


def float_table1() -> Any:
    """FLOAT's Table 1: FLOAT and its FLOATS variants at both ends of the knob (ResNet-34, CIFAR-10)."""
    import pandas as pd

    frame = pd.DataFrame.from_dict(
        _FLOAT_TABLE1, orient="index", columns=[*ENDPOINTS, "compression (x)", "FLOPs reduction (x)"]
    )
    frame.index.name = "method"
    return frame


def smart_table1() -> Any:
    """SMART's Table 1: which ResNet stages are sparse and the masks' shared fraction d_s."""
    import pandas as pd

    return pd.DataFrame(_SMART_TABLE1, columns=["stages", "d_s", *ENDPOINTS])


def smart_table2() -> Any:
    """SMART's Table 2 (accuracy rows): PGD-AT (one model per lambda), OAT, FLOAT and SMART."""
    import pandas as pd

    frame = pd.DataFrame.from_dict(_SMART_TABLE2, orient="index", columns=ENDPOINTS)
    frame.index.name = "method"
    return frame
