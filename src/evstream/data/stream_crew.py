"""The worker processes of a :class:`~evstream.data.stream.StreamDataLoader` iteration, and the
workers it keeps from one iteration to the next (``persistent_workers=True``): a :class:`Crew`.

Every iteration with workers runs on a crew. Without ``persistent_workers`` the crew is stopped
when the iteration ends, so every epoch and every validation pass starts new processes, and a
new worker maps the pages of the loader's shared batch arrays again, one page fault per 4 KiB
it writes: for RVT's gen4 batches (6 arrays of 92 MiB) 118 000 faults and 0.4-0.6 s of system
time per epoch, the same total for one worker or two (measured by hand; README, "gen4 training
batches"). A persistent crew's workers are torch's persistent workers: they stay alive between
iterations and keep what they mapped and loaded (the batch arrays' pages, numba's kernels, the
RAW seek indexes kept in memory), and the crew keeps its shared tensors (control tensor, batch
pool, order buffer) for them.

**One iteration with a crew.** :meth:`Crew.start` zeroes the control tensor, restarts the pool,
writes the iteration's *order* (seed, epoch and slot positions,
:func:`~evstream.data.stream_dataset.write_order`) and resumes the workers (torch sends each
its ``_ResumeIteration``; the worker then calls ``iter()`` on its
:class:`~evstream.data.stream_dataset.WorkerDataset`, which reads the order). :meth:`Crew.finish`
ends the iteration, whether it ran to its end or was left early: it raises the stop flag
(each worker ends its iteration before its next step) and receives what the workers still send
until torch's iterator ends, so that no worker is left inside the iteration when the next
order is written. A crew whose iteration failed (a worker error, a timeout) or could not be
finished is stopped (:meth:`Crew.stop`); the next iteration starts new workers.

What reaches kept workers is the order only: the seed and the epoch (``set_epoch``,
``load_state_dict``) and the resume positions. Other changes made to the loader's dataset after
the workers started do not reach them, as with torch's ``persistent_workers``.
"""

from __future__ import annotations

import torch

from evstream.data._workers import (Watchdog, forget_worker_pids, stop_workers, watch_worker_pids,
                                    workers_alive)
from evstream.data.stream_dataset import WorkerDataset, WorkerSpec, write_order
from evstream.data.stream_ring import BatchPool

__all__ = ["Crew"]

#: bytes of a crew's order buffer, at least (an order of a few slots takes some 100 bytes)
MIN_ORDER_BYTES = 1 << 16


def _identity(x):
    return x


class Crew:
    """A torch ``DataLoader`` over a :class:`~evstream.data.stream_dataset.WorkerDataset` of
    ``dataset``, and the shared tensors its workers use: the workers of one iteration of a
    stream loader, or of several when ``persistent`` (module docstring).

    Args:
        dataset: the loader's :class:`~evstream.data.stream_dataset.StreamDataset` (the workers
            get a copy when they start).
        workers: worker processes (the plan's ``num_workers``).
        ring_depth, prefetch_factor, multiprocessing_context, timeout, batch_output: the
            loader's (``timeout``: seconds, 0 for none).
        pool: the batch arrays of ``batch_output`` the workers write in place (None: none);
            the crew keeps it.
        persistent: torch's ``persistent_workers`` (else the workers end with the iteration).
        order_bytes: least size of the order buffer.
    """

    def __init__(self, dataset, workers: int, ring_depth: int, prefetch_factor: int,
                 multiprocessing_context, timeout: float, batch_output, *,
                 pool: BatchPool | None, persistent: bool, order_bytes: int = MIN_ORDER_BYTES):
        self.key = (workers, ring_depth, prefetch_factor, multiprocessing_context, timeout,
                    batch_output)
        self.timeout = timeout
        self.pool = pool
        self.control = torch.zeros(workers + 1, dtype=torch.int64).share_memory_()
        self.order = torch.zeros(max(int(order_bytes), MIN_ORDER_BYTES),
                                 dtype=torch.uint8).share_memory_()
        spec = WorkerSpec(self.control, ring_depth, {}, None if pool is None else pool.share,
                          self.order)
        self._torch_loader = torch.utils.data.DataLoader(
            WorkerDataset(dataset, spec), batch_size=None, num_workers=workers,
            collate_fn=_identity, prefetch_factor=prefetch_factor,
            persistent_workers=persistent, multiprocessing_context=multiprocessing_context,
            timeout=timeout)
        self._iterator = None

    def fits(self, key: tuple, batch_size: int) -> bool:
        """Whether this crew serves an iteration of configuration ``key`` (as :attr:`key`) and
        batches of ``batch_size``."""
        if key != self.key:
            return False
        ring_depth, batch_output = key[1], key[5]
        return self.pool is None or self.pool.fits(*batch_output, batch_size, ring_depth)

    def start(self, seed: int, epoch: int, positions: dict):
        """Begin an iteration: returns torch's iterator of the workers' messages, or None when
        the order does not fit in this crew's buffer or a kept worker has died (then stop the
        crew and make another)."""
        kept = self._iterator
        if kept is not None and not workers_alive(kept):
            return None                                   # a kept worker died while waiting
        self.control.zero_()
        if not write_order(self.order, seed, epoch, positions):
            return None
        if self.pool is not None:
            self.pool.restart()
        if kept is not None:
            watch_worker_pids(kept)
        self._iterator = iter(self._torch_loader)
        return self._iterator

    def finish(self, stats: dict) -> bool:
        """End the iteration (module docstring); the statistics of workers that send their last
        message now go into ``stats["workers"]``. Returns whether the crew can serve another
        iteration (False: it was stopped)."""
        iterator = self._iterator
        if iterator is None:
            return True
        self.control[-1] = 1
        try:
            while True:
                with Watchdog(iterator, self.timeout):
                    msg = next(iterator)
                if msg.step < 0:
                    stats["workers"][msg.worker] = msg.stats
        except StopIteration:
            forget_worker_pids(iterator)      # waiting workers: a death is seen at start()
            return True
        except Exception:       # noqa: BLE001 (a worker failed on its way out: start anew)
            self.stop()
            return False

    def stop(self) -> None:
        """Stop the workers for good (killed if they do not exit)."""
        if self._iterator is not None:
            self.control[-1] = 1
            stop_workers(self._iterator)
        self._iterator = None
        self._torch_loader = None
