# Identity Console — every set-up step lives here, so `make run` and `make test` work from a clean clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PORT   ?= 8000

.PHONY: install run test test-slow migrate bench clean

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
run: migrate
	$(PY) manage.py bootstrap
	$(PY) manage.py collectstatic --noinput -v 0
	$(VENV)/bin/gunicorn -c gunicorn.conf.py --bind 127.0.0.1:$(PORT) identity_console.wsgi

## The whole suite except the slow, server-starting tests (the browser suite runs when Chromium is
## installed, and says so when it is not).
test: install
	$(PY) -m pytest -m "not slow"

## The slow suites (live servers, README quickstart); .ci/run runs them.
test-slow: install
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) var/db.sqlite3* .pytest_cache
