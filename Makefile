# Every target bootstraps the project virtualenv (.venv) when it is missing or
# older than pyproject.toml, so a fresh machine needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

UPSTREAM_PORT ?= 8000
PROFILES      ?= h100-llama3-8b,dgx-spark-llama3-8b
PORT          ?= 8080
ADMIN_PORT    ?= 9464

.PHONY: run test lint unit tools bench scenarios e2e-vllm clean help

help:
	@echo "make run       a pool of two simulated engines (H100 + DGX Spark) behind the proxy, live limits per member (Ctrl-C stops all)"
	@echo "make test      lint + the whole test suite (installs the Debian tools it runs, as root)"
	@echo "make lint      ruff + mypy + the layer contract (import-linter)"
	@echo "make bench     benchmarks (sweeps, proxy overhead) against the simulator"
	@echo "make scenarios admission-control scenarios against the simulator (tables + PNGs)"
	@echo "make e2e-vllm  end-to-end checks against a real CPU vLLM (installs it on first use)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m proxy run --profiles $(PROFILES) --upstream-port $(UPSTREAM_PORT) --port $(PORT) --admin-port $(ADMIN_PORT)

lint: $(STAMP)
	$(BIN)/ruff check proxy tests
	$(BIN)/ruff format --check proxy tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# The real programs the suite runs (deploy/test-tools.txt): installed on first use
# when root; otherwise the exact command to run is printed and make stops.
tools:
	@bash deploy/bootstrap.sh

unit: $(STAMP) tools
	$(BIN)/python -m pytest -q

test: tools lint unit

bench: $(STAMP)
	$(BIN)/python -m proxy bench-suite

scenarios: $(STAMP)
	$(BIN)/python -m proxy scenario all --out out/scenarios

e2e-vllm: $(STAMP)
	bash tests/e2e_vllm/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out
