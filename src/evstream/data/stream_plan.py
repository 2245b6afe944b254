"""Which stream plays in which batch slot, and which worker computes which slot.

This is the one place that decides it, as a pure function of ``(number of streams, B, W, seed,
epoch, shuffle)``, so that every process computes the same plan and a run is reproducible:

1. **Order.** The streams keep their list order, or with ``shuffle=True`` are permuted by
   ``numpy.random.default_rng([seed, epoch])`` (never the global RNG, never the clock).
2. **Stream -> slot** (depends on the order and ``B`` only, not on ``W``): the ``i``-th stream of
   the order goes to slot ``i % B``; a slot plays its streams back to back in that order. Any
   number of streams works: with fewer streams than slots the extra slots get none.
3. **Slot -> worker** (depends on ``B`` and ``W`` only): ``W' = min(max(W, 1), B)`` workers;
   worker ``w`` computes the slots ``w, w + W', w + 2W', ...`` (interleaved, so that the first
   slots, which get a stream first when streams are few, are spread over the workers).

Because step 2 does not depend on the worker count, the batches a loader yields are identical
for every ``W`` (only the speed changes).

``split_batch_size`` and ``split_dataset_sizes`` reproduce the helpers of OpenEB's
``stream_dataloader`` (contiguous splits) for code that calls them; the loaders do not use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evstream.data.sharding import permutation
from evstream.errors import ArgumentError

__all__ = ["StreamPlan", "make_stream_plan", "split_batch_size", "split_dataset_sizes"]


@dataclass(frozen=True)
class StreamPlan:
    """The outcome of :func:`make_stream_plan`.

    Attributes:
        batch_size: B, the number of slots.
        num_workers: W', the number of (logical) workers that compute slots, ``1 <= W' <= B``.
        order: the stream indices in play order (a permutation of ``range(num_streams)``).
        slot_streams: per slot, the indices of the streams it plays, in order.
        worker_slots: per worker, the slots it computes, ascending.
    """

    batch_size: int
    num_workers: int
    order: tuple[int, ...]
    slot_streams: tuple[tuple[int, ...], ...]
    worker_slots: tuple[tuple[int, ...], ...]

    def slot_of_stream(self, stream_index: int) -> int:
        """The slot that plays stream ``stream_index``."""
        return self.order.index(stream_index) % self.batch_size

    def worker_of_slot(self, slot: int) -> int:
        """The worker that computes ``slot``."""
        return slot % self.num_workers


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def make_stream_plan(num_streams: int, batch_size: int, num_workers: int, seed: int = 0,
                     epoch: int = 0, shuffle: bool = False) -> StreamPlan:
    """The stream -> slot -> worker assignment (see the module docstring).

    Args:
        num_streams: number of streams (recordings), >= 1.
        batch_size: B >= 1.
        num_workers: W >= 0 (0 means the main process, i.e. one logical worker).
        seed, epoch: non-negative integers; used only with ``shuffle``.
        shuffle: permute the streams (deterministically) before dealing them to slots.
    """
    n = _positive("num_streams", num_streams)
    b = _positive("batch_size", batch_size)
    w = _positive("num_workers", num_workers, 0)
    seed = _positive("seed", seed, 0)
    epoch = _positive("epoch", epoch, 0)
    if shuffle:
        order = tuple(permutation(n, seed, epoch))
    else:
        order = tuple(range(n))
    workers = min(max(w, 1), b)
    return StreamPlan(batch_size=b, num_workers=workers, order=order,
                      slot_streams=tuple(order[s::b] for s in range(b)),
                      worker_slots=tuple(tuple(range(k, b, workers)) for k in range(workers)))


def split_batch_size(batch_size: int, num_workers: int) -> list[int]:
    """OpenEB's split of B slots over ``min(W, B)`` workers: ``B // W'`` each, one more for the
    first ``B % W'`` (sums to B, max - min <= 1)."""
    b = _positive("batch_size", batch_size)
    w = min(_positive("num_workers", num_workers), b)
    return [b // w + (1 if i < b % w else 0) for i in range(w)]


def split_dataset_sizes(stream_list, split_sizes) -> list:
    """OpenEB's contiguous partition of ``stream_list`` proportional to ``split_sizes``:
    group ``i`` ends at ``round(cumsum(sizes)[i] * len / sum(sizes))``."""
    sizes = np.asarray(split_sizes, dtype=np.float64)
    if sizes.ndim != 1 or len(sizes) == 0 or (sizes <= 0).any():
        raise ArgumentError(f"split_sizes must be a non-empty list of positive sizes, got "
                            f"{split_sizes!r}")
    n = len(stream_list)
    ends = np.round(np.cumsum(sizes) * n / sizes.sum()).astype(int)
    starts = np.concatenate([[0], ends[:-1]])
    return [stream_list[s:e] for s, e in zip(starts, ends)]
