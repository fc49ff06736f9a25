# minewatch: `make up` runs the whole system here, `make test` runs the checks (`make check`) and the tests.
# Both set up what is missing first: Debian's mosquitto, influxdb, nats-server, chromium and prometheus
# packages (nats-server for the group deployment, prometheus for promtool and a scraping test), and a
# virtual environment in .venv with the package and its dev extras.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := mosquitto mosquitto-clients influxdb nats-server chromium prometheus
PYTEST_ARGS ?=
# the integration tests mostly wait on servers and processes: three at a time on two cores, a file each
PYTEST_JOBS ?= -n 3 --dist loadfile
# where `make test` keeps the output of what runs beside the main test run
TEST_LOGS := test-output/make-test

.PHONY: up check test test-nojit bench deps system-deps venv clean

up: deps
	$(VENV)/bin/minewatch up

# ruff and mypy (configured in pyproject.toml): any finding fails the build
check: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

# The main test run mostly waits on servers and processes, which leaves CPU to spare: the checks
# of `make check` and the detector kernels' interpreted pass (NUMBA_DISABLE_JIT=1, against the
# same references) run beside it, one process each. (Not niced: on a busy machine a niced process
# gets next to no CPU, and the interpreted pass's slowest tests would run into pytest's per-test
# timeout.) Their output follows the main run's; a failure in any of the three fails the target.
test: deps
	@mkdir -p $(TEST_LOGS); \
	{ $(PY) -m ruff check . && $(PY) -m mypy; } > $(TEST_LOGS)/check.log 2>&1 & check=$$!; \
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -p no:cacheprovider tests/detectors $(PYTEST_ARGS) \
	  > $(TEST_LOGS)/interpreted.log 2>&1 & interpreted=$$!; \
	echo "# the tests (make check and the interpreted pass beside them, in $(TEST_LOGS))"; \
	$(PY) -m pytest $(PYTEST_JOBS) $(PYTEST_ARGS); tests=$$?; \
	wait $$check; checked=$$?; \
	echo "# make check: ruff and mypy"; cat $(TEST_LOGS)/check.log; \
	wait $$interpreted; interpreted=$$?; \
	echo "# the detector kernels again, interpreted (NUMBA_DISABLE_JIT=1), against the same references"; \
	cat $(TEST_LOGS)/interpreted.log; \
	test $$tests = 0 -a $$checked = 0 -a $$interpreted = 0

test-nojit: deps
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q tests/detectors $(PYTEST_ARGS)

bench: deps
	@for f in bench/*.py; do echo "# $$f"; $(PY) $$f || exit 1; done

deps: system-deps venv

system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_sub >/dev/null 2>&1 || missing="$$missing mosquitto-clients"; \
	command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || missing="$$missing influxdb"; \
	command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	  else echo "minewatch needs the Debian packages$$missing: install them as root (apt-get install$$missing)"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing \
	    || { echo "could not install$$missing"; exit 1; }; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) .minewatch .minewatch-group .pytest_cache build *.egg-info
