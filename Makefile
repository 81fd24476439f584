# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Everything is installed into .venv by this file; nothing is expected beforehand
# except python3 (3.10+), a Rust toolchain and make.
PY ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(BIN):$(PATH)

.PHONY: build demo test test-rust test-python bench lint clean

$(BIN)/maturin:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "maturin>=1.7,<2"

# One release build of the extension, with the package's dev extras, plus the
# real OPA (Go, embedded) for the Rego differential tests and benches. Its
# wheel declares Requires-Python >= 3.14 but is py3-none and runs on 3.10+:
# download it for 3.14, install it ignoring that marker.
OPA_BINDINGS := opa-golib-python-bindings==0.4.4
build: $(BIN)/maturin
	$(BIN)/maturin develop --release --extras dev -q
	@$(BIN)/python -c "import opa_bindings" 2>/dev/null || { \
	  rm -rf $(VENV)/opa-wheel && \
	  $(BIN)/pip download -q --no-deps --python-version 3.14 --only-binary=:all: -d $(VENV)/opa-wheel "$(OPA_BINDINGS)" && \
	  $(BIN)/pip install -q --ignore-requires-python $(VENV)/opa-wheel/*.whl; }

demo: build
	$(BIN)/maestro demo

test-rust:
	cargo test --workspace --release --exclude maestro-python

test-python: build
	$(BIN)/python -m pytest -q

test: build test-rust test-python
	$(BIN)/python benches/run.py --smoke

# Full peer benchmarks (minutes); numpy/scipy-facing runs unset the OpenBLAS
# variables in their own command only.
bench: build
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benches/run.py

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --release -- -D warnings
	$(BIN)/python -m mypy.stubtest maestro_core._native --allowlist stubtest-allowlist.txt

clean:
	rm -rf target $(VENV)
