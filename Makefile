# segline — top-level Makefile: set-up, tests, demo.
#
#   make demo    toy pipelines end to end (plots, report, archive)
#   make test    the test suite (pytest + ruff)
#   make test-slurm  the spleen toy as SLURM jobs (tests/slurm/run_slurm_test.sh)
#   make help    this list
#
# The dataset pipelines have their own makefiles: make -f spleen.make help

SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
# The torch requirement installed first (only into a .venv without torch). From PyPI,
# torch==2.13.0 is a CUDA-enabled build on Linux x86_64 (several GB), CPU-only on Linux
# aarch64, macOS and Windows (README "Installing"); this project's machines find a CPU
# build on local disk. TORCH_INDEX, when set, is passed as --index-url for torch only:
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu     (small CPU build)
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu126   (a CUDA build)
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PIP := $(VENV)/bin/python -m pip
# The suite runs on every core (pytest-xdist): most of its time is make-level runs of
# the toy pipelines, single processes that leave a core idle (on 2 cores 700 s
# instead of 995 s, bench/RESULTS.md). TEST_JOBS=1 runs it in one process.
TEST_JOBS ?= auto
PYTEST_ARGS ?=

.PHONY: install test test-slurm lint demo help clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -c 'import torch' 2>/dev/null || $(PIP) install -q --disable-pip-version-check $(TORCH)$(if $(TORCH_INDEX), --index-url $(TORCH_INDEX))
	$(PIP) install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(VENV)/bin/ruff check src tests preprocess bench
	$(VENV)/bin/python -m pytest $(if $(filter 1,$(TEST_JOBS)),,-n $(TEST_JOBS)) $(PYTEST_ARGS)

# The spleen toy on a private one-node SLURM cluster (root on Debian; installs
# slurm-wlm and munge when missing): each training a job, one cancelled and resumed;
# then make inside one sbatch job, signalled (USR1), requeued and resumed.
test-slurm: install
	tests/slurm/run_slurm_test.sh

lint: install
	$(VENV)/bin/ruff check src tests preprocess bench

# An entry is a dataset makefile (TOY=1) or dataset:variant (TOY=variant, e.g. isles:hard,
# the hard ISLES-like toy where the loss methods differ: README "The hard ISLES toy").
DEMOS ?= spleen isles vessels isles:hard vertebrae
# The demos run as sub-makes sharing DEMO_JOBS job slots (one per core; each training
# then uses one thread: on 2 cores 1.4x the throughput of one training on two threads,
# bench/RESULTS.md): while one pipeline is in a serial stage (toy archive, slicing,
# figures, report) another's trainings use the idle core. Lines are written whole
# (-Oline); each pipeline ends by printing where its plots, report and archive are.
DEMO_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
DEMO_TARGETS := $(addprefix demo.,$(subst :,.,$(DEMOS)))
demo: install
	@$(MAKE) --no-print-directory -j$(DEMO_JOBS) -Oline $(DEMO_TARGETS)

# demo.<ds> (TOY=1) or demo.<ds>.<variant> (TOY=<variant>): one pipeline.
demo.%: install
	@set -e; d='$*'; ds=$${d%%.*}; toy=1; case $$d in *.*) toy=$${d#*.};; esac; \
	  echo "== $$ds (toy $$toy): started =="; \
	  $(MAKE) --no-print-directory -f $$ds.make TOY=$$toy; \
	  echo "== $$ds (toy $$toy): done =="

help:
	@printf '%s\n' \
	  "make demo      run the toy pipelines end to end ($(DEMOS)) side by side, DEMO_JOBS=$(DEMO_JOBS) jobs at a time in all; make demo.<ds>[.<variant>] runs one; each prints where its plots, report and archive are" \
	  "make test      install if needed, then ruff + pytest on TEST_JOBS=$(TEST_JOBS) processes (PYTEST_ARGS='-k distmaps' to filter)" \
	  "make test-slurm  the spleen toy as SLURM jobs on a one-node cluster started here (root, Debian; apt-installs slurm-wlm, munge); a job is cancelled and resumed, make in an sbatch job is requeued and resumed" \
	  "make install   create $(VENV) and install segline (TORCH='...' / TORCH_INDEX=URL pick the torch build)" \
	  "make lint      ruff only" \
	  "make clean     remove results/, archives/, generated toy data and caches (keeps $(VENV) and real archives)" \
	  "" \
	  "datasets:  make -f spleen.make help"

clean:
	rm -rf results/*/ archives data/*-toy data/*-toy.tar data/*-toy*.zip data/.*-toy* .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
