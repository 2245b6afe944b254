"""Play B streams side by side, over W worker processes: ``StreamDataset`` and ``StreamDataLoader``.

A *stream* is anything a ``streamer`` callable turns into an iterator of items (for
:class:`~evstream.data.cd_processor_dataset.CDProcessorDataLoader`: a recording turned into
chunks). The loader plays ``B`` streams at once, one per *batch slot*; each batch holds one item
of every slot, in slot order, so batch position ``s`` always carries slot ``s``:

* a slot plays its streams back to back; a stream never changes slot during its lifetime;
* the batch size is always ``B``: a slot that has no stream left is filled with ``fill_value``
  (``padding_mode="zeros"``), or, with ``padding_mode="data"``, replays its own streams from the
  first one;
* the epoch ends at the first step at which every slot has played all of its streams (``"zeros"``:
  when no slot has anything left; ``"data"``: when every slot has finished its first pass);
* which stream plays in which slot and which worker computes which slot is decided by
  :func:`~evstream.data.stream_plan.make_stream_plan`, a pure function of the stream count,
  ``B``, ``W``, ``seed`` and ``epoch``; the batches do not depend on ``W``.

**Several ranks and resuming.** With ``rank``/``world_size`` (default: the ``torch.distributed``
process group) the streams are split over the ranks by :mod:`evstream.data.sharding` and each rank
plays its share; given the streams' ``lengths``, every rank computes the same number of batches
and fills its batches with ``fill_value`` after its own streams end (no collective needed).
:meth:`StreamDataLoader.state_dict` records the batches yielded and, per slot, its stream and the
items consumed; :meth:`StreamDataLoader.load_state_dict` reopens each slot there (the stream
iterator's ``skip(n)`` when it has one, else ``n`` items read and dropped), so the next iteration
continues the interrupted one exactly, whatever ``W``.

Any ``B >= 1``, ``W >= 0`` and number of streams ``>= 1`` works (slots without a stream are fill
from the start; workers beyond ``B`` are not started).

Workers are the processes of a ``torch.utils.data.DataLoader`` over this ``IterableDataset``
(``batch_size=None``): worker ``w`` computes its slots one step at a time and sends one message
per step (its slots' items, ``None`` for a finished slot); the main process puts the messages of
one step side by side, substitutes ``fill_value`` for ``None`` (fill values never cross a process
boundary) and calls ``collate_fn`` on the ``B`` items. ``num_workers=0`` runs the same code in
the main process.

**Shared-memory ring.** A streamer that gets its output tensors from :func:`stream_output` (as
``CDProcessorDataLoader`` does) writes them, in a worker, straight into a small ring of
shared-memory buffers per slot (``ring_depth`` per slot, allocated once per iteration and mapped
once by the main process); messages then carry only a reference to the buffer. The main process
tells the worker when a step has been collated (a shared counter per worker) and the worker
reuses the buffer only after that, so ``collate_fn`` must copy tensors (``torch.stack`` and the
loaders' collate functions do). This removes a shared-memory allocation and a mapping per item per
step (see ``benchmarks/bench_stream.py``). Tensors not made by :func:`stream_output` travel the
usual torch way.

An exception raised while a worker reads a stream reaches the main process (through torch's
worker error forwarding) and names the stream: errors of the :class:`~evstream.errors.EvstreamError`
family that already name a file pass unchanged, anything else becomes a :class:`StreamReadError`
naming the stream and its slot. A worker that dies is reported by torch; a worker that stops
without dying is a :class:`~evstream.errors.WorkerTimeoutError` after ``timeout`` seconds
(default 300); nothing waits forever.

Differences from OpenEB's ``metavision_core_ml.data.stream_dataloader`` (whose behaviour this
follows otherwise): no ``batch_size <= number of streams`` assertion; streams are not reshuffled per
worker with a clock-based seed (the order is the list order, or a seeded permutation); the slot
of a stream does not depend on the worker count; ``"data"`` mode ends when every slot has
finished its first pass (the original stops when the first worker finishes); a stream that turns
out empty is skipped instead of ending its worker; importing this module does not change torch's
tensor sharing strategy.
"""

from __future__ import annotations

