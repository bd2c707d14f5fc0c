# Two entry points on a fresh machine: `make test` and `make book`. Each creates .venv and installs what it
# needs (torch and torchvision first, as one pair from the package registry), then does its work.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PROFILE ?=
ONLY ?=
BOOK_ARGS ?=
COMPAT_VENV ?= .venv-compat
PYTEST_ARGS ?=
# The package set the tests were last run with (torch, torchvision, numpy, the book stack...), for the
# Python it was made on. `make pin` rewrites it from $(VENV); CONSTRAINTS= installs without it.
CONSTRAINTS ?= constraints.txt
PIN_PYTHON := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: test lint unit book book-smoke test-compat test-book pin clean help

help:
	@echo "make test         install into $(VENV) and run lint, the Python 3.8 check and the unit tests"
	@echo "make book         install the book tools and build the book into _build/html: the committed cpu"
	@echo "                  results replayed (smoke live while results/cpu/ is empty); PROFILE=smoke|cpu|"
	@echo "                  quadro|jetson executes that profile live; REPLAY=1 renders results/<profile>/"
	@echo "make test-compat  run the unit tests against torch 2.1 / torchvision 0.16 in $(COMPAT_VENV)"
	@echo "make test-book    the reader's check: open every built page in headless Chromium"
	@echo "make pin          rewrite $(CONSTRAINTS) from the packages installed in $(VENV) (run the tests first)"

$(VENV)/.torch: $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch and torchvision come first, as one pair. pip keeps an installed pair that meets the pins (a
	# +cpu build of the pinned version does) or, where the pins do not apply (JetPack's Python 3.8), any.
	$(PIP) install $(C) torch torchvision
	touch $@

$(VENV)/.test: $(VENV)/.torch pyproject.toml $(CONSTRAINTS)
	$(PIP) install $(C) -e ".[test]"
	# torchattacks (the PGD cross-check) pins requests~=2.25.1, which it never imports: install it alone.
	$(PIP) install --no-deps "torchattacks==3.5.1"
	touch $@

$(VENV)/.book: $(VENV)/.test
	$(PIP) install $(C) -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name gearlib --display-name "gearlib (Python 3)"
	touch $@

lint: $(VENV)/.test
	$(VENV)/bin/ruff check gearlib tests notebooks
	$(VENV)/bin/ruff format --check gearlib tests notebooks
	$(VENV)/bin/vermin --target=3.8- --violations --no-tips -q gearlib notebooks

unit: $(VENV)/.test
	# One OpenMP thread per xdist worker: two workers with two threads each on two cores run 2x slower.
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest tests/unit -q -n 2 $(PYTEST_ARGS)

test: lint unit

book: $(VENV)/.book
	$(VENV)/bin/gearlib book $(if $(PROFILE),--profile $(PROFILE)) $(if $(ONLY),--only $(ONLY)) $(if $(REPLAY),--replay) $(BOOK_ARGS)

book-smoke:
	$(MAKE) book PROFILE=smoke

# The reader's check needs Chromium (Debian: apt-get install chromium) and a built book.
test-book: $(VENV)/.book
	$(PY) -m pytest tests/book -q -p no:cacheprovider

# A second environment with the Jetson's torch 2.1 / torchvision 0.16 (numpy 1.x, which torch 2.1 needs).
$(COMPAT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --upgrade pip
	$(COMPAT_VENV)/bin/pip install "torch==2.1.*" "torchvision==0.16.*" "numpy<2"
	$(COMPAT_VENV)/bin/pip install -e ".[test]" "torch==2.1.*" "torchvision==0.16.*" "numpy<2"
	touch $@

test-compat: $(COMPAT_VENV)/.installed
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(COMPAT_VENV)/bin/python -m pytest tests/unit -q -n 2 $(PYTEST_ARGS)

# Moving the pin is a deliberate commit: upgrade $(VENV) on purpose, run `make test` and `make book`, then this.
pin:
	@echo "# Tested package set for CPython $(PIN_PYTHON) (written by make pin; see the Makefile)." > $(CONSTRAINTS)
	@echo "# On other Pythons the markers switch these pins off and pyproject.toml's bounds apply." >> $(CONSTRAINTS)
	$(PIP) freeze --exclude-editable | grep -v '^gearlib' \
		| sed 's/$$/ ; python_version == "$(PIN_PYTHON)"/' >> $(CONSTRAINTS)

clean:
	rm -rf _build book/executed
