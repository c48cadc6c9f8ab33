# The few commands people type; CI (.ci/run) calls the same targets.
#   make setup      install everything the local stack and the tests need (idempotent)
#   make up/down    start/stop the local no-Docker stack (Postgres 15, Kafka, mail sink, services)
#   make status     health of every component (non-zero exit if any is unhealthy)
#   make test       setup, up, run every test tier, down (exit code of pytest preserved)
#   make test-unit  the unit tier only: no stack; needs only `uv sync` and the Node checks (tools/ajv: Ajv strict;
#                   tools/asyncapi: the AsyncAPI parser), which it installs
#   make drill-rolling-upgrade  two releases on the running stack (issue 10 item 5; needs `make up`, ~2 min)
#   make helm-check helm lint + template + schema validation of deploy/helm/renja (builds helm once; long)
#   make test-tls   Kafka TLS+SCRAM / mTLS and Postgres ssl=on on scratch servers of their own (~2 min)

#   make drill-topic-loss      renja.events deleted and republished from the services (issue 11 item 5; needs `make up`)
#   make fmt        format and autofix (ruff format + ruff check --fix); `make lint` checks the same
SHELL := /bin/bash
.DEFAULT_GOAL := help

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PG_BIN := /usr/lib/postgresql/15/bin
KAFKA_POM := deploy/local/kafka/pom.xml
KAFKA_JAR := deploy/local/kafka/target/kafka-libs/kafka_2.13-3.9.1.jar
# apt-get needs root; as an ordinary user go through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends
PYTEST_MARKERS ?= unit or integration or e2e
# helm for the chart's offline checks: built from the Go module proxy once into .cache/bin (the Go build
# cache makes a rebuild in a fresh clone quick).
HELM_VERSION := v3.21.4
HELM := $(REPO)/.cache/bin/helm

.PHONY: help setup up down status lint fmt typecheck test test-unit demo drill-rolling-upgrade helm-check test-tls drill-topic-loss

help:
	@echo "targets: setup up down status lint fmt typecheck test test-unit demo drill-rolling-upgrade helm-check test-tls drill-topic-loss"

setup:
	@command -v uv >/dev/null 2>&1 || pip install --quiet uv
	uv sync --frozen
	@if [ ! -x $(PG_BIN)/postgres ] || ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1 \
		|| ! command -v pdftoppm >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
		$(SUDO) apt-get update -q; \
	fi
	@[ -x $(PG_BIN)/postgres ] || $(APT_INSTALL) postgresql-15
	@command -v pdftoppm >/dev/null 2>&1 || $(APT_INSTALL) poppler-utils
	@command -v chromium >/dev/null 2>&1 || $(APT_INSTALL) chromium fonts-dejavu-core
	@command -v java >/dev/null 2>&1 || $(APT_INSTALL) openjdk-17-jre-headless
	@command -v mvn >/dev/null 2>&1 || $(APT_INSTALL) maven
	@[ -f $(KAFKA_JAR) ] || mvn -B -q -Dstyle.color=never -f $(KAFKA_POM) -Dmaven.repo.local=$(REPO)/.cache/m2 package
	@[ -f $(KAFKA_JAR) ] || { echo "Kafka jars missing after mvn: $(KAFKA_JAR)"; exit 1; }
	@command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(APT_INSTALL) nodejs npm; }
	@[ -d tools/ajv/node_modules/ajv ] || npm ci --prefix tools/ajv --no-audit --no-fund --loglevel=error --color=false
	@[ -d tools/asyncapi/node_modules/@asyncapi/parser ] || npm ci --prefix tools/asyncapi --no-audit --no-fund --loglevel=error --color=false

up:
	uv run renja up

down:
	uv run renja down

status:
	uv run renja status

lint:
	uv run ruff check . && uv run ruff format --check .

fmt:
	uv run ruff format . && uv run ruff check --fix .

typecheck:
	uv run mypy shared services deploy cli

# The stack is stopped whatever happens; the exit code is that of `up` or pytest.
test: setup
	@rc=0; \
	$(MAKE) --no-print-directory up && uv run pytest -m "$(PYTEST_MARKERS)" tests/ || rc=$$?; \
	$(MAKE) --no-print-directory down || true; \
	exit $$rc

# Not part of `make test`: a newer release (a patched copy of HEAD) beside this one on the running stack.
drill-rolling-upgrade:
	uv run python -m deploy.local.drills.rolling_upgrade.drill

# Not part of `make setup`/`make test`: building helm from the Go module proxy takes long on a 2-core machine.
helm-check:
	@command -v go >/dev/null 2>&1 || $(APT_INSTALL) golang-go
	@[ -x $(HELM) ] || GOBIN=$(REPO)/.cache/bin GOFLAGS=-mod=mod go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	RENJA_REQUIRE_HELM=1 uv run pytest -m unit tests/unit/test_helm_chart.py tests/unit/test_container_files.py

# Not part of `make test`: starts its own TLS Kafka and Postgres on the RENJA_SCRATCH_* ports.
test-tls:
	uv run pytest -m cluster tests/cluster/test_secured_connections.py

# Not part of `make test`: deletes the stack's renja.events (every test reads it) and writes it again.
drill-topic-loss:
	uv run python -m deploy.local.drills.topic_loss

test-unit:
	@uv sync --frozen -q
	@[ -d tools/ajv/node_modules/ajv ] || npm ci --prefix tools/ajv --no-audit --no-fund --loglevel=error --color=false
	@[ -d tools/asyncapi/node_modules/@asyncapi/parser ] || npm ci --prefix tools/asyncapi --no-audit --no-fund --loglevel=error --color=false
	uv run pytest -m unit tests/

demo: setup up
	uv run renja demo
	@echo
	@echo "The stack keeps running. Look around:"
	@echo "  uv run renja status            components, pids, health"
	@echo "  ls .run/logs/ .run/mail/       one log per component; mails the notifier sent (.eml)"
	@echo "  psql -h 127.0.0.1 -p 15432 -U postgres -l     the services' databases"
	@echo "Stop it with: make down"
