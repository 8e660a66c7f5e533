# `make demo` and `make test` set everything up themselves (a .venv in this folder).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo
PYTEST_ARGS ?=

.PHONY: install demo test test-slow bench results clean

install: $(STAMP)

# Reinstall only when the package metadata or the pins change.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,tensorboard]"
	touch $(STAMP)

# The headline: the shipped LSNN on held-out episodes with frozen weights, against the no-memory
# control and an untrained network (figures and a latency table in $(DEMO_OUT)/).
demo: install
	$(BIN)/snn-icl demo --out $(DEMO_OUT)

# Two pytest-xdist workers, one torch thread each (tests/conftest.py): CI's two cores, half the time.
test: install
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/lsnn_throughput.py

# docs/results.md and the pages after it: every number and figure that depends on the shipped networks.
# RUN is the training run of the shipped LSNN (`snn-icl train tasks/water_maze.toml --seed 0
# --out runs/wm0`); it gives the learning curve and the lsnn_*.png figures, and without it they
# are left as they are (with a note). About 15 minutes on 2 cores.
RUN ?= runs/wm0
RESULTS ?= results
PRE := snn_icl/pretrained
FIG := $(PRE)/figures
TEST_SEED ?= 1000000
results: install
	mkdir -p $(RESULTS)
	$(BIN)/snn-icl evaluate pretrained --episodes 256 --seed $(TEST_SEED) --out $(PRE)/lsnn_water_maze_eval_test.json
	$(BIN)/snn-icl compare pretrained pretrained:lstm pretrained:transformer --episodes 256 --seed $(TEST_SEED) --out $(RESULTS)/compare_test --overwrite
	cp $(RESULTS)/compare_test/compare.md $(PRE)/compare_test.md
	$(BIN)/snn-icl evaluate pretrained --episodes 256 --seed 1 --out $(PRE)/lsnn_water_maze_eval.json
	for s in 2 3; do $(BIN)/snn-icl evaluate pretrained --episodes 256 --seed $$s --out $(RESULTS)/eval_seed$$s.json || exit 1; done
	if [ -f $(RUN)/checkpoint.safetensors ]; then \
	  $(BIN)/snn-icl evaluate $(RUN) --episodes 256 --seed 1 --out $(RUN)/eval.json && \
	  $(BIN)/snn-icl plot $(RUN) && \
	  for f in trajectories latency_by_trial probe_occupancy learning_curve raster; do cp $(RUN)/$$f.png $(FIG)/lsnn_$$f.png || exit 1; done; \
	else echo "NOTE: no training run in $(RUN): the lsnn_*.png figures (they need its metrics.csv) are left as they are"; fi
	$(BIN)/snn-icl compare pretrained pretrained:lstm pretrained:transformer --episodes 256 --seed 1 --out $(RESULTS)/compare --overwrite
	cp $(RESULTS)/compare/compare.md $(PRE)/compare.md && cp $(RESULTS)/compare/compare.png $(FIG)/compare.png
	$(BIN)/snn-icl retention pretrained pretrained:lstm pretrained:transformer --episodes 128 --seed 1 --out $(RESULTS)/retention --overwrite
	cp $(RESULTS)/retention/retention.md $(PRE)/retention.md && cp $(RESULTS)/retention/retention.png $(FIG)/retention.png
	$(BIN)/snn-icl analyze pretrained pretrained:lstm pretrained:transformer --out $(RESULTS)/analysis --overwrite
	for f in decoding ablations spatial_information attention_retrieval_pretrained_transformer swap_paths_pretrained_lsnn_swap_v_z swap_paths_pretrained_transformer_swap_kv; do cp $(RESULTS)/analysis/$$f.png $(FIG)/memory_$$f.png || exit 1; done
	$(BIN)/python bench/brian2_behaviour.py --episodes 256 --out $(RESULTS)/brian2
	cp $(RESULTS)/brian2/sweep.png $(FIG)/brian2_knobs.png

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
