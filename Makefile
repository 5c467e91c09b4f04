# Two commands: `make demo` (set up, then run the whole flow on SQLite + the simulated centre)
# and `make test` (set up, then the test suite with a throwaway PostgreSQL).
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup demo test run clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml plugins/adapter-nhsa/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]' -e plugins/adapter-nhsa
	touch $@

demo: setup
	$(VENV)/bin/yibao-adapter demo

test: setup
	scripts/with-postgres.sh $(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info
