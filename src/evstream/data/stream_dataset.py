"""B streams played side by side: :class:`StreamDataset` and what one of its workers does.

:class:`StreamDataset` holds the streams, the ``streamer`` that turns a stream into an iterator of
items, the batch size, the padding mode and fill value, and the split over ranks and seeds
(:mod:`evstream.data.sharding`, :mod:`evstream.data.stream_plan`). Its
:meth:`StreamDataset.iter_worker` is the loop of one worker: its slots
(:class:`~evstream.data.stream_slot.SlotPlayer`) advance one step at a time and the worker yields
one :data:`StreamMessage` per step.

The loader configures an iteration's workers explicitly with a :class:`WorkerSpec` (control
tensor and depth of the shared-memory ring, slot positions to resume from), handed to the
workers inside a :class:`WorkerDataset`; the dataset itself is never modified by the loader.
Worker processes (a :class:`~evstream.data.stream_crew.Crew`, kept from one iteration to the
next with ``persistent_workers``) get each iteration's seed, epoch and slot positions as an
*order*: a pickle in a shared byte buffer (:func:`write_order`), which the main process writes
before it starts or resumes them and each worker applies to its own copy of the dataset
(:meth:`StreamDataset.reseed`).
See :mod:`evstream.data.stream` for the whole protocol.
"""

from __future__ import annotations

import dataclasses
import pickle
import time
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Mapping

import torch

from evstream.data.sharding import assign_to_ranks, check_seed, resolve_rank
from evstream.data.stream_plan import StreamPlan, make_stream_plan
from evstream.data.stream_ring import PoolShare, Ring, Stopped
from evstream.data.stream_slot import SlotPlayer
from evstream.errors import ArgumentError
from evstream.utils.arrays import close_if_closable

__all__ = ["StreamDataset", "StreamMessage", "WorkerSpec", "WorkerDataset", "PADDING_MODES",
           "write_order", "read_order"]

PADDING_MODES = ("zeros", "data")

#: One worker's output for one step. ``step`` is -1 for the worker's last message, which carries
#: only ``stats``. ``items[i]`` is the item of slot ``slots[i]`` (None: finished slot, use the fill
#: value); ``first_pass_done[i]`` tells whether that slot has played all its streams;
#: ``new_buffers`` maps ring ids to the ring buffers created during this step (sent once);
#: ``positions[i]`` is where slot ``slots[i]`` stands after this step (see
#: :meth:`~evstream.data.stream_slot.SlotPlayer.position`).
StreamMessage = namedtuple("StreamMessage",
                           "worker step slots items first_pass_done stats new_buffers positions")


@dataclass(frozen=True)
class WorkerSpec:
    """How a loader configures the workers of one iteration.

    Attributes:
        control: shared int64 tensor ``[collated steps of worker 0, ..., stop flag]`` written by
            the main process (None: no shared-memory ring, e.g. ``num_workers=0``).
        ring_depth: ring buffers per slot output (see :mod:`evstream.data.stream_ring`).
        resume_positions: slot -> :meth:`~evstream.data.stream_slot.SlotPlayer.position` to
            continue from (empty: every slot from its start).
        pool: the batch arrays that the workers write in place
            (:class:`~evstream.data.stream_ring.PoolShare`; None: none).
        order: shared uint8 buffer holding the iteration's seed, epoch and resume positions
            (:func:`write_order`; the workers of a :class:`~evstream.data.stream_crew.Crew`,
            which kept workers read anew at every iteration), which replace
            ``resume_positions`` and the dataset's seed and epoch (None: none).
    """

    control: torch.Tensor | None = None
    ring_depth: int = 0
    resume_positions: Mapping = field(default_factory=dict)
    pool: PoolShare | None = None
    order: torch.Tensor | None = None


#: bytes at the start of an order buffer that hold the length of its pickle (little-endian)
_ORDER_HEADER = 8


def write_order(buffer: torch.Tensor, seed: int, epoch: int, positions: Mapping) -> bool:
    """Write an iteration's order (``seed``, ``epoch``, slot -> resume position) into the shared
    uint8 ``buffer``; False, with nothing written, when it does not fit."""
    data = pickle.dumps((int(seed), int(epoch), dict(positions)), protocol=4)
    raw = buffer.numpy()
    if _ORDER_HEADER + len(data) > len(raw):
        return False
    raw[_ORDER_HEADER:_ORDER_HEADER + len(data)] = memoryview(data)
    raw[:_ORDER_HEADER] = memoryview(len(data).to_bytes(_ORDER_HEADER, "little"))
    return True


def read_order(buffer: torch.Tensor) -> tuple[int, int, dict]:
    """``(seed, epoch, positions)`` as :func:`write_order` wrote them."""
    raw = buffer.numpy()
    n = int.from_bytes(raw[:_ORDER_HEADER].tobytes(), "little")
    return pickle.loads(raw[_ORDER_HEADER:_ORDER_HEADER + n].tobytes())


