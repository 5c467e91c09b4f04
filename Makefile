# Two commands: `make demo` (set up, then run the whole flow on SQLite + the simulated centre)
# and `make test` (set up, then the test suite with a throwaway PostgreSQL).
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup demo test run clean

setup: $(VENV)/.installed

# Every bundled region plugin (plugins/adapter-*) is installed, like a third-party one would be.
PLUGINS := $(wildcard plugins/adapter-*)

$(VENV)/.installed: pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]' $(addprefix -e ,$(PLUGINS))
	touch $@

demo: setup
	$(VENV)/bin/yibao-adapter demo

test: setup
	scripts/with-postgres.sh $(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info
