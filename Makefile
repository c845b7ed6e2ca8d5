# The two commands of the README:
#   make book   creates .venv if missing, installs everything, executes the chapters, builds _build/html
#   make test   unit tests of course_lib + pytest --nbval over the chapters
# Authors (DEVELOPERS.md): edit src/chapters/NN_*.md, then `make chapter NB=NN` (sync + execute)
# and `make test-notebooks NB=NN`; exercises: src/exercises/NN_*.md and `make exercise NB=NN`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Where the data sets are found. CI and this project's machines keep them in ../shared/datasets.
COURSE_DATA ?= $(shell test -d ../shared/datasets && cd ../shared/datasets && pwd)
export COURSE_DATA
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
# The same numbers on every x86 CPU: the chapters' short CPU trainings diverge in the 2nd decimal between
# an AVX-512 and an AVX2-only CPU (chapters 2-4 failed nbval that way), so torch's own kernels, oneDNN and
# MKL are held to their AVX2 code paths wherever the notebooks run (tools/execute.py sets the same).
export ATEN_CPU_CAPABILITY ?= avx2
export ONEDNN_MAX_CPU_ISA ?= AVX2
export MKL_CBWR ?= AVX2

.PHONY: book student-book web-assets test-site test test-unit test-notebooks test-colab install clean experiments chapter exercise sync

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	# d2l pins numpy 1.23.5 and other old releases: install it without its pins.
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

book: $(STAMP) web-assets
	$(PY) -m course_lib.engine.data   # caches checked and repaired here, so no chapter prints a repair notice
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "The book is in _build/html/index.html"

# The student edition for a graded class (tools/student_edition.py): the exercises as handed out, without
# solutions, answers or checks; chapters keep their outputs and are not executed. Site: _build/student/src/_build/html
student-book: $(STAMP) web-assets
	$(PY) tools/student_edition.py --out _build/student

# MathJax, require.js and the widget manager, served by the site itself (offline): see tools/web_assets.py
web-assets:
	$(PY) tools/web_assets.py

# The built site in a real browser (tests_site/): Debian's chromium and Playwright's Python
# client from PyPI; Playwright downloads no browser. Screenshots land in site-test/.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
SITE_STAMP := $(VENV)/.site-test-installed

$(SITE_STAMP): tests_site/requirements.txt $(STAMP)
	$(PY) -m pip install -r tests_site/requirements.txt
	touch $@

test-site: book $(SITE_STAMP)
	@test -x $(CHROMIUM) || { echo "Installing Debian's chromium"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }
	$(PY) -m pytest tests_site --timeout 600

test: test-unit test-notebooks

test-unit: $(STAMP)
	$(PY) -m pytest tests

# The Colab rehearsal (tests_colab/rehearse.py): course_lib's wheel installed with its dependencies into a
# fresh venv in a temporary folder, then chapters 0 and 6-8 through papermill from an empty folder, TRAIN=False;
# it fails on any cell error or when a table does not show the committed runs. CI runs it after `make test`.
test-colab: $(STAMP)
	$(PY) tests_colab/rehearse.py

# NB=04: only that chapter
test-notebooks: $(STAMP)
	$(PY) -m pytest --nbval $(if $(NB),chapters/$(NB)_*.ipynb,chapters/) --nbval-sanitize-with tests/sanitize.cfg -p no:cacheprovider

# A chapter's text source src/chapters/NN_*.md into chapters/NN_*.ipynb, executed in place
# (tools/execute.py); tests/test_text_sources.py, part of `make test`, fails when a pair disagrees.
chapter: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make chapter NB=04"; exit 2; }
	$(PY) tools/execute.py chapters/$(NB)

exercise: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make exercise NB=02"; exit 2; }
	$(PY) tools/execute.py exercises/$(NB)

# Every text source into its notebook without executing (markdown and front matter edits only)
sync: $(STAMP)
	$(PY) tools/execute.py --no-execute $(patsubst src/%.md,%,$(wildcard src/chapters/*.md src/exercises/*.md))

# The experiment chapters 6-8 through papermill (course_lib/instructor/experiments.py), training what is missing:
# PROFILE=smoke (minutes, records in runs/) | cpu (results/cpu/) | full (GPU, results/full/); CHAPTER=06|07|08;
# GPUS=0,1,2,3 (one queue worker per GPU) or WORKERS=N train the missing runs in parallel before the notebooks
PROFILE ?= smoke
experiments: $(STAMP)
	$(PY) -m course_lib.experiments run --profile $(PROFILE) $(if $(CHAPTER),--chapter $(CHAPTER)) \
	  $(if $(GPUS),--gpus $(GPUS)) $(if $(WORKERS),--workers $(WORKERS))

clean:
	rm -rf _build
