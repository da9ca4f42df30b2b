# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make run    install, then ingest the bundled sample and write this month's alerts and report
#   make test   install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 3000
# Where PYTHONDONTWRITEBYTECODE is set, pytest would rewrite the asserts of every test module, and Python compile the
# project's own modules in every process (the editable install leaves them uncompiled), on every run: 3 to 4 s of CPU
# at each start of the unit tests, about 0.2 s at each command-line run a test starts. The test runs cache both in
# __pycache__ as usual.
CACHE_BYTECODE := PYTHONDONTWRITEBYTECODE=

.PHONY: install run lint test unit ui bench lock clean

install: $(VENV)/.installed

# uv is bootstrapped into the project venv with pip; if that fails (no index for it), plain pip installs the same lock.
# Bytecode is compiled at install time (pip does it by default, uv when asked; the project's own modules, which an
# editable install leaves as source, by compileall): where PYTHONDONTWRITEBYTECODE is set, Python would otherwise
# compile every module on every start, which makes each run seconds slower (the project's own, 0.3-0.4 s).
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv 2>/dev/null; then \
		echo "installing with uv"; \
		$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.lock -e . ; \
	else \
		echo "uv unavailable: installing with pip"; \
		$(BIN)/python -m pip install --disable-pip-version-check -r requirements.lock -e . ; \
	fi
	$(BIN)/python -m compileall -q sahel_pipeline
	touch $@

run: install
	$(BIN)/sahel run $(ARGS)

# ruff (style, import order, pyflakes, bugbear, pyupgrade) and mypy, configured in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The linters first, then the suite. PostgreSQL's server binaries (the deployment test), R with
# r-cran-surveillance (the detector evaluation's R peers), nginx and redis-server (the proxy and Celery tests) are
# installed from Debian, as root; without them those tests skip. pytest exits with 5 when it collects no test: that is a failure of the suite, said plainly.
# Two worker processes, each taking whole test files (a module's fixtures, such as a whole-graph run, are made once).
test: lint
	@sh scripts/ensure_postgres.sh
	@sh scripts/ensure_r.sh
	@sh scripts/ensure_test_services.sh
	@$(CACHE_BYTECODE) $(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status

# The unit tests alone (no end-to-end run, CLI, webserver, PostgreSQL or real files): seconds, for the edit loop. Two
# worker processes (pytest-xdist; a worker short of tests takes some of the other's queue, as the tests take from
# milliseconds to a second); PYTEST_ARGS="-n 0" runs them in this one (for a debugger, or on a busy machine).
unit: install
	$(CACHE_BYTECODE) $(BIN)/python -m pytest -n 2 --dist worksteal -m "not slow and not integration" $(PYTEST_ARGS)

# A project-local Dagster home (SQLite, one run at a time) and a .env with the default paths, made once; then the
# webserver on 127.0.0.1:$(PORT) and the daemon (scripts/ui.sh). `sahel run` records its runs in the same home.
ui: install
	mkdir -p .dagster_home
	[ -f .dagster_home/dagster.yaml ] || cp deploy/dagster-local.yaml .dagster_home/dagster.yaml
	[ -f .env ] || cp .env.example .env
	DAGSTER_HOME=$(CURDIR)/.dagster_home sh scripts/ui.sh $(BIN) $(PORT)

bench: install
	$(BIN)/python -m sahel_pipeline.benchmark $(ARGS)

# Re-resolve the pinned dependency set after editing pyproject.toml.
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra postgres --extra celery --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .dagster_home data/outputs
