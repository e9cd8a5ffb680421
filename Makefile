# Lasso: every chore is one target. `make run` and `make test` install what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ANVIL := node_modules/.bin/anvil
PYTEST_ARGS ?=
# `make run PRUNE_HISTORY=64`: the last devnet node keeps the state of only its last 64
# blocks (anvil --prune-history), like a non-archive provider; `make probe` then shows it.
PRUNE_HISTORY ?=
CHAIN ?= devnet
# `make battle BATTLE_ARGS="--seed 42 --scenario provider-killed"`: options for the battle
# harness (python -m battle --help). BATTLE_TARGET / BATTLE_CHAIN in the environment pick
# the target: devnet (default), public (BATTLE_CHAIN=ethereum), config (--config PATH).
BATTLE_ARGS ?=

# Debian's chromium, for the dashboard's browser test (tests/dashboard/test_browser.py drives
# it with the playwright dev dependency; no browser download).
CHROMIUM ?= /usr/bin/chromium
APT_GET ?= apt-get
# Debian's redis-server, for the shared-state tests (tests/shared/ start their own on a free
# port; never the system service). Without it those tests skip and say why.
REDIS_SERVER ?= /usr/bin/redis-server

.PHONY: install run probe test test-fast explore lint format bench battle battle-quick battle-replay clean

install: $(VENV)/.installed $(ANVIL) $(CHROMIUM) $(REDIS_SERVER)

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Lasso needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# A production install (docs/service.md): a plain venv holding Lasso and its runtime
# dependencies only: not editable, no dev or battle extras, no anvil. On a server:
#   make install-prod PROD_VENV=/opt/lasso/.venv
# Run it again after pulling a new version (then systemctl restart lasso).
PROD_VENV ?= .venv-prod

.PHONY: install-prod
install-prod:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Lasso needs Python >= 3.11")'
	test -x $(PROD_VENV)/bin/python || $(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/python -m pip install --quiet .
	$(PROD_VENV)/bin/lasso --version

# anvil comes from the npm package @foundry-rs/anvil, pinned exactly in package.json
# (integrity hashes in package-lock.json), installed into ./node_modules, never
# globally. Not `npm ci`: npm 11 writes lock files without the other platforms'
# optional binaries and then refuses them in `npm ci`; `install --no-save` uses the
# same pins and leaves the lock file as committed.
$(ANVIL): package.json package-lock.json
	npm install --no-save --no-audit --no-fund --loglevel=error
	test -x $@ && touch $@

# Installed with apt-get where that is possible (Debian, as root); anywhere else one line
# says why the browser test will be skipped. Never fails `make install`.
$(CHROMIUM):
	@if command -v $(APT_GET) >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium for the dashboard's browser test ($(APT_GET) install chromium)"; \
	  DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -q chromium >/dev/null \
	    || echo "chromium: $(APT_GET) install failed; the dashboard's browser test will be skipped"; \
	else \
	  echo "chromium: no $(CHROMIUM) and no $(APT_GET) as root to install it; the dashboard's browser test will be skipped"; \
	fi

# As chromium: apt-get where possible (Debian, as root), else one line; never fails `make install`.
# The package also enables a system redis service; the tests never use it.
$(REDIS_SERVER):
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif command -v $(APT_GET) >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing redis-server for the shared-state tests ($(APT_GET) install redis-server)"; \
	  DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -q redis-server >/dev/null \
	    || echo "redis-server: $(APT_GET) install failed; the Redis tests (tests/shared) will be skipped"; \
	else \
	  echo "redis-server: not found and no $(APT_GET) as root to install it; the Redis tests (tests/shared) will be skipped"; \
	fi

run: install
	$(BIN)/lasso up --config settings.toml $(if $(PRUNE_HISTORY),--prune-history $(PRUNE_HISTORY))

# Measure every provider of $(CHAIN) (default: the devnet `make run` starts) directly.
probe: install
	$(BIN)/lasso probe $(CHAIN) --config settings.toml

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not integration" $(PYTEST_ARGS)

# The property and battle fuzzing tests with a fresh random seed (make test derandomizes them). Pin what it finds
# with @example.
explore: install
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest tests/property tests/battle $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check lasso tests bench battle
	$(BIN)/ruff format --check lasso tests bench battle
	$(BIN)/mypy

format: install
	$(BIN)/ruff format lasso tests bench battle
	$(BIN)/ruff check --fix lasso tests bench battle

bench: install
	$(BIN)/python -m bench

# The battle harness (battle/README.md): fuzzing, then every chaos scenario, each judged by
# SLOs measured from what happened; exit 1 on any breach. About 5 minutes on the devnet.
# The report lands in battle/reports/<UTC timestamp>/ (report.md, report.html, report.json).
battle: install
	$(BIN)/python -m battle $(BATTLE_ARGS)

# The quick subset (under 3 minutes): what CI runs.
battle-quick: install
	$(BIN)/python -m battle --quick $(BATTLE_ARGS)

# Replay one saved fuzz failure: make battle-replay FILE=battle/reports/<stamp>/fuzz/failures/1-....json
battle-replay: install
	@test -n "$(FILE)" || { echo "usage: make battle-replay FILE=path/to/failure.json"; exit 2; }
	$(BIN)/python -m battle replay $(FILE)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
