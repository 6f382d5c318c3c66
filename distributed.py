"""Helpers for torchrun / DistributedDataParallel that do nothing in a single process."""
import os

import torch
import torch.distributed as dist


def setup(device_arg):
    """Join the process group when started by torchrun; returns (rank, world_size, device)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = pick_device(device_arg, local_rank if world > 1 else None)
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device
                                if device.type == "cuda" else None)
    return rank(), world, device


def pick_device(name, local_rank=None):
    """auto: CUDA, then MPS, then CPU. Under torchrun each process takes the GPU of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device torch knows; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if local_rank is not None:
            device = torch.device("cuda", local_rank)
        elif device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: MPS is not available on this machine; use --device cpu")
    return device


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def is_main():
    return rank() == 0


def world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier():
    if dist.is_initialized():
        dist.barrier()


def broadcast(value, device):
    """rank 0's float value on every rank (a host sync: call it only where the loop syncs anyway)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value if is_main() else 0.0], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.item()


def any_rank(flag, device):
    """True on every rank when flag is true on some rank."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def cleanup():
    """Leave the process group; the barrier first avoids gloo aborting at exit when ranks finish apart."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
