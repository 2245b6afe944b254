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
``CDProcessorDataLoader`` does) writes them, in a worker, straight into reusable shared-memory
buffers, and messages carry only a reference to them (:mod:`evstream.data.stream_ring`), so
``collate_fn`` must copy tensors (``torch.stack`` and the loaders' collate functions do). This
removes a shared-memory allocation and a mapping per item per step (see
``benchmarks/bench_stream.py``). Tensors not made by :func:`stream_output` travel the usual torch
way.

**Modules.** :mod:`evstream.data.stream_dataset` (the dataset and the worker loop),
:mod:`evstream.data.stream_slot` (one slot's state machine), :mod:`evstream.data.stream_ring`
(the ring and :func:`stream_output`), :mod:`evstream.data._loader` (what this loader shares with
:class:`~evstream.data.sequential_dataset.SequentialDataLoader`); this module: the loader.

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

import pickle
import time
from collections import deque

import torch

from evstream.data._loader import LoaderBase, check_state
from evstream.data._workers import (DEFAULT_WORKER_TIMEOUT_S, Watchdog, check_timeout,
                                    is_timeout, waiting_worker)
from evstream.data.stream_crew import Crew
from evstream.data.stream_dataset import (PADDING_MODES, StreamDataset, StreamMessage,
                                          WorkerSpec)
from evstream.data.stream_plan import StreamPlan
from evstream.data.stream_ring import BatchPool, resolve_refs, stream_output
from evstream.data.stream_slot import stream_name
from evstream.errors import ArgumentError, StreamReadError, WorkerTimeoutError

__all__ = ["StreamDataset", "StreamDataLoader", "StreamReadError", "StreamMessage",
           "stream_output", "PADDING_MODES"]


class StreamDataLoader(LoaderBase):
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
        batch_output: ``(shape, dtype)`` of the first tensor each item gets from
            :func:`stream_output` (``[T, ...]``), when every item has one and ``collate_fn``
            batches it with :func:`~evstream.data.sequential_dataset_common.stack_inputs`: the
            workers then write it in place into shared batch arrays ``[T, B, ...]`` that
            become the batches without a copy (:class:`~evstream.data.stream_ring.BatchPool`;
            ``ring_depth + 3`` arrays). None (default): every item is copied into its batch.
        warm_up: with forked workers, compute one item in this process before the first
            iteration starts them (:meth:`StreamDataset.warm_up`), so that the workers of every
            epoch inherit the loaded numba kernels (off by default: it runs the streamer once in
            this process; evstream's loaders turn it on).
        timeout: seconds to wait for a worker's next step (default 300; 0 or None: forever). A
            silent worker is a :class:`~evstream.errors.WorkerTimeoutError` naming it and the
            recordings of its slots, and the iteration's workers are stopped (see
            :mod:`evstream.data._workers`).
        persistent_workers: keep the workers alive from one iteration to the next (torch's
            ``persistent_workers``; :mod:`evstream.data.stream_crew`): a later epoch starts
            without new processes and without mapping the shared batch arrays again. The kept
            workers get each iteration's seed, epoch and resume positions; other changes to
            the dataset after they started do not reach them. :meth:`close` stops them (so does
            deleting the loader). No effect with ``num_workers=0``.

    Iterating yields batches (moved to :attr:`device` by the rule of :mod:`evstream.data._loader`:
    every ``torch.Tensor`` but the values of a dict's ``labels``, ``frame_is_labeled`` and
    ``video_infos``); several iterations may run at once, each with its own workers. :attr:`stats` holds the timings of the last (or
    current) iteration: ``main`` (``wait_s``: time blocked on workers, including receiving their
    messages; ``collate_s``; ``batches``) and ``workers`` (one dict per worker, filled when it
    finishes: ``produce_s``, time computing its steps; ``ring_wait_s``, time waiting for the main
    process to free a ring buffer; ``outside_s``, time between handing a step over and being
    asked for the next, i.e. sending it plus idling; ``cpu_s``, CPU time of the worker process
    while it ran; the streams' statistics; ``peak_rss_mb``).
    """

    def __init__(self, dataset: StreamDataset, num_workers: int, collate_fn, *,
                 prefetch_factor: int = 2, ring_depth: int = 3, multiprocessing_context=None,
                 timeout=DEFAULT_WORKER_TIMEOUT_S, warm_up: bool = False, batch_output=None,
                 persistent_workers: bool = False):
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
        self.warm_up = bool(warm_up)
        self.batch_output = None if batch_output is None else \
            (tuple(int(n) for n in batch_output[0]), batch_output[1])
        self.timeout = check_timeout(timeout)
        self.persistent_workers = bool(persistent_workers)
        self._idle_pool: BatchPool | None = None      # kept from one iteration to the next
        self._idle_crew: Crew | None = None           # the same, for persistent workers
        self.device = torch.device("cpu")
        self.stats: dict = {}
        self._state = self._fresh_state()
        self._resume = None          # a state to continue from at the next iter()

    # ------------------------------------------------------------------ distributed / resume
    state_kind = "StreamDataLoader"

    def __len__(self) -> int:
        """Batches per epoch, when the streams' lengths are known (always with several ranks)."""
        if self.dataset.num_batches is None:
            raise TypeError("the number of batches is unknown: the streams' lengths were not "
                            "given")
        return self.dataset.num_batches

    def __bool__(self) -> bool:
        return True

    def _on_epoch(self, changed: bool) -> None:
        if changed:
            self._resume = None
            self._state = self._fresh_state()

    def _fresh_state(self) -> dict:
        return {**self._state_header(self.dataset.num_batches), "batches_yielded": 0,
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
        check_state(state, self.state_kind, self.rank, self.world_size, self.batch_size)
        self.dataset.reseed(state["seed"], state["epoch"])
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

    # ------------------------------------------------------------------ iteration
    def __iter__(self):
        resume, self._resume = self._resume, None
        first = int(resume["batches_yielded"]) if resume else 0
        positions = {int(k): tuple(v) for k, v in resume["slots"].items()} if resume else {}
        target = self.dataset.num_batches
        self._track(first, positions, False)
        if self.warm_up:
            self._warm_up_before_fork(self.multiprocessing_context)
        run = _Iteration(self, positions)
        main = run.stats["main"]
        self.stats = run.stats
        ended = False                  # normally, or left by the caller (not by an error)
        try:
            step = 0
            while target is None or first + step < target:
                t0 = time.perf_counter()
                run.receive_step(first + step)
                main["wait_s"] += time.perf_counter() - t0
                items, done, senders = run.take_step(step)
                if all(done) and target is None:
                    break
                t1 = time.perf_counter()
                batch = self._collate(items)
                del items
                run.release(senders, step)
                batch = self._to_device(batch)
                main["collate_s"] += time.perf_counter() - t1
                main["batches"] += 1
                step += 1
                self._track(first + step, run.positions,
                            target is not None and first + step >= target)
                try:
                    yield batch
                except GeneratorExit:
                    ended = True
                    raise
            self._track(first + step, run.positions, True)
            ended = True
        finally:
            run.close(keep_workers=ended)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_idle_crew"] = None        # processes do not travel; a copy starts its own
        return state

    def close(self) -> None:
        """Stop the workers kept by ``persistent_workers`` (the next iteration starts new
        ones); nothing else to release."""
        crew, self._idle_crew = self._idle_crew, None
        if crew is not None:
            crew.stop()

    def _crew_key(self, workers: int) -> tuple:
        """What a crew of ``workers`` workers is made with (see :class:`~evstream.data.
        stream_crew.Crew`), but its pool."""
        return (workers, self.ring_depth, self.prefetch_factor, self.multiprocessing_context,
                self.timeout, self.batch_output)

    def _take_crew(self, batch_size: int, workers: int, positions: dict):
        """The workers of one iteration and torch's iterator of their messages: the kept crew
        (``persistent_workers``) when it fits, else a new one (:class:`~evstream.data.
        stream_crew.Crew`; given back by :meth:`_Iteration.close`)."""
        crew, self._idle_crew = self._idle_crew, None
        if crew is not None:
            messages = None
            if crew.fits(self._crew_key(workers), batch_size):
                try:
                    messages = crew.start(self.dataset.seed, self.dataset.epoch, positions)
                except Exception:    # noqa: BLE001 (a kept worker died or froze: start anew)
                    messages = None
            if messages is not None:
                return crew, messages
            crew.stop()
        pool = None if self.batch_output is None else self._take_pool(batch_size)
        crew = Crew(self.dataset, *self._crew_key(workers), pool=pool,
                    persistent=self.persistent_workers,
                    order_bytes=2 * len(pickle.dumps(positions)) + 1024)
        return crew, crew.start(self.dataset.seed, self.dataset.epoch, positions)

    def _take_pool(self, batch_size: int) -> BatchPool:
        """A pool of batch arrays for a new crew: a kept one that fits, or a new one (returned
        by :meth:`_Iteration.close`)."""
        pool, self._idle_pool = self._idle_pool, None
        if pool is not None and pool.fits(*self.batch_output, batch_size, self.ring_depth):
            return pool
        return BatchPool(*self.batch_output, batch_size, self.ring_depth)

    def _collate(self, items: list):
        """The batch of one step's ``B`` items (None: a slot without data, filled)."""
        fill = self.dataset.fill_value
        if fill is None and any(item is None for item in items):
            raise ArgumentError("a slot has no data at this step and the dataset has no "
                                "fill_value")
        return self.collate_fn([fill if item is None else item for item in items])

    def _timeout_error(self, worker, plan: StreamPlan, positions: dict,
                       batch: int) -> WorkerTimeoutError:
        """The error of a worker silent for ``timeout`` s: its slots and their recordings."""
        slots = plan.worker_slots[worker] if worker is not None else []
        streams = self.dataset.slot_stream_lists(plan)
        names = []
        for slot in slots:                # the stream at the last step received and the next
            pos = max(int(positions.get(slot, (0,))[0]), 0)
            for stream in streams[slot][pos:pos + 2]:
                if stream_name(stream) not in names:
                    names.append(stream_name(stream))
        who = "a stream worker" if worker is None else f"stream worker {worker}"
        return WorkerTimeoutError(f"{who} sent nothing for {self.timeout:g} s (stopped or "
                                  f"deadlocked?) while making batch {batch}, slots "
                                  f"{list(slots)}, reading {', '.join(names) or 'nothing'}; the "
                                  f"workers were stopped (timeout= sets the limit)")


class _Iteration:
    """One iteration of a :class:`StreamDataLoader`, main side: its workers (torch's
    ``DataLoader`` over a :class:`~evstream.data.stream_dataset.WorkerDataset`, or the worker
    loop itself in this process with ``num_workers=0``), the messages received per worker, the
    ring buffers they mapped, and the slot positions."""

    def __init__(self, loader: StreamDataLoader, positions: dict):
        self.loader = loader
        self.plan = plan = loader.plan()
        self.positions = positions
        workers = plan.num_workers
        self.stats = {"main": {"wait_s": 0.0, "collate_s": 0.0, "batches": 0},
                      "workers": [None] * workers}
        self.in_process = loader.num_workers == 0
        self.control = None
        self.pool = None
        self.crew = None
        if self.in_process:
            spec = WorkerSpec(resume_positions=dict(positions))
            self.messages = loader.dataset.iter_worker(0, 1, spec)
        else:
            self.crew, self.messages = loader._take_crew(plan.batch_size, workers,
                                                         dict(positions))
            self.control, self.pool = self.crew.control, self.crew.pool
        self.ctl = None if self.control is None else self.control.numpy()
        self.buffers = [dict() for _ in range(workers)]     # per worker: ring id -> buffer
        self.queues = [deque() for _ in range(workers)]
        self.ended = [False] * workers

    def receive_step(self, batch: int) -> None:
        """Receive messages until every worker that has not ended has one queued (``batch``:
        the number of the batch being made, for a timeout's message)."""
        loader = self.loader
        torch_iter = None if self.in_process else self.messages
        while any(not q and not e for q, e in zip(self.queues, self.ended)):
            dog = Watchdog(torch_iter, loader.timeout)
            try:
                with dog:
                    msg = next(self.messages)
            except StopIteration:
                raise RuntimeError("a stream worker stopped without its last message") from None
            except Exception as exc:
                if not (dog.fired or is_timeout(exc)):
                    raise
                worker = dog.waiting if dog.fired else waiting_worker(torch_iter)
                raise loader._timeout_error(worker, self.plan, self.positions, batch) from None
            if msg.step < 0:
                self.ended[msg.worker] = True
                self.stats["workers"][msg.worker] = msg.stats
            else:
                self.queues[msg.worker].append(msg)

    def take_step(self, step: int) -> tuple[list, list, list]:
        """The items of ``step`` in slot order (None: no data), whether each slot has finished
        its first pass, and the workers that sent them; updates :attr:`positions`."""
        size = self.plan.batch_size
        items, done, senders = [None] * size, [True] * size, []
        for w, q in enumerate(self.queues):
            if not q:
                for slot in self.plan.worker_slots[w]:        # ended: its slots are done
                    p = self.positions.get(slot, (-1, 0, 0, False, False))
                    self.positions[slot] = tuple(p[:4]) + (True,)
                continue
            msg = q.popleft()
            if msg.step != step:
                raise RuntimeError(f"stream worker {msg.worker} sent step {msg.step} when step "
                                   f"{step} was expected")
            senders.append(msg.worker)
            buffers = self.buffers[msg.worker]
            if msg.new_buffers:
                buffers.update(msg.new_buffers)
            for slot, item, flag, position in zip(msg.slots, msg.items, msg.first_pass_done,
                                                  msg.positions):
                if item is not None and (buffers or self.pool is not None):
                    item = resolve_refs(item, buffers, self.pool)
                items[slot], done[slot] = item, flag
                self.positions[slot] = position
        return items, done, senders

    def release(self, senders: list, step: int) -> None:
        """Tell the ``senders`` that their ring buffers of ``step`` are free (collated), once the
        pool (if any) has assigned its array to step ``step + ring_depth``."""
        if self.pool is not None:
            self.pool.release(step)
        if self.ctl is not None:
            for w in senders:
                self.ctl[w] = step + 1

    def close(self, keep_workers: bool = False) -> None:
        """Stop the workers (those waiting on the ring too) and give the batch pool back to the
        loader for its next iteration; with ``persistent_workers``, when ``keep_workers`` (the
        iteration ended without an error) and the workers finish the iteration cleanly, the
        loader keeps them, with their pool, instead."""
        if self.in_process:
            self.messages.close()
            return
        crew, self.crew, self.pool = self.crew, None, None
        loader = self.loader
        if keep_workers and loader.persistent_workers and loader._idle_crew is None and \
                crew.finish(self.stats):
            loader._idle_crew = crew
            return
        crew.stop()
        if crew.pool is not None:
            loader._idle_pool = crew.pool
