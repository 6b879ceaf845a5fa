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

# Every test, the slow end-to-end tier included (CI runs this), in two pytest processes at once: every
# test but the marked ones on every core (pytest-xdist: one worker per core; tests/conftest.py), and
# beside it, in one process of one thread, the tests that use the one SLURM cluster or sweep through
# submitit in-process (marked slurm or serial; they mostly wait for jobs; under xdist, a worker that ran
# such a sweep could find pytest's capture file closed later, a failure we could not pin down). Its
# report follows the first's; make fails when either fails. pytest exits 5 when it collects no test;
# make treats that as a failure too. PYTEST_WORKERS=0 runs the first part in its process.
PYTEST_WORKERS ?= auto
PYTEST := $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup
test: $(STAMP)
	@report=$$(mktemp); \
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "slurm or serial" > $$report 2>&1 & beside=$$!; \
	$(PYTEST) -m "not slurm and not serial"; first=$$?; \
	wait $$beside; second=$$?; \
	echo "== the SLURM and serial tests (run beside the others) =="; cat $$report; rm -f $$report; \
	test $$first -eq 0 && test $$second -eq 0

# Skip the tests marked slow, serial or slurm, for quick iterations.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not slurm and not serial"

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

# The field's protocol (docs/measures.md#the-generalization-study): a 2x2x2 grid of LeNet on digits, two
# seeds each: the training-set size (--split 0.5 and 0.97 of the training split held out: 674 and 40
# images), label noise (0 and 0.3) and the batch size (16 and 32; Adam at 0.002, no weight decay),
# every member trained to training cross-entropy 0.01 (the cap of 200 epochs is above the 20-150 they
# need), the seeds' measures (projections, spectra, DSE per snapshot) and the field's (norms, margin,
# sharpness, optimization) on each, then the ranking against the generalization gap. The size and
# the noise move the gap by 15 points or more, beyond what the 450 test images can blur (Dziugaite et
# al.'s weighted environments); two seeds give an environment at most 4 pairs, so the ranking judges
# environments from an effective sample size of 3 (the reference's threshold of 12 needs 4 seeds).
.PHONY: demo-generalization
GENERALIZATION := sweep.py --root demo_output --name generalization --arch lenet --dataset digits \
	--split 0.5 0.97 --stratified --noise 0 0.3 --batch-size 16 32 --seed 0 1 --lr 0.002 --optimizer adam \
	--weight-decay 0 --stop-train-loss 0.01 --epochs 200 --snapshot-every 200 --dse-sigma auto \
	--analyses projections spectra norms margin sharpness optimization --jobs 2

demo-generalization: $(STAMP)
	$(PY) $(GENERALIZATION)
	$(PY) rank_measures.py demo_output/generalization --targets gen_gap loss_gap test_top1 --min-ess 3 \
		--out demo_output/generalization/ranking
	@echo "Report: demo_output/generalization/ranking/report.md"

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache demo_output
