# Every target does its own set-up: a fresh machine needs nothing but Python 3.11.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")

.PHONY: install run test lint bench

install:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@$(UV) sync --frozen --quiet --compile-bytecode

run: install
	$(UV) run botwarden db upgrade
	$(UV) run botwarden serve

test: install
	$(UV) run pytest

lint: install
	$(UV) run ruff check src tests bench
	$(UV) run mypy src
