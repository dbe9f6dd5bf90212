# The two set-up commands of the README, and a few helpers.
PYTHON ?= python3
DUMP ?= tests/fixtures/dumps/ltgwiki-20170901-pages-articles.xml.bz2
WIKI ?= ltgwiki

.PHONY: run test lint bench-ingest

run:
	LINKREC_SKIP_MARIADB=1 LINKREC_SKIP_BROWSER=1 bash .ci/machine.sh
	$(PYTHON) -m pip install -q -e .
	linkrec run --wiki $(WIKI) --dump $(DUMP)

test:
	bash .ci/machine.sh
	$(PYTHON) -m pip install -q -e '.[test]'
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .

bench-ingest:
	$(PYTHON) benchmarks/ingest_speed.py
