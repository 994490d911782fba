# rtsep: the two commands of the README are `make demo` and `make test`; both set everything up.
#
# Set-up (idempotent, re-run when pyproject.toml changes):
#   1. Debian packages when run as root and missing (JACK server, PortAudio, libsndfile, ...).
#   2. A virtual environment at .venv.
#   3. PyTorch: kept where one is installed; otherwise the pinned CPU build on machines without an
#      NVIDIA GPU (never the multi-GB CUDA wheels on a CPU-only machine), the default build with one.
#   4. The package itself, editable, with its test and dev extras.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.rtsep-installed
TORCH_CPU_PIN ?= torch==2.13.0
# jackd2: the real JACK server that tests and the demo run with the dummy backend; libportaudio2 and
# libsndfile1: sounddevice and soundfile; the rest renders training and demo songs (rtsep.data):
# FluidSynth with three GM soundfonts (TimGM6mb is held out of training), Festival singing, espeak-ng.
# (opl3-soundfont's FM bank was tried as a fourth: no gain on the held-out songs, see README.)
APT_PACKAGES := jackd2 libportaudio2 libsndfile1 libfluidsynth3 festival festvox-kallpc16k espeak-ng \
	timgm6mb-soundfont fluid-soundfont-gm musescore-general-soundfont-small
PYTEST_ARGS ?=
RTSEP := $(VENV)/bin/rtsep
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup demo test bench lint clean data data-train

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@bash tools/install_system_packages.sh $(APT_PACKAGES)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --quiet --upgrade pip
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "torch already installed in $(VENV): keeping it"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing the default (CUDA) torch build"; $(PIP) install --quiet torch; \
	else \
		echo "no NVIDIA GPU: installing the CPU build $(TORCH_CPU_PIN)"; $(PIP) install --quiet "$(TORCH_CPU_PIN)"; \
	fi
	@$(PIP) install --quiet -e ".[test,dev]"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/rtsep demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest bench --benchmark-only --benchmark-columns=min,median,max,iqr,rounds -q

# The songs the README's and docs/quality.md's figures come from (rendered songs are cached: a re-run
# only renders what is missing). data: 10 validation songs, the 20 held-out test songs (soundfont and
# voice never heard in training) and 20 more held-out songs from other seeds, on which fine-tuning
# steps are chosen (about 3 min on 2 cores), and the 2-speaker speech validation and test mixtures
# (seconds). data-train: 1440 training songs, 60% of the parts timbre-shifted, which the shipped
# weights' last stages trained on (about 16 min on 2 cores), and 1000 speech training mixtures.
data: setup
	$(RTSEP) data --out data/songs --songs 10 --split valid --workers $(WORKERS)
	$(RTSEP) data --out data/songs --songs 20 --split test --workers $(WORKERS)
	$(RTSEP) data --out data/heldout-dev --songs 20 --split test --seed 1000 --workers $(WORKERS)
	$(RTSEP) data --out data/speech --kind speech --songs 20 --split valid --workers $(WORKERS)
	$(RTSEP) data --out data/speech --kind speech --songs 20 --split test --workers $(WORKERS)

data-train: data
	$(RTSEP) data --out data/songs6 --songs 1440 --split train --timbre 0.6 --workers $(WORKERS)
	ln -sfn ../songs/valid data/songs6/valid
	$(RTSEP) data --out data/speech --kind speech --songs 1000 --split train --workers $(WORKERS)

lint: setup
	$(VENV)/bin/ruff check rtsep tests bench tools
	$(VENV)/bin/ruff format --check rtsep tests bench tools

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
