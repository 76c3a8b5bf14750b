# make report: run the embedded default and print the report's paths.  make test: run the suite.
# make check: the quick tier (no workflow runs, no training).
# make cluster-test: the integration config through SLURM on a one-node test cluster (root).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
# the GPUs nvidia-smi lists (none here: no limit, model jobs run side by side on the CPU cores)
GPUS   ?= $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
GPU_LIMIT := $(if $(filter-out 0,$(GPUS)),--resources gpu=$(GPUS))

.PHONY: report test check cluster-test lint dryrun clean bench

$(VENV)/.installed: requirements.txt requirements-base.txt requirements-dev.txt requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c requirements.lock
	@missing=""; \
	  $(BIN)/python -c "import weasyprint" 2>/dev/null || missing=" libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core"; \
	  command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian's$$missing with apt-get (WeasyPrint needs Pango; the tests read PDFs with poppler-utils)"; \
	    apt-get update -qq && apt-get install -y -qq $$missing; fi
	touch $@

report: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default $(GPU_LIMIT)
	@echo
	@echo "Report written:"
	@echo "  $(CURDIR)/results/report/report.html"
	@echo "  $(CURDIR)/results/report/report.pdf"

# the tests in TEST_WORKERS pytest-xdist processes, each file whole in one of them (a shared workflow run of
# tests/conftest.py runs once for all of them). TEST_WORKERS=0: in this process, in order.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(VENV)/.installed
	$(PYTEST)

# the quick tier for development: no workflow runs, no training (markers integration and slow)
check: $(VENV)/.installed
	$(PYTEST) -m "not integration and not slow"

# the SLURM executor plugin, pinned (requirements-cluster.txt), into the same venv
$(VENV)/.cluster-installed: $(VENV)/.installed requirements-cluster.txt requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-cluster.txt -c requirements.lock
	touch $@

# Brings a one-node SLURM cluster up (installs Debian's slurm and munge packages when missing),
# runs .test/config through --executor slurm with workflow/profiles/slurm beside a local run,
# checks the jobs and the results (tests/cluster/), and always tears the cluster down: on
# success, on failure and after the hard timeout. Needs root.
CLUSTER_TIMEOUT ?= 280

cluster-test: $(VENV)/.cluster-installed
	@rc=0; timeout --kill-after=30 $(CLUSTER_TIMEOUT) tests/cluster/run.sh || rc=$$?; \
	  tests/cluster/slurm-cluster.sh down >/dev/null 2>&1 || true; \
	  if [ $$rc = 124 ] || [ $$rc = 137 ]; then echo "cluster-test: timed out after $(CLUSTER_TIMEOUT) s"; fi; \
	  exit $$rc

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

dryrun: $(VENV)/.installed
	$(BIN)/snakemake -n

# the benchmark of benchmarks/README.md (issue 12's plan: shapes at 100, 1,000 and 10,000 images, VGG16
# at 32 and 128; 18 min on 2 cores); quick check: make bench BENCH_ARGS="--plan shapes:2,4"
BENCH_ARGS ?= --plan "shapes:100,1000,10000 vgg16:32,128"

bench: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r benchmarks/requirements-bench.txt -c requirements.lock
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf results .snakemake
