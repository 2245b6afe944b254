"""Makes tests/ importable (prepend import mode) so tests share sample_oracle."""
