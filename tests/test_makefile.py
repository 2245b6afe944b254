"""The Makefile's install step (issue 13, item 5): by default pip's own index for everything;
TORCH_INDEX installs torch first from that index (CPU-only or a given CUDA build);
PIP_INDEX_URL and PIP_ARGS reach every pip call. Checked with ``make -n`` (prints, runs
nothing)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sample_oracle import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(tmp_path, *variables: str) -> list[str]:
    result = subprocess.run(["make", "-n", "-B", "-C", str(REPO_ROOT), "venv",
                             f"VENV={tmp_path}/venv", *variables],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [" ".join(line.split()) for line in result.stdout.splitlines()
            if not line.startswith("make")]


def test_default_uses_pips_own_index(tmp_path):
    lines = dry_run(tmp_path)
    pip = [line for line in lines if " -m pip " in line]
    assert pip == [f"{tmp_path}/venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'"]
    assert lines[0] == f"python3 -m venv {tmp_path}/venv" and lines[-1] == f"touch {tmp_path}/venv/.installed"


def test_torch_index_and_pip_index(tmp_path):
    cpu = "https://download.pytorch.org/whl/cpu"
    lines = dry_run(tmp_path, f"TORCH_INDEX={cpu}", "PIP_INDEX_URL=https://mirror.example/simple",
                    "PIP_ARGS=--no-cache-dir", "PYTHON=python3.11")
    py = f"{tmp_path}/venv/bin/python"
    assert lines == [f"python3.11 -m venv {tmp_path}/venv",
                     f"{py} -m pip install -q -c constraints.txt --index-url {cpu} --no-cache-dir torch",
                     f"{py} -m pip install -q -c constraints.txt --index-url "
                     f"https://mirror.example/simple --no-cache-dir -e '.[test]'",
                     f"touch {tmp_path}/venv/.installed"]
