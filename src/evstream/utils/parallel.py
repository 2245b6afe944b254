"""A process pool for independent jobs: :func:`run_parallel` runs a picklable function over a list
of jobs in worker processes, reports their progress in the calling process, and survives a
worker that crashes (its job fails, the others go on). Used by
:func:`~evstream.preprocessing.hdf5.generate_hdf5` and :func:`~evstream.rvt.layout_writer.precompute_rvt`.

Each worker is a fresh interpreter (``sys.executable``) that imports only this module and the
job function's module; it takes one job after another over a pipe of its own, so a run of many
inputs starts ``n_processes`` interpreters, not one per input. Unlike ``multiprocessing``'s
``spawn``, a worker does not import the caller's ``__main__`` script again (a training script's
``import torch`` alone costs a second per process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections import deque
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import Callable

from evstream.errors import ArgumentError, EvstreamError

#: seconds a worker gets to exit after its last job, or after the run was interrupted
EXIT_WAIT_S = 5.0
#: the ``silence_timeout_s`` of the precompute commands' workers (``generate_hdf5``,
#: ``precompute_rvt``): seconds without a report (a row or a frame) before a worker is taken for
#: frozen, stopped, and its input failed
WORKER_SILENCE_S = 600.0
#: the folder holding the ``evstream`` package, put first on a worker's ``sys.path`` so that
#: it imports the same evstream as the caller
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_job(func, job, report):
    """Run ``func(job, report)``; returns ("ok", result) or ("error", message)."""
    try:
        return "ok", func(job, report)
    except EvstreamError as exc:   # an error about no file in particular is about this input
        where = job.get("path") if isinstance(job, dict) and exc.path is None else None
        return "error", str(exc) if where is None else f"{where}: {exc}"
    except Exception as exc:                      # a bug or an OS error: keep the traceback tail
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return "error", f"{_job_path(job)}: {tb}"


def _stop(signum, frame) -> None:
    """SIGTERM in a worker (the caller stops it): raise KeyboardInterrupt in the job, so that
    it removes its partial outputs as it does for Ctrl-C."""
    raise KeyboardInterrupt


def _worker_main(jobs_fd: int, messages_fd: int) -> None:
    """A worker's loop: receive the caller's ``sys.path``, then the function, then
    ``(index, job)`` items until ``None``; send ``(kind, index, payload)`` messages back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the caller handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, _stop)
    jobs, messages = Connection(jobs_fd, writable=False), Connection(messages_fd, readable=False)
    sys.path[:] = jobs.recv()
    try:
        func = jobs.recv()
    except Exception as exc:                      # its module does not import here
        func, load_error = None, f"cannot load the job function in a worker: {exc!r}"
    try:
        while (item := jobs.recv()) is not None:
            index, job = item
            if func is None:
                status, value = "error", f"{_job_path(job)}: {load_error}"
            else:
                status, value = _run_job(func, job,
                                         lambda kind, payload: messages.send((kind, index, payload)))
            try:
                messages.send(("done" if status == "ok" else "failed", index, value))
            except Exception as exc:              # a result that cannot be pickled
                messages.send(("failed", index, f"{_job_path(job)}: result not sendable: {exc}"))
    except KeyboardInterrupt:                     # stopped: the job has cleaned up
        pass


class _Worker:
    """One worker process, its two pipe ends and the index of the job it runs (None: idle)."""

    def __init__(self, func) -> None:
        jobs_read, self.jobs = Pipe(duplex=False)
        self.messages, messages_write = Pipe(duplex=False)
        code = (f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); "
                f"from evstream.utils.parallel import _worker_main; "
                f"_worker_main({jobs_read.fileno()}, {messages_write.fileno()})")
        try:
            self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                            pass_fds=(jobs_read.fileno(), messages_write.fileno()))
        finally:
            jobs_read.close()
            messages_write.close()
        self.job: int | None = None
        self.heard = time.monotonic()    # when it last sent a message, or was given its job
        self.jobs.send(list(sys.path))
        self.jobs.send(func)

    def start(self, index: int, job) -> None:
        self.job = index
        self.heard = time.monotonic()
        self.jobs.send((index, job))

    def stop(self) -> None:
        """Ask the worker to exit after its job; a worker that already died is left to reap."""
        try:
            self.jobs.send(None)
        except OSError:
            pass

    def reap(self, terminate: bool) -> int | None:
        """Wait for the process to exit (terminating it first with ``terminate``); close the pipes."""
        if terminate and self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.jobs.close()
        self.messages.close()
        return code