import copy
import os
import time
from collections import deque, namedtuple

import numpy as np
import torch

from evstream.data.sharding import DatasetShardView, assign_to_ranks, check_seed, resolve_rank
from evstream.data.stream_plan import StreamPlan, make_stream_plan
from evstream.data._workers import (DEFAULT_WORKER_TIMEOUT_S, Watchdog, check_timeout,
                                    is_timeout, stop_workers, waiting_worker)
from evstream.errors import ArgumentError, EvstreamError, WorkerTimeoutError

__all__ = ["StreamDataset", "StreamDataLoader", "StreamReadError", "StreamMessage",
           "stream_output", "PADDING_MODES"]

PADDING_MODES = ("zeros", "data")

#: One worker's output for one step. ``step`` is -1 for the worker's last message, which carries
#: only ``stats``. ``items[i]`` is the item of slot ``slots[i]`` (None: finished slot, use the fill
#: value); ``first_pass_done[i]`` tells whether that slot has played all its streams;
#: ``new_buffers`` maps ring ids to the ring buffers created during this step (sent once);
#: ``positions[i]`` is where slot ``slots[i]`` stands after this step (see :meth:`_Slot.position`).
StreamMessage = namedtuple("StreamMessage",
                           "worker step slots items first_pass_done stats new_buffers positions")

#: How long a worker sleeps between two looks at the main process's progress (s).
_POLL_S = 0.0002


class StreamReadError(EvstreamError, RuntimeError):
    """Reading a stream failed with an error that did not name it (the stream is the path)."""


class _Stopped(Exception):
    """The main process ended the iteration while a worker waited for a ring buffer."""


class _RingRef(namedtuple("_RingRef", "ring_id")):
    """Stands for a ring buffer inside a message (the main process holds the buffer itself)."""


def _stream_name(stream) -> str:
    if isinstance(stream, (str, os.PathLike)):
        return os.fspath(stream)
    return repr(stream)


def _raise_for(exc: BaseException, stream, slot: int):
    if isinstance(exc, EvstreamError) and exc.path is not None:
        raise exc
    raise StreamReadError(f"reading this stream (batch slot {slot}) failed: "
                          f"{type(exc).__name__}: {exc}", _stream_name(stream)) from exc


def _add_stats(total: dict, part) -> None:
    if isinstance(part, dict):
        for key, value in part.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value


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


# ---------------------------------------------------------------------------------------------
# shared-memory ring (worker side)
# ---------------------------------------------------------------------------------------------
class _Ring:
    """The ring buffers of one worker. Buffer ``(key, step % depth)`` is handed out for ``step``;
    it may be written only once the main process has collated step ``step - depth``."""

    def __init__(self, worker_id: int, control: torch.Tensor, depth: int):
        self.worker_id = worker_id
        self.control = control.numpy()          # [consumed steps per worker..., stop flag]
        self.depth = depth
        self.buffers: dict = {}                  # key -> [depth tensors]
        self.refs: dict = {}                     # data_ptr -> (ring id, buffer)
        self.new: dict = {}                      # ring id -> buffer, not sent yet
        self.step = 0
        self.wait_s = 0.0
        self._ppid = os.getppid()

    def allocate(self, key, shape, dtype) -> torch.Tensor:
        full_key = (key, tuple(shape), dtype)
        ring = self.buffers.get(full_key)
        if ring is None:
            ring = []
            for _ in range(self.depth):
                nbytes = int(np.prod(shape)) * torch.empty(0, dtype=dtype).element_size()
                storage = torch.UntypedStorage._new_shared(max(nbytes, 1))
                buf = torch.empty(0, dtype=dtype).set_(storage, 0, tuple(shape))
                ring_id = len(self.refs)
                self.refs[buf.data_ptr()] = (ring_id, buf)
                self.new[ring_id] = buf
                ring.append(buf)
            self.buffers[full_key] = ring
        return ring[self.step % self.depth]

    def wait_until_free(self, step: int) -> None:
        """Block until the buffers of ``step`` are free (step ``step - depth`` collated)."""
        need = step - self.depth + 1
        ctl = self.control
        if not self.buffers or ctl[self.worker_id] >= need:
            return
        t0 = time.perf_counter()
        while ctl[self.worker_id] < need:
            if ctl[-1] or os.getppid() != self._ppid:
                raise _Stopped()
            time.sleep(_POLL_S)
        self.wait_s += time.perf_counter() - t0

    def to_refs(self, data):
        """``data`` with every ring buffer replaced by a :class:`_RingRef`."""
        if isinstance(data, torch.Tensor):
            found = self.refs.get(data.data_ptr()) if data.numel() else None
            if found is not None:
                buf = found[1]
                if data is buf or (data.shape == buf.shape and data.dtype == buf.dtype
                                   and data.is_contiguous()):
                    return _RingRef(found[0])
            return data
        if isinstance(data, tuple) and not hasattr(data, "_fields"):
            return tuple(self.to_refs(v) for v in data)
        if isinstance(data, list):
            return [self.to_refs(v) for v in data]
        if isinstance(data, dict):
            return {k: self.to_refs(v) for k, v in data.items()}
        return data

    def take_new(self) -> dict | None:
        new, self.new = self.new, {}
        return new or None


