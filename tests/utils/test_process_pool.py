"""run_parallel: a pool of n worker processes that take job after job, report in order per job,
replace a worker that dies, and never import the caller's ``__main__`` script again."""

import os
import subprocess
import sys
import textwrap
import time
import types

import pytest

from evstream.errors import ArgumentError
from evstream.utils.parallel import run_parallel


def pid_job(job, report):
    """Reports three steps, then returns this process's id; job "crash" dies hard first."""
    if job == "crash":
        os._exit(3)
    if job == "freeze":
        time.sleep(3600)
    for step in range(3):
        report("advance", step)
    return os.getpid()


def _final(events):
    return {index: (kind, payload) for kind, index, payload in events if kind in ("done", "failed")}


def test_many_jobs_run_in_n_worker_processes_with_reports_in_order_per_job():
    events = []
    run_parallel(pid_job, [f"job{i}" for i in range(6)], 2,
                 lambda kind, index, payload: events.append((kind, index, payload)))
    final = _final(events)
    assert sorted(final) == list(range(6))
    assert all(kind == "done" for kind, _ in final.values())
    pids = {pid for _, pid in final.values()}
    assert len(pids) == 2 and os.getpid() not in pids      # one process per worker, not per job
    for i in range(6):
        assert [(k, p) for k, index, p in events if index == i][:3] == [("advance", s) for s in range(3)]
        assert [k for k, index, _ in events if index == i] == ["advance"] * 3 + ["done"]


def test_a_worker_that_dies_fails_its_job_and_is_replaced():
    events = []
    run_parallel(pid_job, ["crash", "crash", "a", "b", "c"], 2,   # both first workers die
                 lambda kind, index, payload: events.append((kind, index, payload)))
    final = _final(events)
    assert [final[i][0] for i in range(5)] == ["failed"] * 2 + ["done"] * 3
    assert all("worker process died (exit code 3)" in final[i][1] for i in (0, 1))
    assert len({final[i][1] for i in range(2, 5)}) <= 2     # the replacements take every job


def test_a_worker_that_sends_nothing_for_the_silence_timeout_is_stopped_and_replaced():
    events = []
    t0 = time.monotonic()
    run_parallel(pid_job, ["freeze", "a", "b", "freeze", "c"], 2,
                 lambda kind, index, payload: events.append((kind, index, payload)),
                 silence_timeout_s=4.0)               # a worker's start counts: keep it ample
    assert time.monotonic() - t0 < 60
    final = _final(events)
    assert [final[i][0] for i in range(5)] == ["failed", "done", "done", "failed", "done"]
    for i in (0, 3):
        assert final[i][1] == "?: worker process sent nothing for 4 s (frozen?) and was stopped"


def test_reports_keep_a_slow_worker_alive():
    events = []
    run_parallel(slow_job, [6.0, 6.0], 2, lambda kind, index, payload: events.append(kind),
                 silence_timeout_s=4.0)              # longer than a worker's start
    assert events.count("done") == 2 and "failed" not in events


def slow_job(seconds, report):
    """Runs ``seconds`` with a report every tenth of it."""
    for _ in range(10):
        time.sleep(seconds / 10)
        report("advance", None)
    return seconds


def test_workers_do_not_import_the_callers_main_script(tmp_path):
    marker = tmp_path / "imports.txt"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import operator
        with open({str(marker)!r}, "a") as f:
            f.write(__name__ + "\\n")
        from evstream.utils.parallel import run_parallel
        if __name__ == "__main__":
            done = []
            run_parallel(operator.is_, [1, 2, 3], 2, lambda kind, i, p: done.append(kind))
            assert done == ["done"] * 3, done
    """))
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path, timeout=120)
    assert marker.read_text().split() == ["__main__"]


def test_a_job_function_the_workers_cannot_import_fails_every_job(monkeypatch):
    module = types.ModuleType("evstream_test_only_in_this_process")
    exec("def job(job, report):\n    return job\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    events = []
    run_parallel(module.job, [{"path": "a.raw"}, {"path": "b.raw"}], 2,
                 lambda kind, index, payload: events.append((kind, index, payload)))
    final = _final(events)
    assert [final[i][0] for i in (0, 1)] == ["failed", "failed"]
    assert final[0][1].startswith("a.raw: cannot load the job function in a worker")
    assert final[1][1].startswith("b.raw: ")


def test_a_function_of_the_main_script_is_refused():
    def job(job, report):
        return job
    job.__module__ = "__main__"
    with pytest.raises(ArgumentError, match="__main__"):
        run_parallel(job, [1, 2], 2, lambda *a: None)
    run_parallel(job, [1, 2], 1, lambda *a: None)          # in this process it is fine


def test_without_posix_the_jobs_run_here_with_a_warning(monkeypatch):
    monkeypatch.setattr(os, "name", "nt")
    events = []
    with pytest.warns(UserWarning, match="need a POSIX system"):
        run_parallel(pid_job, ["a", "b"], 2, lambda kind, index, payload: events.append((kind, payload)))
    assert [p for k, p in events if k == "done"] == [os.getpid()] * 2
