# Set-up and everyday commands. `make train` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test bench tensorboard clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,sweeps,export]'
	touch $(STAMP)

train: install
	$(BIN)/gan train experiment=quickstart $(ARGS)

test: install
	$(BIN)/python -m pytest $(ARGS)

bench: install
	$(BIN)/python benchmarks/step_time.py
	$(BIN)/python benchmarks/game_step_time.py
	$(BIN)/python benchmarks/throughput.py $(ARGS)

tensorboard: install
	$(BIN)/tensorboard --logdir outputs/

clean:
	rm -rf $(VENV) build dist *.egg-info
