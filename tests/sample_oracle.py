"""The real third-party recordings (never copied into the repository) and their oracle.

Where they are: the folder named by the ``EVSTREAM_SAMPLES`` environment variable (a relative
path is taken from the repository root), else ``../shared/samples`` beside the repository. When
the folder is absent, the tests that need it are skipped with a reason that starts with
:data:`SHARED_DATA_MISSING`; with ``EVSTREAM_REQUIRE_SAMPLES=1`` (set by ``.ci/run``) they fail
instead, so CI cannot pass without running them.
"""

import os
from pathlib import Path

import pytest

#: the repository root (tests/ sits in it)
REPO_ROOT = Path(__file__).resolve().parents[1]
#: environment variables: the samples folder, and "a missing shared file is a failure"
SAMPLES_ENV = "EVSTREAM_SAMPLES"
REQUIRE_ENV = "EVSTREAM_REQUIRE_SAMPLES"
#: every skip for missing third-party data starts with this (the fresh-clone check relies on it)
SHARED_DATA_MISSING = "shared data not found"


def shared_path(env: str, default: Path) -> Path:
    """``$env`` (relative to the repository root) if set and not empty, else ``default``."""
    value = os.environ.get(env)
    return REPO_ROOT / value if value else default


#: the sample recordings' folder (see the module docstring)
SAMPLES_DIR = shared_path(SAMPLES_ENV, REPO_ROOT.parent / "shared" / "samples")


def require_shared(path: Path, what: str, env: str) -> Path:
    """``path`` if it exists; else skip the calling test (or fail it when ``$EVSTREAM_REQUIRE_SAMPLES``
    is ``1``) with a reason naming ``what``, the path tried and the variable that sets it."""
    if not path.exists():
        reason = f"{SHARED_DATA_MISSING}: {what} not at {path} (set {env}; see README, Tests)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(reason + f" and {REQUIRE_ENV}=1", pytrace=False)
        pytest.skip(reason)
    return path


def samples_dir() -> Path:
    """The samples folder, or skip (see :func:`require_shared`)."""
    return require_shared(SAMPLES_DIR, "sample recordings", SAMPLES_ENV)


#: Decoding oracle from shared/samples/README.md (OpenEB rules, no time shifting):
#: events, first (t, x, y, p), last (t, x, y, p), sum t, sum x, sum y, ON count, distinct t.
ORACLE = {
    "expelliarmus_evt3_sample.raw": (219596, (11718656, 874, 200, 0), (11727457, 1218, 572, 1),
                                     2574324900467, 159113225, 85638051, 115532, 8802),
    "expelliarmus_evt2_sample.raw": (539481, (1317888, 237, 121, 1), (1367888, 210, 142, 1),
                                     724340275912, 171811022, 110162026, 367855, 50001),
    "faery_evt2.raw": (521252, (913716224, 35, 443, 1), (913812095, 12, 471, 0),
                       476298094656969, 128979953, 216346680, 185861, 79493),
    "tonic_sample_ncars.dat": (2009, (0, 25, 8, 0), (99952, 75, 28, 1), 98196680, 93457, 40463,
                               1350, 1830),
}
#: With OpenEB's default time shifting: (first t, last t) per RAW sample.
SHIFTED_SPAN = {"expelliarmus_evt3_sample.raw": (4096, 12897),
                "expelliarmus_evt2_sample.raw": (0, 50000),
                "faery_evt2.raw": (0, 95871)}


def sample(name: str) -> Path:
    """Path of a sample recording. Skips when the samples folder is absent; a folder without
    this file is an error (an incomplete copy must not pass as "no samples")."""
    path = samples_dir() / name
    assert path.is_file(), f"sample recording {name} missing from {SAMPLES_DIR}"
    return path
