# The front door: `make run` starts the whole system, `make test` proves it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install lock run test lint migrate token bench chaos clean

# Every dependency at the version and hashes of requirements-dev.lock (pyproject.toml with
# its local and dev extras); the project itself on top, without resolving anything again.
$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# After a change to the dependencies in pyproject.toml: resolve both lock files again (uv:
# `pip install uv`). requirements.lock is what the image installs, without local and dev.
LOCK_ARGS := --generate-hashes --universal --python-version 3.11 --quiet
lock:
	uv pip compile pyproject.toml $(LOCK_ARGS) -o requirements.lock
	uv pip compile pyproject.toml --extra local --extra dev $(LOCK_ARGS) -o requirements-dev.lock

run: install
	$(BIN)/booking-stack

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check services workers tests bench
	$(BIN)/mypy

migrate: install
	$(BIN)/python -m services.booking.adapters.migrate

# make token USER=alice [ADMIN=1] [NAME=Alice] [PHONE=01012345678]
token: install
	@$(BIN)/booking-token "$(USER)" $(if $(ADMIN),--admin) $(if $(NAME),--name "$(NAME)") $(if $(PHONE),--phone "$(PHONE)")

# make bench [SCENARIO="payment rush"] [BENCH_ARGS="--json bench/results/now.json"]
bench: install
	$(BIN)/python -m bench $(SCENARIO) $(BENCH_ARGS)

# make chaos [CHAOS_ARGS="--tickets 500 --seconds 120"]: the ledger chaos run (default 2,000 tickets)
chaos: install
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
