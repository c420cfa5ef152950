# callbox: `make help` lists the targets.
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Tests run `go` themselves (go build, go list): make sure it is on PATH.
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)
BIN := bin
FUZZTIME ?= 10s

.PHONY: help deps build demo test vet fuzz bench clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## check the toolchain and download Go modules
	@test -x "$(GO)" || { echo "Go is missing: install Go 1.26 or newer from https://go.dev/dl/ into /usr/local/go"; exit 1; }
	@$(GO) version | awk '{split($$3,v,"."); sub("go","",v[1]); if (v[1]<1 || (v[1]==1 && v[2]<26)) {print "Go 1.26 or newer needed, found " $$3; exit 1}}'
	@command -v gcc >/dev/null || { echo "gcc is missing (needed by go test -race): installing"; apt-get install -y gcc || { echo "run: sudo apt-get install gcc"; exit 1; }; }
	@$(GO) mod download

build: deps ## build callboxd and callbox into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/callboxd ./cmd/callbox

demo: build ## two boxes on 127.0.0.1 place a call with simulated devices, live figures
	$(GO) build -o $(BIN)/demo ./tools/demo
	$(BIN)/demo -bin $(BIN)/callboxd

vet: deps ## gofmt, go vet (with and without cgo)
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./...

fuzz: deps ## run each fuzz target for FUZZTIME (default 10s)
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./stream/wire
	$(GO) test -run='^$$' -fuzz='^FuzzTrim$$' -fuzztime=$(FUZZTIME) ./device/camera

test: vet build ## vet, all tests with -race (incl. real daemons on 127.0.0.1), then short fuzzing
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) --no-print-directory fuzz

bench: deps ## benchmarks: figures, never pass/fail
	$(GO) test -run='^$$' -bench=. -benchmem ./...

clean: ## remove build outputs
	rm -rf $(BIN) demo-out
