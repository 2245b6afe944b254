"""A process pool for independent jobs: :func:`run_parallel` runs a picklable function over a list
of jobs in spawned processes, reports their progress in the calling process, and survives a
worker that crashes (its job fails, the others go on). Used by
:func:`~evstream.preprocessing.hdf5.generate_hdf5`."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
import traceback
from collections import deque
from typing import Callable

from evstream.errors import EvstreamError


def _run_job(func, job, report):
    """Run ``func(job, report)``; returns ("ok", result) or ("error", message)."""
    try:
        return "ok", func(job, report)
    except EvstreamError as exc:   # an error about no file in particular is about this input
        where = job.get("path") if isinstance(job, dict) and exc.path is None else None
        return "error", str(exc) if where is None else f"{where}: {exc}"
    except Exception as exc:                      # a bug or an OS error: keep the traceback tail
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return "error", f"{job.get('path', '?') if isinstance(job, dict) else '?'}: {tb}"


def _process_main(func, index, job, messages) -> None:
    def report(kind, payload):
        messages.put((kind, index, payload))
    status, value = _run_job(func, job, report)
    messages.put(("done" if status == "ok" else "failed", index, value))


def run_parallel(func, jobs: list, n_processes: int, on_event: Callable) -> None:
    """Run ``func(job, report)`` for every job, in up to ``n_processes`` spawned processes.

    ``on_event(kind, index, payload)`` is called in this process, in order per job, for every
    ``report(kind, payload)`` of a job, then once with ``("done", index, result)`` or
    ``("failed", index, message)``. A process that dies without a result (crash, ``os._exit``,
    killed) makes its job ``"failed"``; the other jobs go on. ``func`` must be picklable (a
    module-level function). With ``n_processes <= 1`` the jobs run here, one after the other.
    """
    if n_processes <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            status, value = _run_job(func, job, lambda kind, payload, i=index: on_event(kind, i, payload))
            on_event("done" if status == "ok" else "failed", index, value)
        return
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    pending = deque(range(len(jobs)))
    running: dict[int, multiprocessing.process.BaseProcess] = {}
    exited_at: dict[int, float] = {}
    finished: set[int] = set()

    def handle(message) -> None:
        kind, index, payload = message
        if index in finished:
            return
        if kind in ("done", "failed"):
            finished.add(index)
        on_event(kind, index, payload)

    try:
        while pending or running:
            while pending and len(running) < n_processes:
                index = pending.popleft()
                process = ctx.Process(target=_process_main, args=(func, index, jobs[index], messages),
                                      daemon=True)
                process.start()
                running[index] = process
            try:
                handle(messages.get(timeout=0.1))
                while True:
                    handle(messages.get_nowait())
            except queue_module.Empty:
                pass
            now = time.monotonic()
            for index, process in list(running.items()):
                if index in finished:
                    process.join()
                    del running[index]
                elif not process.is_alive():
                    # its last messages may still be in the pipe: wait a little for them
                    if now - exited_at.setdefault(index, now) > 2.0:
                        finished.add(index)
                        del running[index]
                        on_event("failed", index, f"{_job_path(jobs[index])}: worker process died "
                                 f"(exit code {process.exitcode}) without a result")
    finally:
        for process in running.values():
            process.terminate()
        for process in running.values():
            process.join(5)
        messages.close()


def _job_path(job) -> str:
    return job.get("path", "?") if isinstance(job, dict) else "?"
