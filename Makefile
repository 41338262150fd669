# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv first.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser demo test lint typecheck proto bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/autobidder demo --strategy strategies/sa1-vpp.toml

# The report's layout test needs headless Chromium (a Debian package): installed when this runs as
# root with apt, else that one test is skipped and says why.
browser:
	@command -v chromium-headless-shell >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell) \
	  >/dev/null 2>&1; } || echo "note: no headless Chromium; tests/test_backtest_report_browser.py will skip"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy autobidder forecasting optimization market_adapters exchange fleet workflows worker backtest

proto: $(STAMP)
	$(BIN)/python -m autobidder.protos

clean:
	rm -rf $(VENV) var
