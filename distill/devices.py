"""Where training runs: CPU, one GPU, DataParallel over all visible GPUs, or torchrun DDP.

Under torchrun (``python -m torch.distributed.run --nproc_per_node K ...``) every process
sees the whole global batch plan and keeps its own slice of each micro-batch; only rank 0
writes files. Without torchrun and with several visible GPUs the student and teacher are
wrapped in ``torch.nn.DataParallel``, as the paper's code ran (pick GPUs with
CUDA_VISIBLE_DEVICES).
"""
import contextlib
import ctypes
import ctypes.util
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


@dataclass
class Devices:
    device: torch.device
    n_gpu: int = 0
    rank: int = 0
    world_size: int = 1
    bf16: bool = False

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0

    def describe(self):
        return (f"device {self.device}, {self.n_gpu} GPUs, rank {self.rank} of {self.world_size}, "
                f"bf16 {self.bf16}")

    def autocast(self):
        """bfloat16 autocast for forward passes when --bf16 was given, else a no-op."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def sum_across_ranks(self, values):
        """Element-wise sum of a float tensor over all ranks (identity for one process)."""
        if self.distributed:
            values = values.to(self.device)
            dist.all_reduce(values)
        return values.cpu()

    def gather_objects(self, obj):
        """List of ``obj`` from every rank (one item for one process)."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self):
        if self.distributed:
            dist.barrier()


CPU_ALLOCATORS = ("keep_freed", "glibc")


def keep_freed_cpu_memory():
    """Make glibc keep freed memory for reuse instead of returning it to the system.

    By default glibc serves big blocks with fresh mmaps and trims the heap after large
    frees, so every multi-megabyte activation of a CPU forward page-faults its memory in
    again: ~16,000 faults per forward of a 768-wide BERT at batch 8. The spiking
    simulation allocates such tensors at every time step. Keeping freed memory costs
    resident memory up to the peak of the run (what torch's CUDA caching allocator does
    on GPUs). Returns whether the settings took effect (False off glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 2 ** 30) and mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def configure_cpu_allocator(choice):
    """The --cpu_allocator choice, for the whole process: "keep_freed" (keep_freed_cpu_memory; the
    README's speed section gives the measured gain) or "glibc" (its default, nothing changed)."""
    if choice not in CPU_ALLOCATORS:
        raise ValueError(f"--cpu_allocator must be one of {', '.join(CPU_ALLOCATORS)}, got {choice!r}")
    if choice == "keep_freed":
        if keep_freed_cpu_memory():
            logger.info("--cpu_allocator keep_freed: glibc keeps freed memory for reuse (mallopt)")
        else:
            logger.warning("--cpu_allocator keep_freed: not a glibc system; allocator unchanged")


def select_devices(no_cuda=False, bf16=False):
    """Pick the device(s) from the environment; initialises the process group under torchrun."""
    use_cuda = torch.cuda.is_available() and not no_cuda
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        devices = Devices(device, n_gpu=1 if use_cuda else 0, rank=rank, world_size=world_size, bf16=bf16)
    elif use_cuda:
        devices = Devices(torch.device("cuda"), n_gpu=torch.cuda.device_count(), bf16=bf16)
    else:
        devices = Devices(torch.device("cpu"), bf16=bf16)
    return devices


def wrap_student(model, devices):
    """Move the trained model to its device and wrap it for DDP or DataParallel."""
    model.to(devices.device)
    if devices.distributed:
        # Some parameters get no gradient in some modes (the classifier during IKD, fit_dense
        # during prediction KD), so DDP must look for unused parameters.
        device_ids = [devices.device.index] if devices.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
    if devices.n_gpu > 1:
        return torch.nn.DataParallel(model)
    return model


def wrap_frozen(model, devices):
    """Move a model that is not trained (the teacher) to the device; DataParallel over several GPUs."""
    model.to(devices.device)
    if not devices.distributed and devices.n_gpu > 1:
        return torch.nn.DataParallel(model)
    return model


WRAPPERS = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)


def unwrap(model):
    """The bare model inside a DataParallel / DDP wrapper."""
    return model.module if isinstance(model, WRAPPERS) else model


def no_sync(model, skip_sync):
    """DDP: skip the gradient all-reduce for all but the last micro-batch of an optimisation step."""
    if skip_sync and isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def cleanup(devices):
    if devices.distributed and dist.is_initialized():
        dist.destroy_process_group()
