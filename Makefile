# Two commands matter: `make up` runs the whole system, `make test` runs the whole suite.
# Both work on a fresh machine with Python 3.11: they create .venv and install into it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := $(wildcard services tests bench)
# The desk app's browser libraries (services/ticketing/desk/package-lock.json), from the npm
# registry; the browser tests drive Debian's chromium. Both are installed when missing (apt-get
# as root, else through sudo).
DESK := services/ticketing/desk
DESK_STAMP := $(DESK)/node_modules/.installed
# The operators' console's chart library (services/console/static/package-lock.json), likewise.
CONSOLE := services/console/static
CONSOLE_STAMP := $(CONSOLE)/node_modules/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq

.PHONY: up test lint format bench-ingest clean e2e-compose desk console browser desk-screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# One recipe for every web page's npm packages: `npm ci` from the folder's lockfile.
%/node_modules/.installed: %/package.json %/package-lock.json
	command -v npm >/dev/null || { $(APT_INSTALL) npm; }
	npm ci --prefix $* --omit=dev --no-audit --no-fund
	touch $@

desk: $(DESK_STAMP)

console: $(CONSOLE_STAMP)

browser:
	test -x $(CHROMIUM) || { $(APT_INSTALL) chromium; }

up: $(STAMP) $(DESK_STAMP) $(CONSOLE_STAMP)
	$(BIN)/vaksin up

test: $(STAMP) $(DESK_STAMP) $(CONSOLE_STAMP) browser
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy services/common
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)

format: $(STAMP)
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

# The e2e checks against the compose harness (needs Docker, so not part of `make test`): build the
# image, start everything under its own project with the example secrets, run
# tests/deploy/compose_e2e through the published ports, keep the logs in deploy/compose/e2e.log,
# then remove the harness and its volumes.
E2E_COMPOSE := docker compose -f deploy/compose/docker-compose.yml -p vaksin-e2e \
	--env-file deploy/compose/.env.example

e2e-compose: export VAKSIN_ENV_FILE = .env.example
e2e-compose: $(STAMP)
	$(E2E_COMPOSE) up --build --detach --wait --wait-timeout 300 \
		&& VAKSIN_COMPOSE_E2E=deploy/compose/.env.example $(BIN)/pytest tests/deploy/compose_e2e; \
		status=$$?; $(E2E_COMPOSE) logs --no-color > deploy/compose/e2e.log 2>&1; \
		$(E2E_COMPOSE) down --volumes --remove-orphans; exit $$status

# Screenshots of the desk app's and the console's main screens for docs/desk/ and docs/console/
# (taken by the browser tests).
desk-screenshots: $(STAMP) $(DESK_STAMP) $(CONSOLE_STAMP) browser
	BROWSER_SCREENSHOTS=docs $(BIN)/pytest tests/browser -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(DESK)/node_modules $(CONSOLE)/node_modules
