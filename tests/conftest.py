"""Test-suite settings. Being a conftest, it also puts tests/ on sys.path (prepend import mode),
so tests share helper modules such as sample_oracle."""

from hypothesis import settings

# the same examples on every run: a CI result does not depend on the random draw
settings.register_profile("evstream", derandomize=True, database=None)
settings.load_profile("evstream")
