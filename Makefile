# The two commands a newcomer needs: `make course` runs the course, `make test` runs the tests.
# Both create .venv and install the pinned requirements and the package on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: course test test-containers unit integration notebooks lint proto strip up down status lab bench freeze clean system

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

system:
	bash infra/system-packages.sh

course: $(STAMP)
	$(BIN)/python -m bookstore.cli course run

# --durations: the report ends with its 25 slowest entries, so a run that grows says where.
test: $(STAMP) system lint
	$(BIN)/python -m pytest -p no:cacheprovider --durations=25 tests
	$(BIN)/python -m pytest -p no:cacheprovider --nbval-lax --nbval-sanitize-with infra/nbval-sanitize.cfg notebooks solutions

# The containers on a real Docker engine (docs/containers.md): installs and starts one where none
# answers and this is root on Debian, builds the images offline if need be, runs the compose stack
# and the testcontainers path, and removes all it started. Says why and passes where it cannot.
test-containers: $(STAMP)
	$(BIN)/python infra/containers/run_checks.py

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-sanitize-with infra/nbval-sanitize.cfg notebooks solutions

lint: $(STAMP)
	$(BIN)/ruff check bookstore tests benchmarks solutions/checks
	$(BIN)/mypy

proto: $(STAMP)
	$(BIN)/python -m bookstore.rpc.codegen

strip: $(STAMP)
	$(BIN)/python -m bookstore.notebook_tools strip notebooks solutions exercises

up: $(STAMP)
	$(BIN)/bookstore up

down: $(STAMP)
	$(BIN)/bookstore down

status: $(STAMP)
	$(BIN)/bookstore status

# The whole course (notebooks/ and exercises/), opened on the start-here notebook.
# Extra options go in LAB_ARGS, e.g. `make lab LAB_ARGS="--no-browser --port 8899"`.
START_HERE := notebooks/week00_start_here.ipynb
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/$(START_HERE) \
		$(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_week06
	$(BIN)/python -m benchmarks.bench_monolith
	$(BIN)/python -m benchmarks.bench_week07
	$(BIN)/python -m benchmarks.bench_breaker
	$(BIN)/python -m benchmarks.bench_grading
	$(BIN)/python -m benchmarks.bench_messaging
	$(BIN)/python -m benchmarks.bench_tracing
	$(BIN)/python -m benchmarks.bench_load

freeze: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -vi '^bookstore' > requirements.lock.tmp && echo "review requirements.lock.tmp"

clean:
	rm -rf $(VENV) build .bookstore
