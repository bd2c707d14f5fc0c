"""Training past one device: process-group setup, rank helpers, all-reduces and shard seeds for DDP runs.
Every helper is a no-op in a single process, so the one training loop serves both (book/notes/training.md)."""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn

# Seconds a collective may wait for a peer before the process group gives up (a dead rank fails the launch
# instead of hanging it); $GEARLIB_DIST_TIMEOUT overrides.
DEFAULT_TIMEOUT_S = 300
# Rank r augments from seed + (r + 1) * RANK_SEED_STRIDE (a Mersenne prime far above every per-step offset
# of gearlib.train.plan_run); the shuffle keeps the seed itself, so no two streams of a run coincide.
RANK_SEED_STRIDE = 2**31 - 1


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """Number of processes training together (1 in a single process)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes the run store and prints results (rank 0)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK for a CUDA run launched with several processes."""
    if device.type == "cuda" and launched() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(device: torch.device, timeout_s: Optional[float] = None) -> bool:
    """Join the process group torchrun describes (gloo on the CPU, NCCL on GPUs); False if not launched."""
    if not launched() or dist.is_initialized():
        return False
    timeout_s = float(os.environ.get("GEARLIB_DIST_TIMEOUT", timeout_s or DEFAULT_TIMEOUT_S))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_device(device))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def teardown() -> None:
    """Leave the process group (if one is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_seed(seed: int, rank_: Optional[int] = None) -> int:
    """Seed of rank `rank_`'s augmentation stream, derived from a run's stream seed and the rank."""
    r = rank() if rank_ is None else rank_
    return int(seed) + (r + 1) * RANK_SEED_STRIDE


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place and return it (unchanged in a single process)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_over_ranks(tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """The sums over ranks of same-dtype tensors, by one flat all-reduce (the tensors as given in a single
    process)."""
    if not active() or not tensors:
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    out, offset = [], 0
    for t in tensors:
        out.append(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def average_gradients(params: Sequence[torch.Tensor]) -> None:
    """Replace every .grad by its mean over ranks, as a DDP step does (Li et al., PyTorch Distributed,
    VLDB 2020); parameters without a gradient are left alone."""
    grads = [p.grad for p in params if p.grad is not None]
    if not active() or not grads:
        return
    for grad, total in zip(grads, sum_over_ranks(grads)):
        grad.copy_(total / world_size())


def broadcast_state(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (BatchNorm running statistics) to every rank."""
    if not active():
        return
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)


def wrap(model: nn.Module) -> nn.Module:
    """`model` in DistributedDataParallel when several ranks train (rebuild it after every growth step)."""
    if not active():
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def checksum(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of a model's state dict in key order: equal iff the weights are equal."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def gather(obj: Any) -> List[Any]:
    """Every rank's `obj` in rank order ([obj] in a single process)."""
    if not active():
        return [obj]
    out: List[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def per_rank(obj: Any) -> Any:
    """What a checkpoint keeps of per-rank state: the list of every rank's `obj`, or `obj` in one process."""
    return gather(obj) if active() else obj


def own(stored: Any) -> Any:
    """This rank's entry of what `per_rank` stored (`stored` itself when it is not a list)."""
    return stored[rank()] if isinstance(stored, list) else stored


def rank_states(model: nn.Module, widths: Sequence[int]) -> Dict[str, Any]:
    """Widths and weight checksum of every rank; ValueError if the ranks hold different networks."""
    states = gather({"rank": rank(), "widths": list(widths), "checksum": checksum(model)})
    if any(s["widths"] != states[0]["widths"] or s["checksum"] != states[0]["checksum"] for s in states):
        raise RuntimeError(f"the ranks hold different networks: {states}")
    return {"world_size": len(states), "ranks": states}
