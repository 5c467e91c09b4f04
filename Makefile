# Two commands: `make demo` (set up, then run the whole flow on SQLite + the simulated centre)
# and `make test` (set up, then the test suite with a throwaway PostgreSQL).
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup demo test lint run clean

setup: $(VENV)/.installed

# Every bundled region plugin (plugins/adapter-*) is installed, like a third-party one would be.
PLUGINS := $(wildcard plugins/adapter-*)

$(VENV)/.installed: pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,lint]' $(addprefix -e ,$(PLUGINS))
	touch $@

demo: setup
	$(VENV)/bin/yibao-adapter demo

test: setup
	scripts/with-postgres.sh $(VENV)/bin/pytest

# Style, types and layering: ruff (with import sorting), mypy --strict on adapter/, and the
# import-linter contracts in pyproject.toml (layers, independent stages, no rehearsal on the
# production path, a plugin contract that imports nothing above it).
lint: setup
	$(VENV)/bin/ruff check adapter plugins tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info
