# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
DEMO_ARGS ?=
BENCH_ARGS ?=

.PHONY: install demo test lint fuzz bench broker-start broker-stop clean

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing ubridge with its development tools and the benchmark's anchor clients"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ubridge demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	bash deploy/local/install-test-deps.sh
	$(BIN)/pytest

# The intakes' fuzz test at full strength: 50,000 mutated requests to each (make test sends 2,000).
fuzz: $(STAMP)
	UBRIDGE_FUZZ_REQUESTS=50000 $(BIN)/pytest tests/unit/connectors/test_intake_fuzz.py -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

broker-start: $(STAMP)
	$(BIN)/ubridge broker start

broker-stop: $(STAMP)
	$(BIN)/ubridge broker stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
