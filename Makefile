# One command each: install, run, test, bench. The virtual environment lives in .venv.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench lint

install:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# The pinned CPU build first: a looser torch requirement would pull gigabytes of CUDA.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[ml,dev,bench]'

run:
	$(BIN)/tradebot --config config/tradebot.toml run

lint:
	$(BIN)/ruff check tradebot tests benchmarks tools
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench:
	$(BIN)/python -m benchmarks
