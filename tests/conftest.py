"""Test-suite settings. Being a conftest, it also puts tests/ on sys.path (prepend import mode),
so tests share helper modules such as sample_oracle (which finds the third-party sample
recordings: ``EVSTREAM_SAMPLES``, default ``../shared/samples``)."""

import os

from hypothesis import settings

# the same examples on every run: a CI result does not depend on the random draw
settings.register_profile("evstream", derandomize=True, database=None)
settings.load_profile("evstream")


def pytest_report_header(config):
    """Say where the third-party sample recordings were looked for (tests/sample_oracle.py)."""
    from sample_oracle import REQUIRE_ENV, SAMPLES_DIR, SAMPLES_ENV

    found = "found" if SAMPLES_DIR.is_dir() else "absent: their tests are skipped"
    required = " (required)" if os.environ.get(REQUIRE_ENV) == "1" else ""
    return f"evstream samples ({SAMPLES_ENV}): {SAMPLES_DIR} - {found}{required}"
