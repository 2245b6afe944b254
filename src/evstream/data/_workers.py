"""Worker processes of the loaders: the timeout, and stopping them for good.

Both loaders (:class:`~evstream.data.SequentialDataLoader`, :class:`~evstream.data.stream.
StreamDataLoader` and so :class:`~evstream.data.cd_processor_dataset.CDProcessorDataLoader`) run
their workers through a ``torch.utils.data.DataLoader`` and take its ``timeout=``: the seconds the
main process waits for the next result of a worker. A worker that sends nothing for that long
(stopped with SIGSTOP, deadlocked in a user ``load_labels``, stuck on a hung file system) becomes
a :class:`~evstream.errors.WorkerTimeoutError` naming the worker and the recordings it was
reading, and every worker of the iteration is stopped (killed if it does not exit).

**Default: 300 s** (:data:`DEFAULT_WORKER_TIMEOUT_S`). One result is one batch (map-style loader)
or one step (stream loader): normally a fraction of a second per slot, plus the worker start and
the file openings for the first one. Five minutes leaves a wide margin for slow disks and large
batches and still ends a stuck job within minutes instead of never. Pass a larger value for very slow storage, ``0`` or ``None``
to wait forever (torch's default). With ``num_workers=0`` nothing runs elsewhere and the timeout
does not apply.
"""

from __future__ import annotations

import math
import multiprocessing
import threading

from evstream.errors import ArgumentError

#: Seconds the main process waits for a worker's next result (see the module docstring).
DEFAULT_WORKER_TIMEOUT_S = 300.0


def starts_by_fork(context) -> bool:
    """Whether the workers of a DataLoader given ``multiprocessing_context=context`` (None: the
    process's default start method, a start-method name, or a context) are forked."""
    if context is None:
        return multiprocessing.get_start_method() == "fork"
    if isinstance(context, str):
        return context == "fork"
    return context.get_start_method() == "fork"


def check_timeout(timeout) -> float:
    """``timeout`` as torch's DataLoader takes it: seconds > 0, or 0 for none (``None`` too)."""
    if timeout is None:
        return 0.0
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ArgumentError(f"timeout must be a number of seconds or None, got {timeout!r}") from None
    if isinstance(timeout, bool) or math.isnan(value) or value < 0:
        raise ArgumentError(f"timeout must be >= 0 seconds (0 or None: no timeout), got {timeout!r}")
    return 0.0 if math.isinf(value) else value


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's "DataLoader timed out after N seconds"."""
    return isinstance(exc, RuntimeError) and "DataLoader timed out after" in str(exc)


def waiting_worker(torch_iterator) -> int | None:
    """The id of the silent worker: a worker process that is stopped (SIGSTOP, Linux ``/proc``
    state ``T``), else the one whose result the main process waits for (torch hands the tasks out
    in order and collects them in order), else None if torch's iterator does not tell."""
    stopped = stopped_workers(torch_iterator)
    if stopped:
        return stopped[0]
    task_info = getattr(torch_iterator, "_task_info", None)
    rcvd = getattr(torch_iterator, "_rcvd_idx", None)
    if not isinstance(task_info, dict) or rcvd not in task_info:
        return None
    return int(task_info[rcvd][0])


