# outagewatch: `make run` runs the daemon on the shipped config; `make demo` replays the
# seed day against a simulated world; `make test` runs everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# Every Python the package claims (pyproject's classifiers): `make test` runs the suite
# on each, in .venv (the default python3) and .venv-X.Y; see .ci/test-pythons.
PYTHONS ?= 3.11 3.12 3.13
BIN := $(VENV)/bin
CONFIG ?= deploy/config/outagewatch.yml
LISTEN ?= :10060
# Debian packages the tests run for real: promtool + prometheus, amtool + alertmanager,
# systemd-analyze (verify and security of the unit), headless Chromium and its driver
# (the status page's browser tests).
SYSTEM_PACKAGES := prometheus prometheus-alertmanager systemd chromium chromium-driver
SYSTEM_COMMANDS := promtool prometheus amtool prometheus-alertmanager systemd-analyze chromium chromedriver
# What `make bench` measures against (not needed by `make test`): the blackbox
# exporter as the peer prober, nginx as the local target.
BENCH_PACKAGES := prometheus-blackbox-exporter nginx
BENCH_COMMANDS := prometheus-blackbox-exporter nginx

.PHONY: run demo test lint typecheck unit unit-all-pythons system-deps bench-deps bench clean

# setup.py compiles the detector's per-point modules in place (docs/detection.md,
# "Cost"): an edit to any detect/ source builds them again.
$(BIN)/.installed: pyproject.toml constraints.txt setup.py $(wildcard daemon/outagewatch/detect/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,fast]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/outagewatch run --config.file $(CONFIG) --web.listen-address $(LISTEN)

# The seed day against a simulated world on loopback; SPEED=2 tells it in half the time.
SPEED ?= 1
demo: $(BIN)/.installed
	$(BIN)/outagewatch demo --speed $(SPEED)

system-deps:
	@missing=0; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	fi

lint: $(BIN)/.installed
	$(BIN)/ruff check daemon tests bench dashboards setup.py
	$(BIN)/ruff format --check daemon tests bench dashboards setup.py
	$(BIN)/lint-imports --no-cache

# Once as the lowest supported Python (pyproject), once as the newest.
typecheck: $(BIN)/.installed
	$(BIN)/mypy
	$(BIN)/mypy --python-version 3.13

unit: $(BIN)/.installed system-deps
	$(BIN)/pytest -q

unit-all-pythons: $(BIN)/.installed system-deps
	VENV=$(VENV) .ci/test-pythons $(PYTHONS)

test: lint typecheck unit-all-pythons

bench-deps: $(BIN)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[fast]'
	@missing=0; for c in $(BENCH_COMMANDS); do command -v $$c >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing Debian packages: $(BENCH_PACKAGES)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(BENCH_PACKAGES) >/dev/null; \
	fi

# Every benchmark, about 40 minutes; results in docs/benchmarks.md. Time to page
# runs Prometheus and Alertmanager (system-deps). SOAK=1h runs the 10,000-target
# daemon that long instead of 3 minutes, sampling RSS, fds and tasks.
SOAK ?=
bench: bench-deps system-deps
	$(BIN)/python -m bench $(if $(SOAK),--soak $(SOAK))

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache test-artifacts
