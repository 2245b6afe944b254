"""benchmarks/gpu_check.py, the prepared GPU script, run here as its CPU dry run on small
windows: it must run end to end and find every torch kernel bit-identical to its numba twin, so
that a session lent a GPU spends its device time measuring, not fixing the script."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import gpu_check  # noqa: E402


def test_the_dry_run_checks_every_kernel_and_the_loader_path(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "N", 20_000)
    monkeypatch.setattr(gpu_check, "LOADER_EVENTS", 300_000)
    assert gpu_check.main(["--cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")
            and line.split(" | ")[0][2:] in gpu_check.SHAPES]
    # every kernel, both event sources, downsampling 0 and 1
    assert sorted((r[0][2:], r[1], r[2]) for r in rows) == sorted(
        (name, source, k) for name in gpu_check.SHAPES for source in ("runs", "scattered")
        for k in ("0", "1"))
    assert {r[3] for r in rows} == {"yes"}
    assert "| CPU: CDProcessorIterator (numba) |" in out
    assert "| cpu: CPU decode + torch histo on cpu |" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script would run")
def test_without_a_gpu_the_script_says_so_and_exits_2(capsys):
    assert gpu_check.main([]) == 2
    assert "CUDA is not available" in capsys.readouterr().out
