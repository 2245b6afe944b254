"""A read-only install: with the package's folders and $HOME unwritable, ``import evstream.io``
and decoding still work; numba's cache moves to the temporary folder, or is skipped when that is
not writable either, with exactly one warning (src/evstream/_numba_cache.py).

Unwritable folders are made with a *file* named ``__pycache__`` in every package folder and
``$HOME`` pointing at a file, so the test holds when run as root (which ignores permissions)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import evstream

SCRIPT = r'''
import json, sys, tempfile, warnings
if sys.argv[1] != "-":
    tempfile.tempdir = sys.argv[1]          # the temporary folder numba's fallback would use
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    import evstream, evstream.io
    from evstream._numba_cache import decision
    from evstream.io import EventCD, RawWriter, load_events
    ev = np.zeros(1000, EventCD)
    ev["t"] = np.arange(1000) * 7
    ev["x"] = np.arange(1000) % 300
    ev["y"] = np.arange(1000) % 200
    ev["p"] = np.arange(1000) % 2
    path = sys.argv[2]
    with RawWriter(path, 240, 320) as writer:
        writer.write(ev)
    back = load_events(path)
print(json.dumps({"module": evstream.__file__, "decision": decision,
                  "same": bool(np.array_equal(back, ev)),
                  "warnings": [str(w.message) for w in caught if "numba" in str(w.message).lower() or "cannot cache" in str(w.message)]}))
'''


def read_only_install(tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the package whose folders numba cannot write to, and an environment whose
    $HOME / XDG cache folder cannot be created."""
    site = tmp_path / "site"
    shutil.copytree(Path(evstream.__file__).parent, site / "evstream",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [site / "evstream", *(p for p in (site / "evstream").rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("not a folder")
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE", "XDG_"))}
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
    return site, env


def run(tmp_path: Path, temporary: str) -> dict:
    import json

    site, env = read_only_install(tmp_path)
    result = subprocess.run([sys.executable, "-c", SCRIPT, temporary, str(tmp_path / "a.raw")],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["module"] == str(site / "evstream" / "__init__.py")
    assert out["same"], "decoded events differ from the written ones"
    return out


def test_cache_moves_to_the_temporary_folder(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    out = run(tmp_path, str(temporary))
    assert out["decision"] == "temporary"
    assert len(out["warnings"]) == 1 and str(temporary) in out["warnings"][0]
    cached = list(temporary.rglob("*.nbi"))
    assert cached, "nothing was cached in the temporary folder"


def test_cache_skipped_when_nothing_is_writable(tmp_path):
    blocked = tmp_path / "tmp-is-a-file"
    blocked.write_text("")
    out = run(tmp_path, str(blocked))
    assert out["decision"] == "off"
    assert len(out["warnings"]) == 1 and "compiled at every start" in out["warnings"][0]


def test_writable_install_keeps_numbas_place():
    import tempfile

    from evstream import _numba_cache

    cache = Path(evstream.__file__).parent / "__pycache__"
    try:
        tempfile.TemporaryFile(dir=cache).close()
    except OSError:
        pytest.skip(f"{cache} is not writable here")
    assert _numba_cache.ensure_cache_location() == "numba"   # no warning, numba's own place