def run_parallel(func, jobs: list, n_processes: int, on_event: Callable, *,
                 silence_timeout_s: float | None = None) -> None:
    """Run ``func(job, report)`` for every job, in up to ``n_processes`` worker processes.

    ``on_event(kind, index, payload)`` is called in this process, in order per job, for every
    ``report(kind, payload)`` of a job, then once with ``("done", index, result)`` or
    ``("failed", index, message)``. A process that dies without a result (crash, ``os._exit``,
    killed), or that sends nothing for ``silence_timeout_s`` seconds while it runs a job (None:
    no limit) and is then stopped, makes its job ``"failed"`` and is replaced; the other jobs go
    on. ``func`` must be a module-level function of an importable module (not of the
    ``__main__`` script), and jobs, reports and results picklable. With ``n_processes <= 1`` the
    jobs run here, one after the other (and no time limit applies), as they do where the
    workers' pipes cannot be handed over (not POSIX), with a warning.
    """
    if n_processes > 1 and len(jobs) > 1 and os.name != "posix":
        warnings.warn(f"run_parallel: worker processes need a POSIX system (this is {os.name!r}); "
                      f"the {len(jobs)} jobs run in this process, one after the other", stacklevel=2)
        n_processes = 1
    if n_processes <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            status, value = _run_job(func, job, lambda kind, payload, i=index: on_event(kind, i, payload))
            on_event("done" if status == "ok" else "failed", index, value)
        return
    if getattr(func, "__module__", None) == "__main__":
        raise ArgumentError(f"run_parallel: {func.__qualname__} is defined in the __main__ script; "
                            "worker processes need a function of an importable module")
    pending = deque(enumerate(jobs))
    workers: list[_Worker] = []

    def lose(worker: _Worker, why: str, terminate: bool) -> None:
        """Fail the worker's job, reap it, and start a replacement for the pending jobs."""
        workers.remove(worker)
        code = worker.reap(terminate)
        on_event("failed", worker.job, f"{_job_path(jobs[worker.job])}: worker process "
                 + (why if terminate else f"died (exit code {code}) without a result"))
        if pending:
            workers.append(_Worker(func))
            workers[-1].start(*pending.popleft())

    interrupted = True
    try:
        for _ in range(min(n_processes, len(jobs))):
            workers.append(_Worker(func))
            workers[-1].start(*pending.popleft())
        while any(w.job is not None for w in workers):
            busy = {w.messages: w for w in workers if w.job is not None}
            timeout = None if silence_timeout_s is None else max(
                0.0, min(w.heard for w in busy.values()) + silence_timeout_s - time.monotonic())
            for conn in wait(list(busy), timeout):
                worker = busy[conn]
                try:
                    kind, index, payload = conn.recv()
                except EOFError:              # died: every message it sent has been read
                    lose(worker, "", terminate=False)
                    continue
                worker.heard = time.monotonic()
                on_event(kind, index, payload)
                if kind in ("done", "failed"):
                    worker.job = None
                    if pending:
                        worker.start(*pending.popleft())
                    else:
                        worker.stop()
            if silence_timeout_s is not None:
                now = time.monotonic()
                for worker in [w for w in busy.values() if w in workers and w.job is not None
                               and now - w.heard >= silence_timeout_s]:
                    lose(worker, f"sent nothing for {silence_timeout_s:g} s (frozen?) and was "
                         "stopped", terminate=True)
        interrupted = False
    finally:
        for worker in workers:
            worker.reap(terminate=interrupted)


def _job_path(job) -> str:
    return job.get("path", "?") if isinstance(job, dict) else "?"
