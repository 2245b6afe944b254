"""Splitting an epoch over the ranks of a ``torch.distributed`` job, and seeding it: pure
functions.

Every rank calls these functions with the same inputs (the full file list, its durations or
lengths, ``seed`` and ``epoch``) and so computes the same split, the same per-rank schedules and
the same common number of batches without talking to the other ranks: no collective operation is
needed, and a rank that runs out of data pads with masked fill items up to the common count, so
the training loop's own collectives (DDP's gradient all-reduce) never wait for a rank that
stopped early.

* :func:`resolve_rank`: ``(rank, world_size)`` from the arguments, else from
  ``torch.distributed`` when a process group is initialised, else ``(0, 1)``.
* :func:`assign_to_ranks`: recordings to ranks, longest first, each to the least-loaded rank that
  still has room (rank counts differ by at most one, so every rank gets ``floor(n / world)`` or
  ``ceil(n / world)`` recordings); ties are broken by list order, or by a seeded permutation with
  ``shuffle``. Every recording goes to exactly one rank.
* :func:`permutation`: the seeded order used when shuffling (``numpy.random.default_rng([seed,
  epoch])``; never the global RNG, never the clock).
* :func:`epoch_seed`: the base seed of the random transforms for an epoch (``seed`` itself at
  epoch 0, so the defaults keep the single-process seeds).
"""

from __future__ import annotations

import math

import numpy as np

from evstream.errors import ArgumentError

__all__ = ["resolve_rank", "assign_to_ranks", "permutation", "epoch_seed", "check_seed"]


def check_seed(name: str, value) -> int:
    """``value`` as a non-negative int (ArgumentError otherwise)."""
    if isinstance(value, bool) or value is None or int(value) != value or int(value) < 0:
        raise ArgumentError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def resolve_rank(rank=None, world_size=None) -> tuple[int, int]:
    """``(rank, world_size)``.

    A value given explicitly wins; a missing one comes from ``torch.distributed`` when it is
    available and initialised (``get_rank()`` / ``get_world_size()``), else rank 0 of a world of 1.
    Pass ``rank=0, world_size=1`` to read everything on every rank (e.g. for validation).
    """
    if rank is None or world_size is None:
        dist_rank, dist_world = 0, 1
        try:
            import torch.distributed as dist
            if dist.is_available() and dist.is_initialized():
                dist_rank, dist_world = dist.get_rank(), dist.get_world_size()
        except ImportError:       # pragma: no cover - torch without distributed
            pass
        rank = dist_rank if rank is None else rank
        world_size = dist_world if world_size is None else world_size
    world_size = check_seed("world_size", world_size)
    rank = check_seed("rank", rank)
    if world_size < 1 or rank >= world_size:
        raise ArgumentError(f"need 0 <= rank < world_size, got rank {rank}, world_size "
                            f"{world_size}")
    return rank, world_size


def permutation(n: int, seed: int = 0, epoch: int = 0) -> list[int]:
    """The seeded permutation of ``range(n)`` for ``(seed, epoch)`` (same in every process)."""
    seed, epoch = check_seed("seed", seed), check_seed("epoch", epoch)
    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(int(n))]


def epoch_seed(seed: int = 0, epoch: int = 0) -> int:
    """Base seed of the random transforms for ``epoch``: ``seed`` at epoch 0, otherwise a number
    drawn from ``default_rng([seed, epoch])`` (each epoch augments differently, reproducibly)."""
    seed, epoch = check_seed("seed", seed), check_seed("epoch", epoch)
    if epoch == 0:
        return seed
    return int(np.random.default_rng([seed, epoch, 0x5EED]).integers(0, 2 ** 31))


def assign_to_ranks(weights, world_size: int, seed: int = 0, epoch: int = 0,
                    shuffle: bool = False) -> list[list[int]]:
    """Indices of the recordings each rank reads, ascending (list order).

    Args:
        weights: one non-negative number per recording: how long it plays (duration in µs, a
            chunk count, or a size proxy such as bytes).
        world_size: number of ranks.
        seed, epoch, shuffle: with ``shuffle``, equal weights are ordered by
            :func:`permutation` instead of list order (so they change rank between epochs).

    Longest first, each recording goes to the rank with the smallest total weight (ties: fewer
    recordings, then lowest rank) among those that can take one more while every rank still
    ends with ``floor(n / world_size)`` or ``ceil(n / world_size)`` recordings.
    """
    world = check_seed("world_size", world_size)
    if world < 1:
        raise ArgumentError(f"world_size must be >= 1, got {world_size}")
    w = [float(x) for x in weights]
    if any(x < 0 or math.isnan(x) for x in w):
        raise ArgumentError("weights must be non-negative numbers")
    n = len(w)
    order = permutation(n, seed, epoch) if shuffle else list(range(n))
    order.sort(key=lambda i: -w[i])                  # stable: ties keep `order`
    cap, floor = -(-n // world), n // world
    load = [0.0] * world
    members: list[list[int]] = [[] for _ in range(world)]
    for done, i in enumerate(order):
        deficit = sum(max(0, floor - len(m)) for m in members)
        if n - done <= deficit:          # what is left is needed to give every rank `floor`
            eligible = [r for r in range(world) if len(members[r]) < floor]
        else:
            eligible = [r for r in range(world) if len(members[r]) < cap]
        r = min(eligible, key=lambda r: (load[r], len(members[r]), r))
        members[r].append(i)
        load[r] += w[i]
    return [sorted(m) for m in members]


class DatasetShardView:
    """Mixin for loaders: ``rank``, ``world_size``, ``seed`` and ``epoch`` read from the loader's
    ``dataset`` (the one place that holds them)."""

    @property
    def rank(self) -> int:
        return self.dataset.rank

    @property
    def world_size(self) -> int:
        return self.dataset.world_size

    @property
    def seed(self) -> int:
        return self.dataset.seed

    @property
    def epoch(self) -> int:
        return self.dataset.epoch
