# Two entry points (see README): `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Reference data: ../shared/data beside the checkout when present, else downloaded into ./data.
DATA   ?= $(firstword $(wildcard ../shared/data) data)
STORE  ?= runs/store

.PHONY: env models data demo test

env: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

models: env
	$(BIN)/recsage models pull

data: env
	@test -f $(DATA)/ml-latest-small/movies.csv || $(BIN)/recsage data fetch --dest $(DATA)

demo: models data
	$(BIN)/recsage ingest --movielens $(DATA)/ml-latest-small \
		$(if $(wildcard $(DATA)/posters),--posters $(DATA)/posters) --store $(STORE)
	$(BIN)/recsage search "animated toys come to life" --store $(STORE) -k 5

test: models
	RECSAGE_DATA=$(abspath $(DATA)) $(BIN)/pytest -q
