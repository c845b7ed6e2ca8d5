"""One run on several processes: torchrun's environment, the process group, each rank's share.

``torchrun --nproc_per_node=N -m course_lib.experiments train ...`` starts N copies of the
command and tells each its place in the environment: ``RANK`` (0 .. WORLD_SIZE-1 over every
machine), ``WORLD_SIZE`` and ``LOCAL_RANK`` (its index on its own machine, which picks its
GPU). :func:`context` reads them and joins the process group once (NCCL on CUDA, gloo on
the CPU); without torchrun it is the single process, rank 0 of 1, and every method below
does nothing. The training loop (``course_lib.engine.train``) wraps the model in
``DistributedDataParallel`` and gives each rank its share of every global batch.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta

import torch

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# How long a rank waits for the others at a collective before the job fails. Rank 0 writes
# checkpoints and records while the others wait; a queue worker polls locks while they wait.
TIMEOUT = timedelta(minutes=30)


def torchrun_env(environ=None) -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) when torchrun started this process, else None."""
    env = os.environ if environ is None else environ
    given = [v for v in TORCHRUN_VARS if env.get(v) not in (None, "")]
    if not given:
        return None
    if len(given) < len(TORCHRUN_VARS):
        missing = sorted(set(TORCHRUN_VARS) - set(given))
        raise ValueError(f"the environment sets {given} but not {missing}: start the command with torchrun, "
                         "which sets all three, or unset them for a single process")
    try:
        rank, world, local = (int(env[v]) for v in TORCHRUN_VARS)
    except ValueError:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                         f"{[env[v] for v in TORCHRUN_VARS]}") from None
    if not (world >= 1 and 0 <= rank < world and local >= 0):
        raise ValueError(f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}: need 0 <= RANK < WORLD_SIZE")
    return rank, world, local


def local_rank() -> int | None:
    """``LOCAL_RANK`` under torchrun with more than one process, else None (picks the GPU)."""
    env = torchrun_env()
    return env[2] if env and env[1] > 1 else None


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one that writes checkpoints, records and logs."""
    env = torchrun_env()
    return env is None or env[0] == 0


@dataclass(frozen=True)
class Context:
    """This process's place among the processes that train one run together."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None      # 'nccl' | 'gloo' | None (a single process)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (any picklable object)."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over the ranks, in place."""
        if self.distributed:
            torch.distributed.all_reduce(t)
        return t

    def any(self, flag: bool, device=None) -> bool:
        """True on every rank if ``flag`` is True on any."""
        if not self.distributed:
            return bool(flag)
        return bool(self.sum_(torch.tensor([float(flag)], device=device)).item() > 0)

    def share(self, n: int) -> slice:
        """This rank's part of ``n`` items cut in ``world_size`` contiguous parts (sizes differ by at most 1)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's buffers (batch norm's running statistics) on every rank, as DDP does before a forward."""
        if self.distributed:
            for b in model.buffers():
                torch.distributed.broadcast(b, 0)


SINGLE = Context()
_context: Context | None = None


def context(device: torch.device | None = None) -> Context:
    """This process's :class:`Context`; under torchrun (WORLD_SIZE > 1) the first call joins the process group.

    ``device``: where this rank computes (``course_lib.engine.device.pick_device`` picks
    ``cuda:LOCAL_RANK`` under torchrun); CUDA uses NCCL, anything else gloo.
    """
    global _context
    env = torchrun_env()
    if env is None or env[1] == 1:
        return SINGLE
    if _context is not None:
        return _context
    import torch.distributed as dist
    rank, world, local = env
    device = torch.device(device or "cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=TIMEOUT)
        atexit.register(_leave)
    _context = Context(rank, world, local, dist.get_backend())
    return _context


def _leave() -> None:
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()


def check_batches(n: int, batch_size: int, world_size: int) -> None:
    """ValueError unless every global batch of a training epoch splits into shares of >= 2 images.

    Each rank takes ``batch_size / world_size`` images per step, so the batch must divide;
    the last, smaller batch is cut as evenly as it goes (batch norm needs 2 images per rank).
    """
    if world_size <= 1:
        return
    if batch_size % world_size:
        fits = [w for w in range(2, batch_size + 1) if batch_size % w == 0][:8]
        raise ValueError(f"the global batch of {batch_size} images does not divide among {world_size} processes: "
                         f"each process takes batch_size / world_size images per step. Use a world size that "
                         f"divides it (e.g. {fits}) or another batch_size")
    last = n % batch_size   # a last batch of 1 is dropped (batch_indices)
    if n > batch_size and 2 <= last < 2 * world_size:
        raise ValueError(f"the last batch of each epoch has {last} image(s) ({n} training images, batch "
                         f"{batch_size}): among {world_size} processes some get fewer than 2, and batch norm "
                         f"cannot train on 1 image. Change images (or val_size) by a few, or the world size")
    if n <= batch_size and n < 2 * world_size:
        raise ValueError(f"{n} training images among {world_size} processes leaves some with fewer than 2")


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's global generator (dropout) in a run of ``seed``: distinct per rank."""
    return (1 << 40) + seed * 1_000_003 + rank
