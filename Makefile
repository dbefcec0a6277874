# tokenledger — build, run and test.
#
#   make run     the whole system on embedded defaults (state in $(DATA_DIR))
#   make test    every test: lint, unit and integration tests with -race,
#                fuzz targets over their seed corpus
#   make bench   benchmarks

GO        ?= go
BIN       ?= bin/tokenledger
DATA_DIR  ?= .tokenledger
PKGS      ?= ./...
# Integration tests start real nats-servers and PostgreSQL clusters; keep the
# whole run well inside CI's budget.
TEST_TIMEOUT ?= 14m
FUZZTIME  ?= 30s
BENCHTIME ?= 1s

.PHONY: all build run test unit lint fmt vet bench fuzz clean

all: lint build test

build:
	$(GO) build -o $(BIN) ./cmd/tokenledger

run: build
	./$(BIN) dev --data-dir $(DATA_DIR)

test: lint unit

unit:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

lint: fmt vet

fmt:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 30m $(PKGS)

# fuzz runs every fuzz target for FUZZTIME (make test already runs them over
# their seed corpus). Inputs that fail are kept under testdata/fuzz.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
