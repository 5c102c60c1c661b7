# Two entry points for a fresh machine: `make demo` and `make test`. Both create and reuse .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench extension venv clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 resolves to the local CPU wheel; anything unpinned pulls CUDA
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m backend demo --out out

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# the installable zip, built by Blender's own `extension build` (into dist/)
extension: $(STAMP)
	mkdir -p dist
	$(PY) -c "import bpy, pathlib, subprocess, sys; cli = pathlib.Path(bpy.__file__).parents[2] / 'addons_core/bl_pkg/cli/blender_ext.py'; sys.exit(subprocess.call([sys.executable, str(cli), 'build', '--source-dir', '.', '--output-dir', 'dist']))"

bench: $(STAMP)
	$(PY) -m backend bench world

clean:
	rm -rf $(VENV) out dist
