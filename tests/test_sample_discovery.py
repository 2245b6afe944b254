"""Finding the sample recordings (tests/sample_oracle.py): EVSTREAM_SAMPLES, the default beside
the repository, a skip with the documented reason when absent, a failure when CI requires them.

Each case runs a one-test pytest session in a subprocess with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sample_oracle import REPO_ROOT, SHARED_DATA_MISSING, samples_dir

PROBE = '''
from sample_oracle import SAMPLES_DIR, sample

def test_probe():
    print("SAMPLES_DIR=" + str(SAMPLES_DIR))
    assert sample("faery_evt2.raw").stat().st_size > 0
'''


def run_probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    environ = {k: v for k, v in os.environ.items()
               if k not in ("EVSTREAM_SAMPLES", "EVSTREAM_REQUIRE_SAMPLES")}
    environ.update(env, PYTHONPATH=str(REPO_ROOT / "tests"))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-s", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(tmp_path / "test_probe.py")],
                          cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)


def test_absent_folder_skips_with_the_reason(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_probe(tmp_path, EVSTREAM_SAMPLES=str(missing))
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED [1] ")]
    assert len(skips) == 1
    assert skips[0].split(": ", 1)[1] == (f"{SHARED_DATA_MISSING}: sample recordings not at "
                                          f"{missing} (set EVSTREAM_SAMPLES; see README, Tests)")


def test_required_and_absent_fails(tmp_path):
    result = run_probe(tmp_path, EVSTREAM_SAMPLES=str(tmp_path / "nowhere"),
                       EVSTREAM_REQUIRE_SAMPLES="1")
    assert result.returncode == 1
    assert "1 failed" in result.stdout and "EVSTREAM_REQUIRE_SAMPLES=1" in result.stdout


def test_folder_without_the_file_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_probe(tmp_path, EVSTREAM_SAMPLES=str(tmp_path / "empty"))
    assert result.returncode == 1
    assert "sample recording faery_evt2.raw missing from" in result.stdout


def test_variable_relative_to_the_repository_root(tmp_path):
    real = samples_dir()                     # skips here too when the samples are absent
    relative = os.path.relpath(real, REPO_ROOT)
    result = run_probe(tmp_path, EVSTREAM_SAMPLES=relative, EVSTREAM_REQUIRE_SAMPLES="1")
    assert result.returncode == 0, result.stdout
    assert f"SAMPLES_DIR={REPO_ROOT / relative}" in result.stdout and "1 passed" in result.stdout


def test_default_is_shared_samples_beside_the_repository(tmp_path):
    result = run_probe(tmp_path)
    assert f"SAMPLES_DIR={REPO_ROOT.parent / 'shared' / 'samples'}" in result.stdout