def _proc_status_mb(key: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class StreamDataset(torch.utils.data.IterableDataset):
    """B streams played in parallel batch slots (see the module docstring).

    Args:
        stream_list: the streams (e.g. file paths), at least one.
        streamer: ``streamer(stream)`` -> an iterable of items. If the iterator has a ``stats``
            dict of numbers, it is summed into the worker's statistics when the stream ends (after
            its ``close()``, if it has one). A streamer whose items depend on the seed or the
            epoch (augmentation) has ``set_epoch(seed, epoch)``: :meth:`reseed` calls it, at
            construction and whenever the seed or the epoch is set, in the main process and in
            the workers.
        batch_size: B, the number of slots.
        padding_mode: ``"zeros"`` (finished slots get ``fill_value``) or ``"data"`` (finished
            slots replay their streams until every slot has finished once).
        fill_value: the item of a slot without data; required with ``"zeros"``, and with
            ``"data"`` when some slot gets no stream (``B`` > number of streams).
        seed: non-negative integer seed of the shuffle (ignored unless ``shuffle``).
        shuffle: permute the streams before dealing them to slots (keyword-only).
        epoch: mixed into the shuffle's seed (keyword-only; see :meth:`set_epoch`).
        rank, world_size: this process's share of a distributed job (keyword-only; default from
            ``torch.distributed`` when initialised, else 0 of 1). The streams are split over the
            ranks by :func:`~evstream.data.sharding.assign_to_ranks` and each rank plays its
            share in its ``B`` slots; all ranks yield :attr:`num_batches` batches (fill items
            after a rank's data ends).
        lengths: number of items of each stream (keyword-only). Required with several ranks
            (the common number of batches is computed from it on every rank, no collective
            needed); optional otherwise (then it caps the epoch at the longest slot).
        weights: balance of the split over ranks (keyword-only; default ``lengths``), e.g. file
            sizes.
    """

    def __init__(self, stream_list, streamer, batch_size, padding_mode="zeros", fill_value=None,
                 seed=0, *, shuffle=False, epoch=0, rank=None, world_size=None, lengths=None,
                 weights=None):
        super().__init__()
        self.stream_list = list(stream_list)
        if not self.stream_list:
            raise ArgumentError("StreamDataset needs at least one stream")
        if not callable(streamer):
            raise ArgumentError(f"streamer must be callable, got {streamer!r}")
        if padding_mode not in PADDING_MODES:
            raise ArgumentError(f"padding_mode must be one of {PADDING_MODES}, "
                                f"got {padding_mode!r}")
        self.streamer = streamer
        self.padding_mode = padding_mode
        self.fill_value = fill_value
        self.shuffle = bool(shuffle)
        self.batch_size = make_stream_plan(len(self.stream_list), batch_size, 0,
                                           0 if seed is None else seed, epoch,
                                           shuffle).batch_size   # validates everything
        self.rank, self.world_size = resolve_rank(rank, world_size)
        n = len(self.stream_list)
        self.lengths = None if lengths is None else [int(x) for x in lengths]
        if self.lengths is not None and (len(self.lengths) != n or min(self.lengths) < 0):
            raise ArgumentError(f"lengths must be {n} numbers >= 0, got {lengths!r:.200}")
        if self.world_size > 1 and self.lengths is None:
            raise ArgumentError(f"a StreamDataset split over {self.world_size} ranks needs the "
                                f"lengths of the streams, so that every rank yields the same "
                                f"number of batches")
        self.weights = self.lengths if weights is None else [float(x) for x in weights]
        if self.weights is not None and len(self.weights) != n:
            raise ArgumentError(f"weights must be {n} numbers, got {len(self.weights)}")
        self.reseed(0 if seed is None else seed, epoch)
        needs_fill = padding_mode == "zeros" or self.batch_size > len(self.local_streams) or \
            self.world_size > 1
        if fill_value is None and needs_fill:
            raise ArgumentError(f"padding_mode={padding_mode!r} with {len(self.local_streams)} "
                                f"stream(s) for {self.batch_size} slot(s) needs a fill_value")

    # ------------------------------------------------------------------ split and plan
    def _rank_streams(self) -> list[list[int]]:
        n = len(self.stream_list)
        if self.world_size == 1:
            return [list(range(n))]
        return assign_to_ranks(self.weights, self.world_size, self.seed, self.epoch,
                               self.shuffle)

    def _plan_of(self, local: list, num_workers: int) -> StreamPlan:
        if local:
            plan = make_stream_plan(len(local), self.batch_size, num_workers, self.seed,
                                    self.epoch, self.shuffle)
        else:                                   # a rank without streams: fill only
            empty = make_stream_plan(1, self.batch_size, num_workers)
            plan = StreamPlan(self.batch_size, empty.num_workers, (),
                              ((),) * self.batch_size, empty.worker_slots)
        return plan

    def _assign(self) -> None:
        ranks = self._rank_streams()
        self.local_streams = ranks[self.rank]
        self.num_batches = None
        if self.lengths is not None:
            longest = 0
            for local in ranks:
                plan = self._plan_of(local, 0)
                for slot in plan.slot_streams:
                    longest = max(longest, sum(self.lengths[local[i]] for i in slot))
            self.num_batches = longest

    def warm_up(self) -> None:
        """Compute the first item of the first stream in this process and drop it: the numba
        kernels it needs are then loaded here, and workers forked from this process start with
        them instead of each loading them from numba's cache at its first item (0.1-0.3 s
        per worker and epoch, ``benchmarks/bench_rvt.py``; see
        :meth:`~evstream.data._loader.LoaderBase._warm_up_before_fork`). A failure is left to
        the workers, which meet and report it with their slot's context."""
        items = None
        try:
            items = self.streamer(self.stream_list[0])
            next(iter(items), None)
        except Exception:        # noqa: BLE001 (an optimisation only; the workers report it)
            pass
        finally:
            close_if_closable(items)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: it seeds the shuffle (and, across ranks, ties of the split)."""
        self.reseed(self.seed, epoch)

    def reseed(self, seed: int, epoch: int) -> None:
        """Set the seed and the epoch (everything that depends on them follows): the split and
        the plan, and the streamer's own seeds when it has ``set_epoch(seed, epoch)``."""
        self.seed = check_seed("seed", seed)
        self.epoch = check_seed("epoch", epoch)
        self._assign()
        tell = getattr(self.streamer, "set_epoch", None)
        if callable(tell):
            tell(self.seed, self.epoch)

    def plan(self, num_workers: int) -> StreamPlan:
        """The stream -> slot -> worker assignment for ``num_workers`` workers; stream indices
        are positions in :attr:`local_streams` (this rank's streams; all of them on one rank)."""
        return self._plan_of(self.local_streams, num_workers)

    def slot_stream_lists(self, plan: StreamPlan) -> list[list]:
        """Per slot, the streams (elements of ``stream_list``) it plays, in order."""
        return [[self.stream_list[self.local_streams[i]] for i in slot]
                for slot in plan.slot_streams]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        if info is None:
            return self.iter_worker(0, 1)
        return self.iter_worker(info.id, info.num_workers)

    def iter_worker(self, worker_id: int, num_workers: int, spec: WorkerSpec | None = None):
        """The messages (:data:`StreamMessage`) of worker ``worker_id`` of ``num_workers``: one per
        step while one of its slots has data (for ever in ``"data"`` mode), then a last message
        with ``step == -1`` and the worker's statistics. ``spec``: the loader's configuration of
        this iteration (default: no ring, from the start)."""
        spec = spec or WorkerSpec()
        plan = self.plan(num_workers)
        slots = plan.worker_slots[worker_id] if worker_id < plan.num_workers else ()
        ring = None
        if spec.control is not None and torch.utils.data.get_worker_info() is not None:
            ring = Ring(worker_id, spec.control, spec.ring_depth, spec.pool)
        stats: dict = {"rss_start_mb": _proc_status_mb("VmRSS") or 0.0}
        streams = self.slot_stream_lists(plan)
        states = [SlotPlayer(s, streams[s], self.streamer, self.padding_mode, stats, ring)
                  for s in slots]
        for state in states:
            position = spec.resume_positions.get(state.slot)
            if position is not None:
                state.restore(position)
        produce = outside = 0.0
        cpu_start = time.process_time()
        step = 0
        try:
            while True:
                t0 = time.perf_counter()
                if ring is not None:
                    ring.step = step
                    ring.wait_until_free(step)
                results = [state.next_item() for state in states]
                items = [r[0] for r in results]
                flags = [r[1] for r in results]
                if all(item is None for item in items) and all(flags) and \
                        (self.padding_mode == "zeros" or all(s.dead for s in states)):
                    produce += time.perf_counter() - t0
                    break
                new = None
                if ring is not None:
                    items = [ring.to_refs(item) for item in items]
                    new = ring.take_new()
                produce += time.perf_counter() - t0
                t1 = time.perf_counter()
                positions = tuple(state.position() for state in states)
                yield StreamMessage(worker_id, step, tuple(slots), items, flags, None, new,
                                    positions)
                outside += time.perf_counter() - t1
                step += 1
        except Stopped:
            return
        finally:
            for state in states:
                state.close()
        wait = ring.wait_s if ring is not None else 0.0
        stats.update(steps=step, produce_s=produce - wait, ring_wait_s=wait, outside_s=outside,
                     cpu_s=time.process_time() - cpu_start,
                     peak_rss_mb=_proc_status_mb("VmHWM") or 0.0)
        yield StreamMessage(worker_id, -1, tuple(slots), None, None, stats, None, None)


class WorkerDataset(torch.utils.data.IterableDataset):
    """What a loader hands to torch's ``DataLoader`` workers: ``dataset`` played with ``spec``
    (each worker runs :meth:`StreamDataset.iter_worker` with its id)."""

    def __init__(self, dataset: StreamDataset, spec: WorkerSpec):
        super().__init__()
        self.dataset = dataset
        self.spec = spec

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        spec = self.spec
        if spec.order is not None:                    # a kept worker: this iteration's order
            seed, epoch, positions = read_order(spec.order)
            if (seed, epoch) != (self.dataset.seed, self.dataset.epoch):
                self.dataset.reseed(seed, epoch)
            spec = dataclasses.replace(spec, resume_positions=positions)
        return self.dataset.iter_worker(worker_id, num_workers, spec)
