# riskmap — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STORE  ?= data/demo.gpkg
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test install install-test demo lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed

$(STORE): | $(VENV)/.installed
	$(VENV)/bin/riskmap demo --out $(STORE)

demo: $(STORE)

## make run: set up, build the demo district if absent, serve on http://$(HOST):$(PORT)
run: $(VENV)/.installed $(STORE)
	$(VENV)/bin/riskmap serve --store $(STORE) --host $(HOST) --port $(PORT)

## make test: set up with test extras, check style (ruff) and types (mypy), run the whole suite
test: $(VENV)/.installed
	$(VENV)/bin/ruff check geo layers api maps tests bench
	$(VENV)/bin/mypy geo layers api maps
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check geo layers api maps tests bench

bench: $(VENV)/.installed
	$(PY) bench/pipeline_check.py

## make postgis: install (apt) and start a local PostgreSQL+PostGIS on 127.0.0.1:55432 for the
## server-backed tests; use it with: eval "$$(make -s postgis)" && make test
.PHONY: postgis
postgis:
	@url=$$(bash .ci/postgis.sh | tail -n 1) && test -n "$$url" && \
	  echo "export RISKMAP_TEST_POSTGIS_URL=$$url"

clean:
	rm -rf $(VENV) data .pytest_cache
