# smtp-conformance: `make run` runs the suite against the embedded server; `make test` runs our own tests.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp
# pytest-xdist workers for our own tests (they mostly wait on sockets and servers)
WORKERS ?= 3

.PHONY: install run test unit lint bench servers images docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## the conformance suite against the embedded default server; writes reports/
run: $(STAMP)
	$(VENV)/bin/smtp-conformance run; status=$$?; \
	  echo "open reports/index.html (results: reports/results.json, reports/junit.xml)"; exit $$status

## the project's whole test suite (unit + integration against real servers and containers)
test: $(STAMP)
	$(VENV)/bin/ruff check conformance tests benchmarks
	$(VENV)/bin/smtp-conformance validate
	$(PY) -m pytest -n $(WORKERS) -p no:cacheprovider -q tests

unit: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check conformance tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_suite.py
	$(PY) benchmarks/bench_report.py

## real SMTP servers (Postfix, Exim, OpenSMTPD, aiosmtpd, Node) for the integration tests
servers: $(STAMP)
	scripts/servers/install

## Podman service + locally built images for the container tests
images:
	scripts/containers/build-images

docs: $(STAMP)
	$(VENV)/bin/smtp-conformance catalog --out docs/catalog
	$(VENV)/bin/smtp-conformance deviations

clean:
	rm -rf reports/*.html reports/*.json reports/*.xml
