# One command each on a fresh machine: `make run`, `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.built
MO := api/web/translations/zh/LC_MESSAGES/messages.mo

.PHONY: install run test lint typecheck bench soak chaos clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(MO): api/web/translations/zh/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -d api/web/translations

# Front-end assets (package.json, web/): npm ci from the lock file, then esbuild into
# api/web/static/dist/.
$(NODE_STAMP): package.json package-lock.json web/build.mjs $(wildcard web/src/*)
	npm ci --no-audit --no-fund --ignore-scripts
	node web/build.mjs
	touch $(NODE_STAMP)

install: $(STAMP) $(MO) $(NODE_STAMP)

run: $(STAMP) $(MO) $(NODE_STAMP)
	$(BIN)/tradeflow db upgrade
	$(BIN)/tradeflow demo --if-new
	$(BIN)/tradeflow deploy bpmn/*.bpmn bpmn/*.dmn forms/*.form
	@echo "Open http://127.0.0.1:8000/ and sign in as wang.fang (or any demo person) with the password tradeflow-demo."
	@echo "API: sign in as admin (a new token each run; users: .venv/bin/tradeflow users add --help):"
	@echo "  Authorization: Bearer $$($(BIN)/tradeflow users add admin --admin --process-owner --auditor | tail -n 1)"
	$(BIN)/tradeflow serve

test: $(STAMP) $(MO) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy engine api forms cli tools bench trade
	$(BIN)/pytest -n 3

bench: $(STAMP)
	$(BIN)/python -m bench.completions
	$(BIN)/python -m bench.http_completions
	$(BIN)/python -m bench.http_floor
	$(BIN)/python -m bench.inbox
	$(BIN)/python -m bench.timers
	$(BIN)/python -m bench.analytics
	$(BIN)/python -m bench.correlation
	$(BIN)/python -m bench.step_curve

soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Each fault of docs/faults.md caused for real against `tradeflow serve` on PostgreSQL
# (outside `make test`: about a minute, and it stops and cancels things); prints the figures.
chaos: $(STAMP) $(MO) $(NODE_STAMP)
	$(BIN)/pytest chaos -p no:randomly -p no:xdist -s -q

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
