# medseq — every go command runs with Go 1.27.3 and the SIMD experiment (gomlx needs both).
export GOTOOLCHAIN := go1.27.3
export GOEXPERIMENT := simd
export GOFLAGS := -mod=readonly
# go-nvml's header marks many NVML calls deprecated: keep cgo builds quiet about it.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

GO         ?= go
BIN        := bin/medseq
PKG        := github.com/medseq/medseq
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS    := -X $(PKG)/internal/buildinfo.Version=$(VERSION) \
              -X $(PKG)/internal/buildinfo.Commit=$(COMMIT) \
              -X $(PKG)/internal/buildinfo.BuildTime=$(BUILD_TIME)
DEMO_OUT   ?= out/demo
BENCH      ?= .
BENCHTIME  ?= 1x
STATICCHECK_VERSION := v0.8.2

.PHONY: all build static image image-check deps deps-build deps-e2e deps-test test test-short demo bench lint clean proto e2e load soak gpu-prepare

all: build

# What each target installs (scripts/install-deps.sh, silent when all is there): build and
# demo only what building and running need (Go, git, gcc, libxgboost); e2e and load add
# python3; test, test-short and bench add the test references (Python's xgboost,
# scikit-learn, PyTorch, Chromium, node + npm tokenizers).
deps-build:
	@scripts/install-deps.sh build

deps-e2e:
	@scripts/install-deps.sh e2e

deps-test:
	@scripts/install-deps.sh test

deps: deps-test

# -tags iceberg links the Iceberg reader and `data export` (iceberg-go with its S3, GCS and Azure
# clients and SQLite: +74 MB of binary, docs/DATA.md); a build without it reads MEDS folders only.
TAGS       ?= iceberg

build: deps-build
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/medseq

# The pure-Go serving build (CGO_ENABLED=0, static: serves and scores both model kinds, cannot
# train XGBoost) and the serving image around it, an image tarball written without a container
# daemon (internal/imagebuild; docker load -i, podman load -i, crane push) and then validated.
# Timestamps are the commit's: the same commit gives the same image. image-check serves demo
# models with the image's binary and compares its answers with the cgo build's predictions.
STATIC_BIN  := bin/medseq-static
IMAGE       := bin/medseq-serve-image.tar
SOURCE_DATE := $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
STATIC_LDFLAGS := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION) \
              -X $(PKG)/internal/buildinfo.Commit=$(COMMIT) \
              -X $(PKG)/internal/buildinfo.BuildTime=$(SOURCE_DATE)

static: deps-build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(STATIC_LDFLAGS)' -o $(STATIC_BIN) ./cmd/medseq

image: static
	$(GO) run ./internal/imagebuild --binary $(STATIC_BIN) --out $(IMAGE) --version $(VERSION) \
	  --revision $(COMMIT) --created $(SOURCE_DATE)
	MEDSEQ_IMAGE=$(CURDIR)/$(IMAGE) MEDSEQ_STATIC_BINARY=$(CURDIR)/$(STATIC_BIN) $(GO) test -count=1 -run TestBuiltImage ./internal/imagebuild

image-check: image deps-e2e
	scripts/image-check.sh

test: deps-test lint
	scripts/e2e.sh
	MEDSEQ_REQUIRE_R=1 $(GO) test -count=1 -tags iceberg ./...
	$(GO) test -count=1 -tags xla ./model/bert

test-short: deps-test
	$(GO) test -count=1 -short ./...

demo: build
	$(BIN) demo --out $(DEMO_OUT) --force

# Benchmarks print throughput next to the reference measured in the same run.
bench: deps-test
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem ./...

# gofmt, go vet (no tag, xla, iceberg) and staticcheck (pinned; staticcheck.conf; with iceberg): the lint gate.
lint: deps-build
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags xla ./...
	$(GO) vet -tags iceberg ./...
	GOFLAGS= $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -tags iceberg ./...

# Regenerates the protobuf and gRPC code under proto/ (committed).
proto:
	scripts/gen-proto.sh

# End to end on loopback: demo, server, grpcurl, grpc-health-probe, /metrics.
e2e: deps-e2e
	scripts/e2e.sh

# ghz load test of the server (issue 7's figures); timings, so not part of `make test`.
load: deps-e2e
	scripts/load.sh

# Soak test of the server on loopback (about 1-2 minutes): mixed good and bad calls, model
# reloads, SIGHUP, SIGTERM; zero wrong or lost answers, bounded RSS. Not part of `make test`.
soak: deps-build
	scripts/soak.sh

# Builds what scripts/gpu-check.sh run needs on a GPU machine without Go or network into
# .gpucheck/ (carry it there; see the script's header).
gpu-prepare: deps-build
	scripts/gpu-check.sh prepare

clean:
	rm -rf bin out .gpucheck
