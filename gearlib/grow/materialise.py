"""Materialisation (book/notes/growth.md#notes-growth-materialise): turn a trained candidate network and a selection into the grown network.

New channel order per unit: [existing c | copies of the selected splits S | selected new neurons N].
"""

from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

import torch
from torch import nn

from gearlib.grow.candidate import DW_NEW_INITS, Candidate, CandidateUnit
from gearlib.models import build
from gearlib.models.common import GrowableNet


class UnitSelection(NamedTuple):
    """Selected candidates of one unit: indices of split neurons (S_l) and of new neurons (N_l)."""

    split: List[int]
    new: List[int]


Selection = Mapping[str, UnitSelection]


def grown_widths(candidate: Candidate, selection: Selection) -> List[int]:
    """Width list after growth: c'_l = c_l + s_l + n_l (units that did not grow keep c_l)."""
    out = []
    for unit in candidate.graph.growable:
        sel = selection.get(unit.name)
        out.append(unit.width + (len(sel.split) + len(sel.new) if sel is not None else 0))
    return out


def _index(idx: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(list(idx), dtype=torch.long, device=device)


def _rows(
    W: torch.Tensor, V: torch.Tensor, A: torch.Tensor, sel: UnitSelection, unit: CandidateUnit
) -> torch.Tensor:
    """Output rows [W + V (split) or W | W - V for copies | A for new] of a layer writing a grown unit."""
    S, N = _index(sel.split, W.device), _index(sel.new, W.device)
    split_on = torch.zeros(unit.width, device=W.device, dtype=W.dtype)
    split_on[S] = 1.0
    on = split_on.view((-1,) + (1,) * (W.dim() - 1))
    return torch.cat([W + on * V, (W - V)[S], A[N]])


def _columns(rows_old: torch.Tensor, rows_new: Optional[torch.Tensor], sel: UnitSelection) -> torch.Tensor:
    """Input columns [existing (halved if split) | copies (halved) | new] for a layer reading a grown unit."""
    S, N = _index(sel.split, rows_old.device), _index(sel.new, rows_old.device)
    half = torch.ones(rows_old.shape[1], device=rows_old.device, dtype=rows_old.dtype)
    half[S] = 0.5
    scale = half.view((1, -1) + (1,) * (rows_old.dim() - 2))
    parts = [rows_old * scale, rows_old[:, S] * 0.5]
    if rows_new is not None:
        parts.append(rows_new[:, N])
    return torch.cat(parts, 1)


def _weight(
    module: nn.Module, layer_src: Optional[UnitSelection], layer_dst: Optional[UnitSelection]
) -> Dict:
    """Materialised weight (and bias) of one dense conv / linear layer of the candidate network."""
    base = module.layer if hasattr(module, "layer") else module
    W, bias = base.weight.detach(), base.bias
    dst, src = getattr(module, "dst", None), getattr(module, "src", None)
    rows_old, rows_new = W, getattr(module, "B", None)
    if rows_new is not None:
        rows_new = rows_new.detach()
    if dst is not None:
        rows_old = _rows(W, module.V.detach(), module.A.detach(), layer_dst, dst)
        if rows_new is not None:
            c, S, N = dst.width, _index(layer_dst.split, W.device), _index(layer_dst.new, W.device)
            rows_new = torch.cat([rows_new[:c], rows_new[:c][S], rows_new[c:][N]])
        if bias is not None:
            bias = torch.cat(
                [bias, bias[_index(layer_dst.split, W.device)], bias.new_zeros(len(layer_dst.new))]
            )
    weight = _columns(rows_old, rows_new, layer_src) if src is not None else rows_old
    out = {"weight": weight}
    if bias is not None:
        out["bias"] = bias.detach()
    return out


def _depthwise(module: nn.Module, sel: Optional[UnitSelection], dw_new_init: str) -> Dict:
    """Depthwise filters [parents | parents of copies | new filters (trained D, or zero)]."""
    if sel is None or not hasattr(module, "D"):
        return {"weight": module.weight.detach()}
    W = module.layer.weight.detach()
    D = module.D.detach()[_index(sel.new, W.device)]
    if dw_new_init == "official_zero":
        D = torch.zeros_like(D)
    return {"weight": torch.cat([W, W[_index(sel.split, W.device)], D])}


def _batchnorm(bn: nn.BatchNorm2d, sel: Optional[UnitSelection]) -> Dict:
    """BN entries: copies duplicate their parent; new channels get (weight 1, bias 0, mean 0, var 1)."""
    state = {k: v.detach() for k, v in bn.state_dict().items()}
    if sel is None:
        return state
    S, n = _index(sel.split, bn.weight.device), len(sel.new)
    fill = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
    for key, value in fill.items():
        t = state[key]
        state[key] = torch.cat([t, t[S], t.new_full((n,), value)])
    return state


def materialise(candidate: Candidate, selection: Selection, *, dw_new_init: str = "trained") -> GrowableNet:
    """Build the grown network f_G from a trained candidate network and the selected candidates.

    Args:
        candidate: the candidate network after perturbation training.
        selection: unit name -> UnitSelection(split indices S_l, new indices N_l); units not listed do not grow.
        dw_new_init: "trained" keeps the new depthwise filters D learnt during growth (the grown network
            then equals the candidate network with unselected candidates switched off); "official_zero"
            zeroes them as the Firefly code does (book/notes/growth.md#notes-growth-mobilenet).

    Returns:
        A fresh model of the candidate's architecture at the grown widths, in train mode, on the same device.
    """
    if dw_new_init not in DW_NEW_INITS:
        raise ValueError(f"dw_new_init must be one of {DW_NEW_INITS}, got {dw_new_init!r}")
    unknown = set(selection) - set(candidate.units)
    if unknown:
        raise ValueError(f"selection names units that do not grow in this candidate: {sorted(unknown)}")
    widths = grown_widths(candidate, selection)
    sel = {name: selection.get(name, UnitSelection([], [])) for name in candidate.units}
    device = next(candidate.parameters()).device
    grown = build(candidate.arch, widths, candidate.num_classes, candidate.input_size).to(device)
    state: Dict[str, torch.Tensor] = {}
    for layer, module in candidate.wrapped_layers():
        if layer.kind == "depthwise":
            tensors = _depthwise(module, sel.get(layer.src), dw_new_init)
        else:
            tensors = _weight(module, sel.get(layer.src), sel.get(layer.dst))
        state.update({f"{layer.module}.{k}": v for k, v in tensors.items()})
        if layer.bn is not None:
            bn = candidate.net.get_submodule(layer.bn)
            bn = getattr(bn, "bn", bn)  # unwrap FoldedBN
            tensors = _batchnorm(bn, sel.get(layer.dst))
            state.update({f"{layer.bn}.{k}": v for k, v in tensors.items()})
    missing = set(grown.state_dict()) - set(state)
    if missing:  # every weight of the model must come from the graph
        raise RuntimeError(f"growth graph of {candidate.arch} misses {sorted(missing)}")
    grown.load_state_dict(state)
    return grown.train()
