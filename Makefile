# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup lint test test-fast demo demo-family bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# ruff, with the rules of pyproject.toml (CI runs it before the tests).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Every test, the slow end-to-end tier included (CI runs this). pytest exits 5 when it collects no
# test; make treats that as a failure too.
test: $(STAMP)
	$(PY) -m pytest

# Skip the tests marked slow, for quick iterations.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

demo: $(STAMP)
	$(PY) demo.py

# A family: LeNet on digits at noise 0 and 1.0 and pixel shuffle, 2 seeds each, then their comparison.
FAMILY := sweep.py --root demo_output --name family --arch lenet --dataset digits --noise 0 1.0 -1 --seed 0 1 \
	--epochs 15 --optimizer adam --lr 0.002 --batch-size 32 --lr-schedule cosine --split 0.1 --stratified \
	--snapshot-all-until 5 --snapshot-every 5 --dse-sigma auto --analyses projections reinit spectra --jobs 2

demo-family: $(STAMP)
	$(PY) $(FAMILY)
	$(PY) compare_runs.py demo_output/family --out demo_output/family/compare
	@echo "Report: demo_output/family/compare/report.md"

# Which measure tracks generalization: LeNet on digits at six label-noise levels, 2 seeds each (short
# runs, train accuracy recorded for the gap), then the ranking of the measures (docs/measures.md).
.PHONY: demo-measures
MEASURES := sweep.py --root demo_output --name measures --arch lenet --dataset digits \
	--noise 0 0.2 0.4 0.6 0.8 1.0 --seed 0 1 --epochs 12 --optimizer adam --lr 0.002 --batch-size 32 \
	--lr-schedule cosine --split 0.1 --stratified --snapshot-every 12 --dse-sigma auto --train-acc \
	--analyses projections spectra --jobs 2

demo-measures: $(STAMP)
	$(PY) $(MEASURES)
	$(PY) rank_measures.py demo_output/measures --out demo_output/measures/ranking
	@echo "Report: demo_output/measures/ranking/report.md"

# The field's protocol (docs/measures.md#the-generalization-study): a 2x2x2x2 grid of the parametric
# ConvNet on digits (depth, width, learning rate, batch size; one seed), every member trained to
# training cross-entropy 0.01 (no weight decay; the cap of 60 epochs is above the 20-40 they
# need), the seeds' measures (projections, spectra, DSE per snapshot) and the field's (norms,
# margin, sharpness, optimization) on each, then the ranking against the generalization gap.
.PHONY: demo-generalization
GENERALIZATION := sweep.py --root demo_output --name generalization --arch convnet --dataset digits \
	--depth 3 4 --width 16 24 --lr 0.01 0.02 --batch-size 64 128 --seed 0 --optimizer adam --weight-decay 0 \
	--stop-train-loss 0.01 --epochs 60 --snapshot-every 60 --dse-sigma auto \
	--analyses projections spectra norms margin sharpness optimization --jobs 2

demo-generalization: $(STAMP)
	$(PY) $(GENERALIZATION)
	$(PY) rank_measures.py demo_output/generalization --targets gen_gap loss_gap test_top1 \
		--out demo_output/generalization/ranking
	@echo "Report: demo_output/generalization/ranking/report.md"

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache demo_output
