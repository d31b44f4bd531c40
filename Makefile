# Two commands do all the set-up (see README.md):
#   make run          install (with the sweep plugins), then train the default job (Cora, GCN, GMM k=7, CPU, offline)
#   make test         install with the test extras (and Debian's chromium for the browser test, when root),
#                     then lint and run every test but the cluster ones (CI)
#   make test-fast    once installed: the tests not marked `slow` (subprocesses, DDP, notebook, longer fits)
#   make test-cluster once installed, as root: a single-node SLURM (Debian packages), then the cluster tests
#   make lint         once installed: ruff check and ruff format --check
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
# On a CUDA machine use e.g. TORCH_INDEX=https://download.pytorch.org/whl/cu124.
PYTHON ?= python
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PIP := $(PYTHON) -m pip
PIP_TORCH := $(PIP) install "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: install install-test run test test-fast test-cluster lint clean

install:
	$(PIP_TORCH)
	$(PIP) install -e ".[sweeps]"

install-test:
	$(PIP_TORCH)
	$(PIP) install -e ".[test]"

run: install
	$(PYTHON) train.py

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test: install-test lint
	sh tests/browser/install.sh
	$(PYTHON) -m pytest -m "not cluster"

test-fast:
	$(PYTHON) -m pytest -m "not slow" -q

test-cluster:
	PYTHON=$(PYTHON) bash tests/cluster/run.sh

clean:
	rm -rf logs outputs multirun .pytest_cache