#: (ring, slot, allocation counter) while a streamer computes an item in a worker
_context: list | None = None


def stream_output(shape, dtype=torch.float32) -> torch.Tensor:
    """A tensor for a streamer to fill with (part of) the item it is computing.

    Called by a streamer running in a :class:`StreamDataLoader` worker, it returns a reusable
    shared-memory ring buffer (see the module docstring): fill it and put it, unchanged, in the
    item; it stays valid until the main process has collated the step. Called anywhere else, it
    returns a new uninitialised tensor. Successive calls for one item return distinct buffers.
    """
    ctx = _context
    if ctx is None:
        return torch.empty(tuple(shape), dtype=dtype)
    ring, slot, counter = ctx
    ctx[2] = counter + 1
    return ring.allocate((slot, counter), shape, dtype)


def _resolve(data, buffers: dict):
    """Main side: ``data`` with every :class:`_RingRef` replaced by its buffer."""
    if isinstance(data, _RingRef):
        return buffers[data.ring_id]
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return tuple(_resolve(v, buffers) for v in data)
    if isinstance(data, list):
        return [_resolve(v, buffers) for v in data]
    if isinstance(data, dict):
        return {k: _resolve(v, buffers) for k, v in data.items()}
    return data


# ---------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------
class _Slot:
    """One batch slot inside a worker: its streams, played back to back."""

    def __init__(self, slot: int, streams: list, streamer, padding_mode: str, stats: dict,
                 ring: _Ring | None):
        self.slot = slot
        self.streams = streams
        self.streamer = streamer
        self.padding_mode = padding_mode
        self.stats = stats
        self.ring = ring
        self.pos = -1            # index in self.streams of the stream playing
        self.it = None           # its iterator
        self.passes = 0          # completed passes over self.streams
        self.yielded_in_pass = False
        self.dead = False
        self.consumed = 0        # items taken from the current stream
        self._resume = None      # (pos, consumed) to reopen at the first next_item()

    def position(self) -> tuple:
        """``(pos, consumed, passes, yielded_in_pass, dead)``: enough to continue exactly here
        (stream ``pos`` of the slot's list, after its first ``consumed`` items)."""
        return (self.pos, self.consumed, self.passes, self.yielded_in_pass, self.dead)

    def restore(self, position) -> None:
        """Continue from a :meth:`position` (the stream is reopened and its first ``consumed``
        items skipped, with the iterator's ``skip(n)`` when it has one, at the next step)."""
        pos, consumed, passes, yielded, dead = position
        self.pos, self.passes = int(pos), int(passes)
        self.yielded_in_pass, self.dead = bool(yielded), bool(dead)
        self.consumed = int(consumed)
        if not self.dead and 0 <= self.pos < len(self.streams):
            self._resume = (self.pos, self.consumed)

    def _open(self, pos: int) -> None:
        self.pos = pos
        stream = self.streams[pos]
        try:
            self.it = iter(self.streamer(stream))
        except Exception as exc:   # noqa: BLE001
            _raise_for(exc, stream, self.slot)
        self.consumed = 0
        self.stats["streams_opened"] = self.stats.get("streams_opened", 0) + 1

    def _skip(self, n: int) -> None:
        """Skip the first ``n`` items of the stream just opened."""
        stream = self.streams[self.pos]
        skip = getattr(self.it, "skip", None)
        try:
            if callable(skip):
                skip(n)
            else:
                for _ in range(n):
                    self._next_of_current()
        except StopIteration:
            self._finish_current()
        except _Stopped:
            raise
        except Exception as exc:   # noqa: BLE001
            _raise_for(exc, stream, self.slot)
        self.consumed = n

    def _finish_current(self) -> None:
        it, self.it = self.it, None
        close = getattr(it, "close", None)
        if close is not None:
            close()
        _add_stats(self.stats, getattr(it, "stats", None))

    def _next_of_current(self):
        global _context
        previous = _context
        _context = None if self.ring is None else [self.ring, self.slot, 0]
        try:
            return next(self.it)
        finally:
            _context = previous

    def next_item(self):
        """``(item or None, first pass done)`` for the next step."""
        if self._resume is not None:
            (pos, consumed), self._resume = self._resume, None
            self._open(pos)
            if consumed:
                self._skip(consumed)
        while True:
            if self.it is not None:
                stream = self.streams[self.pos]
                try:
                    item = self._next_of_current()
                except StopIteration:
                    self._finish_current()
                except _Stopped:
                    raise
                except Exception as exc:   # noqa: BLE001 - re-raised naming the stream
                    _raise_for(exc, stream, self.slot)
                else:
                    self.consumed += 1
                    self.yielded_in_pass = True
                    return item, self.passes > 0
            if self.dead:
                return None, True
            self.pos += 1
            if self.pos >= len(self.streams):
                self.passes += 1
                if self.padding_mode == "zeros" or not self.yielded_in_pass:
                    self.dead = True            # nothing left (or nothing ever: no replay)
                    return None, True
                self.pos, self.yielded_in_pass = 0, False
            self._open(self.pos)

    def close(self) -> None:
        if self.it is not None:
            self._finish_current()


