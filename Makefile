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

# Two pytest workers with one thread each: the suite alternates between torch maths and process
# start-ups, which overlap well on two cores (6 min instead of 9.5 on the CI's kind of machine).
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(ARGS)

bench: install
	$(BIN)/python benchmarks/step_time.py
	$(BIN)/python benchmarks/game_step_time.py
	$(BIN)/python benchmarks/throughput.py $(ARGS)
	$(BIN)/python benchmarks/first_hour.py startup

tensorboard: install
	$(BIN)/tensorboard --logdir outputs/

clean:
	rm -rf $(VENV) build dist *.egg-info
