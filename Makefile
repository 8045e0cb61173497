# make run: start the whole system; make test: the whole suite against the real RabbitMQ.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-cluster lint bench rabbitmq postgresql tools clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgresql]'
	touch $(STAMP)

# Start the local RabbitMQ when it is installed and not answering; fail loudly when it is missing.
rabbitmq:
	@if rabbitmqctl -q status >/dev/null 2>&1; then :; \
	elif command -v rabbitmq-server >/dev/null 2>&1; then \
	  echo "starting RabbitMQ"; rabbitmq-server -detached; \
	  for i in $$(seq 1 60); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done; \
	  rabbitmqctl -q await_startup >/dev/null || { echo "RabbitMQ did not start" >&2; exit 1; }; \
	else echo "RabbitMQ is not installed (apt-get install rabbitmq-server)" >&2; exit 1; fi

# The database tests run on PostgreSQL too: start the local cluster when it is installed and down.
postgresql:
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then :; \
	elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then \
	  echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n 1) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }; \
	else echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; fi

# The deploy tests (tests/deploy) run compose.yml on a Docker engine of their own, with images
# bootstrapped from Debian packages: Debian's docker.io (dockerd and the docker CLI), docker-compose
# and mmdebstrap. Chromium and its driver (Debian's) run the front desk's browser tests. Installed
# here when missing; the tests fail, never skip, without them.
DEBIAN_TOOLS := dockerd:docker.io docker:docker.io docker-compose:docker-compose mmdebstrap:mmdebstrap \
	chromium:chromium chromedriver:chromium-driver
tools:
	@missing=$$(for pair in $(DEBIAN_TOOLS); do command -v $${pair%%:*} >/dev/null 2>&1 || echo $${pair#*:}; done | sort -u); \
	if [ -n "$$missing" ]; then \
	  echo "installing" $$missing "for the deploy and browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	fi

run: $(STAMP) rabbitmq
	$(BIN)/clinic init-db
	$(BIN)/clinic up

test: $(STAMP) rabbitmq postgresql tools
	$(BIN)/pytest $(PYTEST_ARGS)

# Only the cluster tests: three RabbitMQ nodes of their own on 5681-5683 (make test runs them too).
test-cluster: $(STAMP) rabbitmq postgresql
	$(BIN)/pytest tests/cluster $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check clinic actors api tests bench

bench: $(STAMP) rabbitmq
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
