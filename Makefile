.PHONY: run test lint bench

run:  ## install, migrate, seed demo data and serve on http://127.0.0.1:8085/
	bash scripts/run.sh

test:  ## install and run lint + the whole suite on SQLite and on PostgreSQL
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:  ## order-accept latency against the floor endpoint (needs PostgreSQL)
	.venv/bin/python bench/order_accept.py
