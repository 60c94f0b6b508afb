# Two environments (see README): .venv for our code, .venv-rasa for the Rasa engine.
# Every target sets up what is missing first, so a fresh clone needs nothing else.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.10 (Rasa 3.6 needs Python < 3.11): on the PATH, else through pyenv (tools/find-python310).
PYTHON310 ?= $(shell tools/find-python310)
PIP_FLAGS ?= --disable-pip-version-check --no-input -q
NLU_TEST ?= tests/nlu/heldout.yml

# Instants that catch clock bugs (UTC; the desk is in Paris): Saturday 23:45 the night of the spring
# DST switch, New Year's Eve 23:30, Friday 18:55 just after the desk closes, a leap day.
CLOCK_INSTANTS ?= "2027-03-27 22:45" "2026-12-31 22:30" "2026-12-04 17:55" "2028-02-29 11:00"

.PHONY: help setup run test test-at test-clocks train nlu-eval bench clean python310 messages replicas-setup replicas

# The message catalogues (crm/i18n.py): each locales/<language>/LC_MESSAGES/messages.po compiled
# to its .mo by Babel (a missing .mo is compiled in memory, so this only saves start-up time).
MO_FILES := $(patsubst %.po,%.mo,$(wildcard locales/*/LC_MESSAGES/messages.po))

help:
	@echo "make run        set up, migrate, load demo data, train if needed, start everything"
	@echo "                (local chat in the terminal when TELEGRAM_BOT_TOKEN is not set)"
	@echo "make test       set up and run the whole test suite"
	@echo "make test-at WHEN='2027-03-27 22:45'   the suite (no e2e, SQLite) with the clock shifted (faketime)"
	@echo "make test-clocks  the same at each instant of CLOCK_INSTANTS"
	@echo "make train      train the Rasa model if its training data, domain or config changed"
	@echo "make nlu-eval   NLU_TEST=file.yml: evaluate the model (writes results/)"
	@echo "make bench      run the benchmarks (bench/), print a table, write bench/results/"
	@echo "make messages   compile the message catalogues (locales/) and check them"
	@echo "make replicas   the production layout on this machine: K=2 bots behind haproxy, Rasa with"
	@echo "                N=2 workers, M=2 action servers (needs PostgreSQL and Redis; see README Replicas)"
	@echo "make clean      remove environments, models, results and the local databases"

python310:
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "Python 3.10 is required (Rasa 3.6 does not run on 3.11+) and was not found."; \
	  echo "Install it, for example: pyenv install 3.10.13   (or: apt-get install python3.10 python3.10-venv)"; \
	  echo "then run make again, or point to it: make PYTHON310=/path/to/python3.10 ..."; \
	  exit 1; fi

.venv/.installed: requirements.txt | python310
	@echo "Setting up .venv (our code) with $(PYTHON310)..."
	@test -x .venv/bin/python || "$(PYTHON310)" -m venv .venv
	@.venv/bin/pip install $(PIP_FLAGS) -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
	@.venv/bin/python -c "import telegram, rasa_sdk, sqlalchemy, alembic, pytest" || { echo "Installing .venv failed"; exit 1; }
	@touch $@

.venv-rasa/.installed: requirements-rasa.txt | python310
	@echo "Setting up .venv-rasa (the Rasa engine; a few minutes the first time)..."
	@test -x .venv-rasa/bin/python || "$(PYTHON310)" -m venv .venv-rasa
	@.venv-rasa/bin/pip install $(PIP_FLAGS) -r requirements-rasa.txt 2>&1 | grep -v "is ignored: it is neither" || true
	@.venv-rasa/bin/rasa --version >/dev/null 2>&1 || { echo "Installing .venv-rasa failed"; exit 1; }
	@touch $@

%.mo: %.po .venv/.installed
	@.venv/bin/pybabel compile -i $< -o $@ --use-fuzzy 2>&1 | grep -v "^compiling" || true

setup: .venv/.installed .venv-rasa/.installed $(MO_FILES)

messages: $(MO_FILES)
	@.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_messages.py

train: setup
	@.venv/bin/python -m bot train

run: setup
	@.venv/bin/python -m bot run

test: setup
	@.venv/bin/python -m bot train --base
	@.venv/bin/python -m pytest $(PYTEST_ARGS)

# libfaketime shifts the clock of pytest and of every process it starts (the CLI tests); the
# clock then runs on from WHEN. PostgreSQL's server keeps its own clock, so those cases are left out.
test-at: .venv/.installed
	@command -v faketime >/dev/null || { echo "faketime is needed: apt-get install faketime"; exit 1; }
	@test -n "$(WHEN)" || { echo "usage: make test-at WHEN='2027-03-27 22:45' (UTC)"; exit 1; }
	@echo "Running the suite (no e2e, SQLite) at $(WHEN) UTC..."
	@faketime "$(WHEN)" .venv/bin/python -m pytest -q -p no:cacheprovider --ignore=tests/e2e --ignore=tests/faults -k "not postgresql" $(PYTEST_ARGS)

test-clocks: .venv/.installed
	@for when in $(CLOCK_INSTANTS); do $(MAKE) --no-print-directory test-at WHEN="$$when" || exit 1; done

nlu-eval: setup
	@.venv/bin/python -m bot nlu-eval $(NLU_TEST)

bench: setup
	@.venv/bin/python -m bench

# haproxy spreads Telegram's webhook calls over the bot replicas (deploy/haproxy.cfg), from
# Debian's packages; the replica tests skip with a message without it.
replicas-setup:
	@command -v haproxy >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q haproxy >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q haproxy >/dev/null 2>&1; }; \
	  fi; }
	@command -v haproxy >/dev/null 2>&1 || { echo "haproxy is needed for the replica layout: apt-get install haproxy"; exit 1; }

K ?= 2
N ?= 2
M ?= 2
replicas: setup replicas-setup
	@.venv/bin/python -m bot run --replicas $(K) --rasa-workers $(N) --action-servers $(M)

clean:
	rm -rf .venv .venv-rasa models results var bench/results/*.json
