# Every target builds its own virtual environment in .venv from constraints.txt.
#
# Where pip gets packages (see README, Set-up):
#   TORCH_INDEX    index for torch alone, installed first; e.g. the CPU-only build:
#                    make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
#                  or a given CUDA version: TORCH_INDEX=https://download.pytorch.org/whl/cu126
#                  Empty (default): torch comes from the same index as everything else (PyPI:
#                  on Linux x86_64 that is the CUDA build and its nvidia-* packages, several GB).
#   PIP_INDEX_URL  index for every package (a mirror or a local proxy); empty: pip's own setting.
#   PIP_ARGS       more pip options, e.g. PIP_ARGS="--find-links /wheels --no-index".
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_INDEX ?=
PIP_INDEX_URL ?=
PIP_ARGS ?=
PIP := $(PY) -m pip install -q -c constraints.txt $(if $(PIP_INDEX_URL),--index-url $(PIP_INDEX_URL)) $(PIP_ARGS)

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install -q -c constraints.txt --index-url $(TORCH_INDEX) $(PIP_ARGS) torch)
	$(PIP) -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/evstream demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV)
