# Set-up and everyday commands. `make train` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test bench tensorboard clean gpu-check wheels

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

# A CUDA machine checked end to end -> benchmarks/GPU.md, with the system python (there is no venv there):
#   make gpu-check ARGS="--wheels wheels"      ARGS="--device cpu --quick --out /tmp/gpu_cpu.md": a CPU dry run
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py $(ARGS)

# hydra-core, omegaconf and antlr4 as wheels in wheels/, for a machine that has torch but not them. The first two
# at constraints.txt's pins; antlr4 4.9.3 (omegaconf 2.3's pin) is a source archive on PyPI: pip wheel builds it.
WHEELS := $(shell grep -E '^(hydra-core|omegaconf)==' constraints.txt) antlr4-python3-runtime==4.9.3

wheels:
	$(PYTHON) -m pip download --quiet --no-deps --dest wheels $(WHEELS)
	for f in wheels/*.tar.gz; do [ -e "$$f" ] || continue; \
		$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir wheels "$$f" && rm "$$f"; done

clean:
	rm -rf $(VENV) build dist *.egg-info
