# tokenledger — build, run and test.
#
#   make run     the whole system on embedded defaults (state in $(DATA_DIR))
#   make test    every test: lint, unit and integration tests with -race,
#                fuzz targets over their seed corpus, and the tests that need
#                full scale run once more without the race detector
#   make bench   every target figure, next to the DRF peer (BENCHMARKS.md)

GO        ?= go
BIN       ?= bin/tokenledger
DATA_DIR  ?= .tokenledger
PKGS      ?= ./...
# Integration tests start real nats-servers and PostgreSQL clusters; keep the
# whole run well inside CI's budget.
TEST_TIMEOUT ?= 14m
FUZZTIME  ?= 30s
# make bench: the DRF peer measured next to tokenledger, and the benchmark
# program's binary. BENCH_QUICK=1 runs every scenario briefly and leaves
# BENCHMARKS.md alone.
DRF_PEER    ?= ../shared/peers/drf
BENCH_QUICK ?=
BENCH_BIN   ?= bin/tokenledger-bench

.PHONY: all build run test unit scale lint fmt vet bench fuzz clean

all: lint build test

# VERSION is what `tokenledger version`, /livez and tokenledger_build_info
# report; the commit comes from the build information either way.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)

build:
	$(GO) build -ldflags "-X github.com/tokenledger/tokenledger/version.stamped=$(VERSION)" -o $(BIN) ./cmd/tokenledger

run: build
	./$(BIN) dev --data-dir $(DATA_DIR)

test: lint unit scale

unit:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

# scale runs the tests whose size is part of what they prove at that size,
# without the race detector (under -race they run smaller): the export of a
# million events and its tampering.
scale:
	$(GO) test -count=1 -timeout 5m -run 'TestExportOfAMillionEventsVerifies' ./export -args -export.events=1000000

lint: fmt vet

fmt:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# bench measures every target figure of PRODUCT.md on the local stack, next
# to the DRF peer and a bare net/http handler, and rewrites the table of
# BENCHMARKS.md (see bench/main.go). Everything it starts is stopped at the
# end; it needs wrk (installed with apt-get when missing).
bench: build
	$(GO) build -o $(BENCH_BIN) ./bench
	$(BENCH_BIN) --quick '$(BENCH_QUICK)' --tokenledger $(BIN) --peer $(DRF_PEER) --go $(GO)

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
