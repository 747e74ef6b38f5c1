# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine with
# only Python 3.10+ installed: they create .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and on its own so a CPU machine can use a CPU build;
# set TORCH to another requirement (e.g. TORCH=torch) for a CUDA build.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
OUT ?= runs/demo

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,ray,multilingual,remote]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/callpipe run audio_samples --out $(OUT)

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot be used
# here). Without root the install fails and the browser tests skip, except under CI=true.
test: $(STAMP)
	test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| echo "could not install chromium: the browser tests will be skipped"
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
