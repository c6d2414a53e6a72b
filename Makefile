# Two entry points for a fresh machine with Python 3.11 and pip: `make demo` and `make test`.
# Each creates .venv and installs what it needs (torch from the CPU wheel pinned in the
# `export` extra; the device side itself never imports it).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# Debian packages the tests drive for real: systemd-analyze/sysusers/tmpfiles check the unit,
# shellcheck the scripts, python3-venv builds the .deb's venv, socat makes the serial pty pair
# for Modbus RTU, gcc + libmodbus-dev build the independent Modbus server.
DEBIAN_TEST_PACKAGES := systemd shellcheck python3-venv socat gcc libmodbus-dev

.PHONY: demo test lint bench clean debian-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[export,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/lineside demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy agent export

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
test: debian-deps lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/loop.py
	$(BIN)/python benchmarks/demo.py
	$(BIN)/python benchmarks/spc.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
