# tokenledger — build, run and test.
#
#   make run     the whole system on embedded defaults (state in $(DATA_DIR))
#   make cluster the production topology on this machine: 3 nats-servers,
#                PostgreSQL, 2 serve, project (state in $(CLUSTER_DIR))
#   make test    every test: lint, unit and integration tests with -race,
#                fuzz targets over their seed corpus, and the tests that need
#                full scale run once more without the race detector
#   make bench   every target figure, next to the DRF peer (BENCHMARKS.md)
#   make images  the container images of deploy/ (tokenledger, nats-server)
#   make test-cluster  the fault tests on deploy/compose.yaml's topology in
#                containers (needs a Docker engine; not part of make test)

GO        ?= go
BIN       ?= bin/tokenledger
DATA_DIR  ?= .tokenledger
CLUSTER_DIR ?= .tokenledger-cluster
NATS_SERVER_BIN ?= bin/nats-server
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

.PHONY: all build nats-server run cluster test test-faults unit scale lint fmt vet bench fuzz clean images test-cluster

all: lint build test

# VERSION is what `tokenledger version`, /livez and tokenledger_build_info
# report; the commit comes from the build information either way.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)

build:
	$(GO) build -ldflags "-X github.com/tokenledger/tokenledger/version.stamped=$(VERSION)" -o $(BIN) ./cmd/tokenledger

run: build
	./$(BIN) dev --data-dir $(DATA_DIR)

# nats-server at the version go.mod pins, for make cluster and deploy/.
nats-server:
	$(GO) build -o $(NATS_SERVER_BIN) github.com/nats-io/nats-server/v2

cluster: build nats-server
	./$(BIN) cluster --cluster-dir $(CLUSTER_DIR) --nats-server $(NATS_SERVER_BIN)

test: lint unit scale

unit:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

# scale runs the tests whose size is part of what they prove at that size,
# without the race detector (under -race they run smaller): the export of a
# million events and its tampering.
scale:
	$(GO) test -count=1 -timeout 5m -run 'TestExportOfAMillionEventsVerifies' ./export -args -export.events=1000000

# test-faults runs the fault tests on make cluster's topology (processes
# killed and restarted under load; about a minute each), kept out of make
# test for their length. .ci/run runs them after make test.
test-faults:
	$(GO) test -tags faults -count=1 -timeout 10m ./cluster

lint: fmt vet

fmt:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags faults ./cluster

# bench measures every target figure of PRODUCT.md on the local stack, next
# to the DRF peer and a bare net/http handler, and on make cluster's
# topology (3 nats-servers: hence nats-server), and rewrites the table of
# BENCHMARKS.md (see cmd/bench/main.go). Everything it starts is stopped at the
# end; it needs wrk (installed with apt-get when missing).
bench: build nats-server
	$(GO) build -o $(BENCH_BIN) ./cmd/bench
	$(BENCH_BIN) --quick '$(BENCH_QUICK)' --tokenledger $(BIN) --nats-server $(NATS_SERVER_BIN) --peer $(DRF_PEER) --go $(GO)

# images builds the images deploy/compose.yaml runs: static binaries
# (tokenledger, and nats-server at the version go.mod pins) on an empty
# base, each from a build context holding only its binary. Nothing is
# pulled, so no registry is needed.
TOKENLEDGER_IMAGE ?= tokenledger:dev
NATS_IMAGE        ?= tokenledger-nats:dev
IMAGE_DIR         ?= bin/images
images:
	rm -rf $(IMAGE_DIR)
	mkdir -p $(IMAGE_DIR)/tokenledger $(IMAGE_DIR)/nats/data
	CGO_ENABLED=0 $(GO) build -trimpath -o $(IMAGE_DIR)/tokenledger/tokenledger ./cmd/tokenledger
	CGO_ENABLED=0 $(GO) build -trimpath -o $(IMAGE_DIR)/nats/nats-server github.com/nats-io/nats-server/v2
	docker build -q -f deploy/tokenledger.Containerfile -t $(TOKENLEDGER_IMAGE) $(IMAGE_DIR)/tokenledger
	docker build -q -f deploy/nats-server.Containerfile -t $(NATS_IMAGE) $(IMAGE_DIR)/nats

# test-cluster runs the fault tests of internal/clustertest on
# deploy/compose.yaml's topology in containers: kill -9 of the stream
# leader, partitions, a rolling restart, each under load. It needs a Docker
# engine with docker-compose and fails at once, in one line, without one.
CLUSTER_TEST_TIMEOUT ?= 15m
test-cluster:
	@docker info >/dev/null 2>&1 || { echo "make test-cluster: no Docker engine answers (docker info failed); start one, e.g. systemctl start docker"; exit 1; }
	$(MAKE) images
	TOKENLEDGER_IMAGE=$(TOKENLEDGER_IMAGE) NATS_IMAGE=$(NATS_IMAGE) \
	  $(GO) test -tags cluster -count=1 -v -timeout $(CLUSTER_TEST_TIMEOUT) ./internal/clustertest

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