def stopped_workers(torch_iterator) -> list[int]:
    """Ids of the workers whose process is stopped (job-control stop or traced), from Linux's
    ``/proc/<pid>/stat``; [] elsewhere. A stopped worker also blocks the main process while it
    unpickles a message of that worker (its shared-memory tensors are fetched from it), whatever
    task torch waits for."""
    found = []
    for worker_id, process in enumerate(getattr(torch_iterator, "_workers", ())):
        try:
            with open(f"/proc/{process.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError, TypeError):
            continue
        if state in ("T", "t"):
            found.append(worker_id)
    return found


def pending_tasks(torch_iterator, worker: int) -> list[int]:
    """The task indices (batch or step numbers, from 0 at the iterator's start) handed to
    ``worker`` whose results have not arrived: the one the main process waits for and the ones
    the worker took after it (a result already made can still sit in a stopped worker's queue
    thread, so the worker may be stuck on any of them)."""
    task_info = getattr(torch_iterator, "_task_info", None)
    if not isinstance(task_info, dict):
        return []
    return sorted(i for i, info in task_info.items() if len(info) == 1 and info[0] == worker)


class Watchdog:
    """Guards one wait for a worker's result: torch's own ``timeout`` covers the wait for a
    message, not its unpickling, which fetches each shared-memory tensor from the sending
    worker's resource-sharer thread and blocks forever if that worker was stopped right after
    queueing it. If the guarded call lasts ``timeout + 1`` s, the watchdog kills the workers,
    which ends the blocked read with an error, and :attr:`fired` tells it was a timeout.

    Usage: ``with Watchdog(iterator, timeout) as dog: next(iterator)``; no-op for timeout 0.
    """

    def __init__(self, torch_iterator, timeout: float):
        self.torch_iterator = torch_iterator
        self.timeout = float(timeout)
        self.fired = False
        self.waiting = None          # the worker waited for when it fired
        self._timer = None

    def _fire(self) -> None:
        self.fired = True
        self.waiting = waiting_worker(self.torch_iterator)
        forget_worker_pids(self.torch_iterator)
        for process in getattr(self.torch_iterator, "_workers", ()):
            if process.is_alive():
                process.kill()

    def __enter__(self) -> "Watchdog":
        if self.timeout > 0 and self.torch_iterator is not None:
            self._timer = threading.Timer(self.timeout + 1.0, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
            # the timer holds this watchdog (its function), which holds the iterator: without
            # this, the iterator (and a kept crew's workers) would wait for the cycle collector
            self._timer = None


def workers_alive(torch_iterator) -> bool:
    """Whether every worker process of a torch DataLoader iterator is alive."""
    return all(w.is_alive() for w in getattr(torch_iterator, "_workers", ()))


def forget_worker_pids(torch_iterator) -> None:
    """Take the iterator's workers out of torch's SIGCHLD check before killing them: else the
    death of a worker killed here is raised by torch's signal handler as a RuntimeError in
    whatever the main thread runs at that moment (for example while it builds the
    WorkerTimeoutError naming that worker)."""
    if getattr(torch_iterator, "_worker_pids_set", False):
        from torch.utils.data._utils import signal_handling
        try:
            signal_handling._remove_worker_pids(id(torch_iterator))
        except (RuntimeError, ValueError):      # already removed: nothing left to check
            pass
        torch_iterator._worker_pids_set = False


def watch_worker_pids(torch_iterator) -> None:
    """Put the iterator's workers back into torch's SIGCHLD check (undoes
    :func:`forget_worker_pids`; kept workers are taken out of it while they wait for the next
    iteration, so that one dying then is not raised in whatever the main thread runs)."""
    if not getattr(torch_iterator, "_worker_pids_set", True):
        from torch.utils.data._utils import signal_handling
        signal_handling._set_worker_pids(id(torch_iterator),
                                         tuple(w.pid for w in torch_iterator._workers))
        torch_iterator._worker_pids_set = True


def stop_workers(torch_iterator) -> None:
    """Shut the workers of a torch DataLoader iterator down and kill those still alive (a stopped
    process ignores the SIGTERM torch sends until it is continued)."""
    if torch_iterator is None:
        return
    shutdown = getattr(torch_iterator, "_shutdown_workers", None)
    if shutdown is not None:
        try:
            shutdown()
        except RuntimeError:
            # torch's SIGCHLD handler reports a worker killed by the watchdog (or by this
            # function) while the shutdown joins it: expected here, and the error being raised
            # (a WorkerTimeoutError naming the worker) must not be replaced by it
            pass
    for process in getattr(torch_iterator, "_workers", ()):
        if process.is_alive():
            process.kill()
            process.join(5)
