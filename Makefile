# prodmatch: every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= synthetic
SCALE ?= demo
SEED ?= 0

.PHONY: help install test test-all lint format data data-full data-hard demo evaluate sweep bench bench-scale bench-scale-catalog reproduce reproduce-product reproduce-quick gpu-check clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

install:  ## create .venv and install prodmatch with its dev tools (editable)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,faiss,milvus]"

test:  ## fast test suite
	$(PY) -m pytest -q

test-all:  ## every test, the slow end-to-end ones included
	$(PY) -m pytest -q -m "slow or not slow"

lint:  ## ruff lint + format check
	$(PY) -m ruff check src tests train.py evaluate.py match.py
	$(PY) -m ruff format --check src tests train.py evaluate.py match.py

format:  ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix src tests train.py evaluate.py match.py
	$(PY) -m ruff format src tests train.py evaluate.py match.py

data:  ## generate the synthetic demo catalog into data/synthetic/
	$(PY) -m prodmatch.data.synthetic --out data/synthetic --seed $(SEED) --scale $(SCALE)

data-full:  ## generate the study-sized synthetic catalog into data/synthetic_full/
	$(PY) -m prodmatch.data.synthetic --out data/synthetic_full --seed $(SEED) --scale full

data-hard:  ## generate the hard synthetic catalog (marketplace effects, docs/CATALOGS.md) into data/synthetic_hard/
	$(PY) -m prodmatch.data.synthetic --out data/synthetic_hard --seed $(SEED) --scale full --profile hard

demo:  ## the offline demo: train on the synthetic catalog, ANNOY Acc@10 before vs after
	$(PY) train.py

evaluate:  ## off-the-shelf evaluation (EXPERIMENT=img|title_cat|...)
	$(PY) evaluate.py experiment=$(or $(EXPERIMENT),title_cat_tfidf) data=$(DATA)

reproduce:  ## the study's whole comparison -> reports/results.md + results.png (DATA=sportdoma: your real files)
	$(PY) -m prodmatch.reproduce --profile $(DATA) $(OVERRIDES)

reproduce-product:  ## the product-level table alone (data=synthetic_full, CPU-sized) -> reports/product/
	$(PY) -m prodmatch.reproduce --profile $(DATA) --only product $(OVERRIDES)

reproduce-quick:  ## smoke version of `reproduce` (tiny catalog, minutes) -> reports/quick/
	$(PY) -m prodmatch.reproduce --profile quick $(OVERRIDES)

bench:  ## search/encoding benchmarks, results written to bench/results.md
	$(PY) -m prodmatch.bench --out bench/results.md

SCALE_DB ?= 1000000
SCALE_DIM ?= 256
SCALE_QUERIES ?= 10000
bench-scale:  ## index backends at scale (SCALE_DB=1000000 SCALE_QUERIES=10000; long) -> bench/scale_<db>.json/.png + bench/results.md
	$(PY) -m prodmatch.bench --scale --db $(SCALE_DB) --dim $(SCALE_DIM) --queries $(SCALE_QUERIES) \
		--backends exact,faiss_ivfflat,faiss_ivfpq,faiss_ivfpq_refine,annoy,faiss_hnsw --json bench/scale_$(SCALE_DB).json --markdown bench/results.md

bench-scale-catalog:  ## the same on catalog vectors (title TF-IDF + SVD of synthetic catalogs; long) -> bench/scale_catalog_<db>.*
	$(PY) -m prodmatch.bench --scale --data catalog --db $(SCALE_DB) --dim $(SCALE_DIM) --queries $(SCALE_QUERIES) \
		--backends exact,faiss_ivfflat,annoy,faiss_hnsw --json bench/scale_catalog_$(SCALE_DB).json --markdown bench/results.md

gpu-check:  ## on a GPU machine (<= ~8 min): demo training in bf16, full-catalog embedding, faiss-gpu -> images/s
	PY=$(PY) scripts/gpu_check.sh $(OVERRIDES)

clean:  ## remove runs, caches and generated data
	rm -rf logs/* multirun/* wandb outputs .pytest_cache .ruff_cache data/cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