class StreamDataset(torch.utils.data.IterableDataset):
    """B streams played in parallel batch slots (see the module docstring).

    Args:
        stream_list: the streams (e.g. file paths), at least one.
        streamer: ``streamer(stream)`` -> an iterable of items. If the iterator has a ``stats``
            dict of numbers, it is summed into the worker's statistics when the stream ends (after
            its ``close()``, if it has one).
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
        self.seed = 0 if seed is None else seed
        self.shuffle = bool(shuffle)
        self.epoch = epoch
        self.batch_size = make_stream_plan(len(self.stream_list), batch_size, 0, self.seed,
                                           epoch, shuffle).batch_size   # validates everything
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
        self._assign()
        needs_fill = padding_mode == "zeros" or self.batch_size > len(self.local_streams) or \
            self.world_size > 1
        if fill_value is None and needs_fill:
            raise ArgumentError(f"padding_mode={padding_mode!r} with {len(self.local_streams)} "
                                f"stream(s) for {self.batch_size} slot(s) needs a fill_value")
        self._control = None         # set on the copy a loader gives to its workers
        self._ring_depth = 0
        self._resume_positions = None   # slot -> _Slot.position(), set on a resuming copy

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

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: it seeds the shuffle (and, across ranks, ties of the split)."""
        self.epoch = check_seed("epoch", epoch)
        self._assign()

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

    def iter_worker(self, worker_id: int, num_workers: int):
        """The messages (:data:`StreamMessage`) of worker ``worker_id`` of ``num_workers``: one per
        step while one of its slots has data (for ever in ``"data"`` mode), then a last message
        with ``step == -1`` and the worker's statistics."""
        plan = self.plan(num_workers)
        slots = plan.worker_slots[worker_id] if worker_id < plan.num_workers else ()
        ring = None
        if self._control is not None and torch.utils.data.get_worker_info() is not None:
            ring = _Ring(worker_id, self._control, self._ring_depth)
        stats: dict = {"rss_start_mb": _proc_status_mb("VmRSS") or 0.0}
        streams = self.slot_stream_lists(plan)
        states = [_Slot(s, streams[s], self.streamer, self.padding_mode, stats, ring)
                  for s in slots]
        if self._resume_positions is not None:
            for state in states:
                position = self._resume_positions.get(state.slot)
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
        except _Stopped:
            return
        finally:
            for state in states:
                state.close()
        wait = ring.wait_s if ring is not None else 0.0
        stats.update(steps=step, produce_s=produce - wait, ring_wait_s=wait, outside_s=outside,
                     cpu_s=time.process_time() - cpu_start,
                     peak_rss_mb=_proc_status_mb("VmHWM") or 0.0)
        yield StreamMessage(worker_id, -1, tuple(slots), None, None, stats, None, None)


