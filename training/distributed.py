"""Which process this is and what it runs on, when torchrun or accelerate launch starts several.

    torchrun --nproc_per_node 2 -m fanzha train --config configs/default.yaml
    accelerate launch --num_processes 2 -m fanzha train --config configs/default.yaml

Both launchers set RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE; the Trainer reads them and
wraps the model in DDP itself (gloo on CPU, nccl on CUDA). This module answers only what
train.py asks around it: is this rank 0 (the one that writes), how many CPU threads each process
gets, which precision the devices support, and which devices took part.
"""
from __future__ import annotations

import os

import torch



def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def cpu_threads(requested: int) -> int:
    """`requested`, or this machine's cores shared among the processes on it: two processes on
    two cores that each take both only fight over them."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size())))
    return requested or max(1, (os.cpu_count() or 1) // max(1, local))


def cpu_has_native_bf16(flags: str | None = None) -> bool:
    """The CPU computes bf16 natively (AVX512-BF16 or AMX-BF16): bf16 autocast then runs the
    matrix products ~2x faster; without them PyTorch emulates bf16 and autocast only costs."""
    if flags is None:
        try:
            flags = open("/proc/cpuinfo", encoding="utf-8").read()
        except OSError:
            return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def resolve_precision(precision: str, cuda: bool | None = None, cpu_bf16: bool | None = None) -> str:
    """'auto' -> bf16 where the GPU supports it, else fp16 on CUDA, fp32 on CPU; 'bf16-if-native'
    -> as 'auto' on CUDA, and on a CPU bf16 where it has native bf16 (cpu_has_native_bf16), else fp32."""
    from training.config import ConfigError

    cuda = torch.cuda.is_available() if cuda is None else cuda
    if precision == "bf16-if-native" and not cuda:
        return "bf16" if (cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16) else "fp32"
    if precision in ("auto", "bf16-if-native"):
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "fp16" and not cuda:
        raise ConfigError("precision fp16 needs a CUDA GPU (on CPU use fp32, or bf16 autocast)")
    return precision


def precision_args(precision: str) -> dict:
    """TrainingArguments for a resolved precision: autocast with fp32 master weights."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index or 0} {torch.cuda.get_device_name(device)}"
    return device.type


def gather(value) -> list:
    """`value` from every rank, in rank order (all ranks must call it); [value] without DDP."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
