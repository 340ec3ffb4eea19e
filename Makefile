# Identity Console — every set-up step lives here, so `make run` and `make test` work from a clean clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PORT   ?= 8000

.PHONY: install run test test-slow test-browser migrate bench bench-quick bench-callgrind bench-peer bench-tools mutation clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

## Serve the console on http://localhost:$(PORT) (SQLite under var/; first run creates an administrator).
## Its issuer is http://localhost:$(PORT)/oauth2/token (or CONSOLE_ISSUER), recorded in var/ so that every
## manage.py command run in this checkout agrees with the server; the sign-in box is printed last.
run: migrate
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py bootstrap --port $(PORT) --serve

CHROMIUM ?= /usr/bin/chromium

## The whole suite except the slow, server-starting tests (the browser suite runs when Chromium is
## installed, and says so when it is not).
test: install
	@if [ -x $(CHROMIUM) ]; then \
		echo "Browser suite: running with $(CHROMIUM) (screenshots in artifacts/screenshots/)"; \
	elif [ "$$BROWSER_TESTS" = required ]; then \
		echo "Browser suite: REQUIRED but $(CHROMIUM) is missing (apt-get install -y chromium)"; exit 1; \
	else \
		echo "Browser suite: SKIPPED - $(CHROMIUM) is not installed (apt-get install -y chromium to run it)"; \
	fi
	CHROMIUM_PATH=$(CHROMIUM) $(PY) -m pytest -m "not slow"

## The slow suites (live servers, README quickstart); .ci/run runs them.
test-slow: install
	$(PY) -m pytest -m slow

## Only the browser suite (Playwright driving Debian's Chromium; never a downloaded browser).
test-browser: install
	CHROMIUM_PATH=$(CHROMIUM) BROWSER_TESTS=required $(PY) -m pytest tests/browser

## Benchmarks (never part of `make test`): throughput and same-run ratios against gunicorn as
## configured (SQLite RS256/ES256, PostgreSQL), a soak of $(BENCH_SOAK) exchanges, callgrind counts.
BENCH_SOAK ?= 100000
bench: install bench-tools
	$(PY) -m bench.run --soak $(BENCH_SOAK) --json var/bench/results.json
	$(PY) -m bench.inprocess --json var/bench/callgrind.json

## The throughput table and ratios only (no soak, no callgrind).
bench-quick: install bench-tools
	$(PY) -m bench.run --json var/bench/results.json

bench-callgrind: install bench-tools
	$(PY) -m bench.inprocess --json var/bench/callgrind.json

## Side by side with node-oidc-provider's token exchange (optional; needs node + npm and the shared
## script, BENCH_PEER_SCRIPT): this checkout's committed HEAD served as the README deploys it, the peer
## beside it, interleaved wrk rounds; prints each round, the medians of rounds 1.. and ours/peer,
## then the median p99 of each side and their ratio (bench/peer_summary.py).
BENCH_PEER_SCRIPT ?= ../shared/bench-peer/side_by_side.sh
BENCH_PEER_ROUNDS ?= 6
BENCH_PEER_SLICE  ?= 5s
BENCH_PEER_DIR    ?= $(CURDIR)/var/bench/peer
# Subject tokens minted for the run (half per side, ours split per round): enough that no round of ours
# wraps around below ~2,100 exchanges/s (the script's default 40,000 caps ours at ~667/s with 6 rounds of 5 s).
BENCH_PEER_TOKENS ?= 130000
bench-peer: install bench-tools
	@test -x "$$(command -v node)" && test -x "$$(command -v npm)" || { echo "bench-peer needs node and npm"; exit 1; }
	@test -f $(BENCH_PEER_SCRIPT) || { echo "bench-peer: no $(BENCH_PEER_SCRIPT) (set BENCH_PEER_SCRIPT)"; exit 1; }
	@echo "load average before: $$(cut -d' ' -f1-3 /proc/loadavg)"
	SBS=$(BENCH_PEER_DIR) SBS_TOKENS=$(BENCH_PEER_TOKENS) bash $(BENCH_PEER_SCRIPT) . $(BENCH_PEER_ROUNDS) $(BENCH_PEER_SLICE)
	@echo "load average after: $$(cut -d' ' -f1-3 /proc/loadavg)"
	$(PY) -m bench.peer_summary $(BENCH_PEER_DIR)/rounds.txt

bench-tools:
	@command -v wrk >/dev/null && command -v valgrind >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq wrk valgrind; }

## Mutation testing of the security code (never part of `make test` or .ci/run): a seeded sample of
## MUTATION_SAMPLE mutants per module (or `all`), each against the tests that concern its module;
## prints each module's score and every survivor (docs/testing.md).
MUTATION_SAMPLE ?= 20
MUTATION_SEED   ?= 22
MUTATION_JOBS   ?= 2
mutation: install
	$(PY) -m tools.mutation.run --sample $(MUTATION_SAMPLE) --seed $(MUTATION_SEED) --jobs $(MUTATION_JOBS)

clean:
	rm -rf $(VENV) var/db.sqlite3* .pytest_cache