# ---------------------------------------------------------------------------------------------
# main side
# ---------------------------------------------------------------------------------------------
def _identity(x):
    return x


def _to_device(data, device):
    if isinstance(data, torch.Tensor):
        return data.to(device)
    if isinstance(data, dict):
        return {k: _to_device(v, device) for k, v in data.items()}
    if isinstance(data, list):
        return [_to_device(v, device) for v in data]
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return tuple(_to_device(v, device) for v in data)
    return data


class StreamDataLoader(DatasetShardView):
    """Batches of a :class:`StreamDataset`, one per step, computed by ``num_workers`` processes.

    Args:
        dataset: the :class:`StreamDataset`.
        num_workers: worker processes (0: in the main process). At most ``B`` are started.
        collate_fn: ``collate_fn(list of B items)`` -> batch; it must copy the items' tensors
            (ring buffers are reused once it returns).
        prefetch_factor: steps each worker may have in flight (torch's ``prefetch_factor``).
        ring_depth: shared-memory ring buffers per slot output (see the module docstring); a
            worker can be this many steps ahead of the main process.
        multiprocessing_context: torch's ``multiprocessing_context`` (default: the platform's).
        timeout: seconds to wait for a worker's next step (default 300; 0 or None: forever). A
            silent worker is a :class:`~evstream.errors.WorkerTimeoutError` naming it and the
            recordings of its slots, and the iteration's workers are stopped (see
            :mod:`evstream.data._workers`).

    Iterating yields batches (every ``torch.Tensor`` moved to :attr:`device`); several iterations
    may run at once, each with its own workers. :attr:`stats` holds the timings of the last (or
    current) iteration: ``main`` (``wait_s``: time blocked on workers, including receiving their
    messages; ``collate_s``; ``batches``) and ``workers`` (one dict per worker, filled when it
    finishes: ``produce_s``, time computing its steps; ``ring_wait_s``, time waiting for the main
    process to free a ring buffer; ``outside_s``, time between handing a step over and being
    asked for the next, i.e. sending it plus idling; ``cpu_s``, CPU time of the worker process
    while it ran; the streams' statistics; ``peak_rss_mb``).
    """

    def __init__(self, dataset: StreamDataset, num_workers: int, collate_fn, *,
                 prefetch_factor: int = 2, ring_depth: int = 3, multiprocessing_context=None,
                 timeout=DEFAULT_WORKER_TIMEOUT_S):
        if not isinstance(dataset, StreamDataset):
            raise ArgumentError(f"dataset must be a StreamDataset, got {type(dataset).__name__}")
        if isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 0:
            raise ArgumentError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        if int(ring_depth) < 1 or int(prefetch_factor) < 1:
            raise ArgumentError(f"ring_depth and prefetch_factor must be >= 1, got {ring_depth}, "
                                f"{prefetch_factor}")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self.prefetch_factor = int(prefetch_factor)
        self.ring_depth = int(ring_depth)
        self.multiprocessing_context = multiprocessing_context
        self.timeout = check_timeout(timeout)
        self.device = torch.device("cpu")
        self.stats: dict = {}
        self._state = self._fresh_state()
        self._resume = None          # a state to continue from at the next iter()

    # ------------------------------------------------------------------ distributed / resume
    def __len__(self) -> int:
        """Batches per epoch, when the streams' lengths are known (always with several ranks)."""
        if self.dataset.num_batches is None:
            raise TypeError("the number of batches is unknown: the streams' lengths were not "
                            "given")
        return self.dataset.num_batches

    def __bool__(self) -> bool:
        return True

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (as torch's ``DistributedSampler.set_epoch``). A resume position
        loaded for another epoch is dropped."""
        epoch = check_seed("epoch", epoch)
        if epoch != self.dataset.epoch:
            self._resume = None
            self.dataset.set_epoch(epoch)
            self._state = self._fresh_state()

    def _fresh_state(self) -> dict:
        return {"kind": "StreamDataLoader", "version": 1, "epoch": self.dataset.epoch,
                "seed": self.dataset.seed, "rank": self.dataset.rank,
                "world_size": self.dataset.world_size, "batch_size": self.dataset.batch_size,
                "num_batches": self.dataset.num_batches, "batches_yielded": 0,
                "finished": False, "slots": {}}

    def state_dict(self) -> dict:
        """Where the current (or last) iteration is: the batches yielded and, per batch slot,
        the stream it plays and how many of its items were consumed (plain Python values)."""
        state = dict(self._state)
        state["slots"] = {int(k): list(v) for k, v in state["slots"].items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict`: the next ``iter()`` yields the batches that followed
        in the uninterrupted run (every slot reopens its stream and skips what was consumed,
        seeking when the stream's iterator has ``skip(n)``). A state taken at the end of an epoch
        starts a new pass, as torchdata's ``StatefulDataLoader`` does. Build the loader with the
        same streams and options; ``seed`` and ``epoch`` are taken from the state."""
        if not isinstance(state, dict) or state.get("kind") != "StreamDataLoader":
            raise ArgumentError(f"not a StreamDataLoader state: {state!r:.200}")
        if (state["rank"], state["world_size"]) != (self.rank, self.world_size):
            raise ArgumentError(f"the state is for rank {state['rank']} of "
                                f"{state['world_size']}, this loader is rank {self.rank} of "
                                f"{self.world_size}: an exact resume needs the same world size")
        if state["batch_size"] != self.batch_size:
            raise ArgumentError(f"the state is for batch_size {state['batch_size']}, this loader "
                                f"has {self.batch_size}")
        self.dataset.seed = check_seed("seed", state["seed"])
        self.dataset.set_epoch(state["epoch"])
        self._state = dict(state)
        self._resume = None if state["finished"] else dict(state)

    def _track(self, yielded: int, positions: dict, finished: bool) -> None:
        self._state = {**self._fresh_state(), "batches_yielded": yielded, "finished": finished,
                       "slots": dict(positions)}

    @property
    def batch_size(self) -> int:
        return self.dataset.batch_size

    def plan(self) -> StreamPlan:
        """The assignment this loader uses (see :mod:`evstream.data.stream_plan`)."""
        return self.dataset.plan(self.num_workers)

    # ------------------------------------------------------------------ device
    def cuda(self, device=torch.device("cuda")):
        if not torch.cuda.is_available():
            raise ArgumentError("CUDA is not available")
        self.device = torch.device(device)
        return self

    def to(self, device):
        self.device = torch.device(device)
        return self

    def cpu(self):
        self.device = torch.device("cpu")
        return self

    def _to_device(self, batch):
        return batch if self.device.type == "cpu" else _to_device(batch, self.device)

    # ------------------------------------------------------------------ iteration
    def __iter__(self):
        plan = self.plan()
        workers = plan.num_workers
        fill = self.dataset.fill_value
        resume, self._resume = self._resume, None
        first = int(resume["batches_yielded"]) if resume else 0
        positions = {int(k): tuple(v) for k, v in resume["slots"].items()} if resume else {}
        target = self.dataset.num_batches
        source = self.dataset
        if positions:
            source = copy.copy(self.dataset)
            source._resume_positions = dict(positions)
        self._track(first, positions, False)
        stats = {"main": {"wait_s": 0.0, "collate_s": 0.0, "batches": 0},
                 "workers": [None] * workers}
        self.stats = stats
        control = None
        if self.num_workers == 0:
            messages = torch_iter = source.iter_worker(0, 1)
        else:
            control = torch.zeros(workers + 1, dtype=torch.int64).share_memory_()
            dataset = copy.copy(source)
            dataset._control, dataset._ring_depth = control, self.ring_depth
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=workers, collate_fn=_identity,
                prefetch_factor=self.prefetch_factor,
                multiprocessing_context=self.multiprocessing_context, timeout=self.timeout)
            messages = torch_iter = iter(loader)
        ctl = None if control is None else control.numpy()
        buffers = [dict() for _ in range(workers)]
        queues = [deque() for _ in range(workers)]
        ended = [False] * workers
        try:
            step = 0
            while True:
                if target is not None and first + step >= target:
                    break
                t0 = time.perf_counter()
                while any(not q and not e for q, e in zip(queues, ended)):
                    dog = Watchdog(torch_iter if self.num_workers else None, self.timeout)
                    try:
                        with dog:
                            msg = next(messages)
                    except StopIteration:
                        raise RuntimeError("a stream worker stopped without its last "
                                           "message") from None
                    except Exception as exc:
                        if not (dog.fired or is_timeout(exc)):
                            raise
                        worker = dog.waiting if dog.fired else waiting_worker(torch_iter)
                        raise self._timeout_error(worker, plan, positions,
                                                  first + step) from None
                    if msg.step < 0:
                        ended[msg.worker] = True
                        stats["workers"][msg.worker] = msg.stats
                    else:
                        queues[msg.worker].append(msg)
                stats["main"]["wait_s"] += time.perf_counter() - t0
                items = [None] * plan.batch_size
                done = [True] * plan.batch_size
                senders = []
                for w, q in enumerate(queues):
                    if not q:
                        for slot in plan.worker_slots[w]:        # ended: its slots are done
                            p = positions.get(slot, (-1, 0, 0, False, False))
                            positions[slot] = tuple(p[:4]) + (True,)
                        continue
                    msg = q.popleft()
                    if msg.step != step:
                        raise RuntimeError(f"stream worker {msg.worker} sent step {msg.step} "
                                           f"when step {step} was expected")
                    senders.append(msg.worker)
                    if msg.new_buffers:
                        buffers[msg.worker].update(msg.new_buffers)
                    for slot, item, flag, position in zip(msg.slots, msg.items,
                                                          msg.first_pass_done, msg.positions):
                        if item is not None and buffers[msg.worker]:
                            item = _resolve(item, buffers[msg.worker])
                        items[slot], done[slot] = item, flag
                        positions[slot] = position
                if all(done) and target is None:
                    break
                if fill is None and any(item is None for item in items):
                    raise ArgumentError("a slot has no data at this step and the dataset has no "
                                        "fill_value")
                t1 = time.perf_counter()
                batch = self.collate_fn([fill if item is None else item for item in items])
                del items
                if ctl is not None:
                    for w in senders:
                        ctl[w] = step + 1          # its ring buffers of this step are free
                batch = self._to_device(batch)
                stats["main"]["collate_s"] += time.perf_counter() - t1
                stats["main"]["batches"] += 1
                step += 1
                self._track(first + step, positions,
                            target is not None and first + step >= target)
                yield batch
            self._track(first + step, positions, True)
        finally:
            if ctl is not None:
                ctl[-1] = 1                          # wake and stop workers waiting on the ring
            if self.num_workers == 0:
                messages.close()
            else:
                stop_workers(torch_iter)

    def _timeout_error(self, worker, plan: StreamPlan, positions: dict,
                       batch: int) -> WorkerTimeoutError:
        """The error of a worker silent for ``timeout`` s: its slots and their recordings."""
        slots = plan.worker_slots[worker] if worker is not None else []
        streams = self.dataset.slot_stream_lists(plan)
        names = []
        for slot in slots:                # the stream at the last step received and the next
            pos = max(int(positions.get(slot, (0,))[0]), 0)
            for stream in streams[slot][pos:pos + 2]:
                if _stream_name(stream) not in names:
                    names.append(_stream_name(stream))
        who = "a stream worker" if worker is None else f"stream worker {worker}"
        return WorkerTimeoutError(f"{who} sent nothing for {self.timeout:g} s (stopped or "
                                  f"deadlocked?) while making batch {batch}, slots "
                                  f"{list(slots)}, reading {', '.join(names) or 'nothing'}; the "
                                  f"workers were stopped (timeout= sets the limit)")
