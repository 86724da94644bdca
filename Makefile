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
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,ray]'
	touch $@

models: env
	$(BIN)/recsage models pull

data: env
	@test -f $(DATA)/ml-latest-small/movies.csv || $(BIN)/recsage data fetch --dest $(DATA)

# The demo shows the product within 15 minutes on 2 cores, fresh model cache included: the models
# it uses (the text embedder and the LLM; OCR too with POSTERS: ingest loads only the converters of
# the media the catalog has), the catalog's text cards, a fast retriever, then a personalised recommendation with explanations and one chat
# answer. Where the time goes:
# - ingest: MiniLM embeds the 9,742 cards in two to three minutes. Poster OCR (2,947 posters at about
#   6 per second) is what made the old demo take 11 minutes, so it is left out; `make demo
#   POSTERS=$(DATA)/posters` adds it (a rerun redoes only the items that have a poster).
# - train-retriever --models ease: EASE + content + popularity, weights chosen on validation, one
#   minute or two. SASRec (the best model, about 10 minutes) is `recsage train-retriever` without
#   --models; a rerun reuses unchanged models and warm-starts on new interactions.
# - recommend and chat load the LLM and answer in well under a minute each.
POSTERS ?=
DEMO_PROJECT = --movielens $(DATA)/ml-latest-small --store $(STORE)

demo: env data
	$(BIN)/recsage models pull text_embedder llm $(if $(POSTERS),ocr)
	$(BIN)/recsage ingest $(DEMO_PROJECT) $(if $(POSTERS),--posters $(POSTERS))
	$(BIN)/recsage train-retriever $(DEMO_PROJECT) --models ease
	$(BIN)/recsage recommend $(DEMO_PROJECT) --user 1 -k 5 --explain
	$(BIN)/recsage chat $(DEMO_PROJECT) "something like Toy Story but from the 90s"

test: models
	RECSAGE_DATA=$(abspath $(DATA)) $(BIN)/pytest -q
