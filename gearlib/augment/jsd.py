"""Jensen-Shannon consistency loss over J views (AugMix paper): L = CE(clean) + JSD_LAMBDA * JSD.

`task_loss` is what the trainer calls on the logits of one forward pass over the J*B concatenated views.
"""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
import torch.nn.functional as F

from gearlib.augment.defaults import JSD_LAMBDA

LogitViews = Union[torch.Tensor, Sequence[torch.Tensor]]


def split_views(logits_views: LogitViews, batch_size: int) -> List[torch.Tensor]:
    """Logits as a list of J [B,K] tensors, from a list or from one [J*B,K] tensor (clean rows first)."""
    if isinstance(logits_views, torch.Tensor):
        rows = logits_views.shape[0]
        if batch_size <= 0 or rows % batch_size:
            raise ValueError(
                f"logits have {rows} rows, not a multiple of the {batch_size} labels; pass J*B rows, clean first"
            )
        return list(logits_views.split(batch_size, dim=0))
    views = list(logits_views)
    if not views or any(v.shape[0] != batch_size for v in views):
        raise ValueError(
            f"every view must have {batch_size} rows (one per label), got {[v.shape[0] for v in views]}"
        )
    return views


def jsd_divergence(logits_views: Sequence[torch.Tensor]) -> torch.Tensor:
    """Jensen-Shannon divergence (1/J) sum_j KL(p_j || M) with M = clamp(mean_j p_j, 1e-7, 1), batch mean.

    Args:
        logits_views: J tensors [B,K] of logits, one per view.
    Returns:
        scalar tensor (0 when all views agree).
    """
    log_probs = [F.log_softmax(v.float(), dim=1) for v in logits_views]
    log_mixture = torch.stack(log_probs).exp().mean(dim=0).clamp(1e-7, 1.0).log()
    # KL from log-probabilities (log_target): with probabilities as the target, a class whose softmax
    # underflows to 0 (logits ~100 apart, e.g. a thin network in eval mode) gets gradient log(0) * 0 = NaN.
    kls = [F.kl_div(log_mixture, lp, reduction="batchmean", log_target=True) for lp in log_probs]
    return torch.stack(kls).mean()


def jsd_loss(logits_views: LogitViews, labels: torch.Tensor, weight: float = JSD_LAMBDA) -> torch.Tensor:
    """L_aug = CE(f(x_clean), y) + lambda * JSD(p_1, ..., p_J); with J = 1 it is plain cross-entropy.

    Args:
        logits_views: list of J [B,K] logit tensors, or one [J*B,K] tensor; the clean view first.
        labels: int64 [B] class labels y.
        weight: lambda (JSD_LAMBDA = 12 in AugMix and GEARnn).
    Returns:
        scalar loss tensor.
    """
    views = split_views(logits_views, labels.shape[0])
    ce = F.cross_entropy(views[0], labels)
    if len(views) == 1:
        return ce
    return ce + weight * jsd_divergence(views)


def task_loss(logits: torch.Tensor, y: torch.Tensor, weight: float = JSD_LAMBDA) -> torch.Tensor:
    """Training loss for a batch source: CE if logits has len(y) rows, else CE(clean) + weight * JSD.

    Args:
        logits: [J*B,K] logits of J concatenated views (clean first); J = rows / len(y).
        y: int64 [B] labels.
        weight: lambda for the JSD term.
    Returns:
        scalar loss tensor.
    """
    if logits.shape[0] == y.shape[0]:
        return F.cross_entropy(logits, y)
    return jsd_loss(logits, y, weight)
