# callbox: `make help` lists the targets.
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests run `go` themselves (go build, go list): make sure it is on PATH.
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)

BASE_VERSION := 0.1.0
GIT_SHA := $(shell git rev-parse --short=8 HEAD 2>/dev/null)
GIT_COUNT := $(shell git rev-list --count HEAD 2>/dev/null)
# A Debian-valid version: 0.1.0+git<commits>.g<sha>
VERSION ?= $(if $(GIT_SHA),$(BASE_VERSION)+git$(GIT_COUNT).g$(GIT_SHA),$(BASE_VERSION))
# PIE, full RELRO with BIND_NOW and a hardened C part: the binaries' own
# code, Go and the C linked in (miniaudio, the cgo glue), loads at a random
# address, so a bug in the C parts has no fixed addresses to aim at.
# Position-independent code costs about 850 KB of relocations in callboxd
# and 590 KB in callbox on arm64, well inside the 12 MiB budget for each
# arm64 binary that `make arm64` checks.
LDFLAGS := -s -w -bindnow -X main.version=$(VERSION) -X main.commit=$(GIT_SHA)
GOBUILD := $(GO) build -buildmode=pie -trimpath -ldflags '$(LDFLAGS)'

# go4vl v0.5.0 does not build against Debian 12's kernel headers without
# this shim (see device/camera/v4l2shim). Setting CGO_CFLAGS replaces the
# default -O2 -g, so keep them. miniaudio keeps only its ALSA and null
# backends and drops its decoders and engine, and the C code carries no
# unwind tables (~40 KB: nothing unwinds C frames here, Go does not read
# them and miniaudio never calls pthread_cancel): they keep callboxd well
# under the 12 MiB budget on arm64 (buildroot/package/callbox/callbox.mk
# uses the same flags).
MINIAUDIO_CFLAGS := -DMA_ENABLE_ONLY_SPECIFIC_BACKENDS -DMA_ENABLE_ALSA -DMA_ENABLE_NULL \
	-DMA_NO_DECODING -DMA_NO_ENCODING -DMA_NO_GENERATION -DMA_NO_RESOURCE_MANAGER -DMA_NO_NODE_GRAPH -DMA_NO_ENGINE \
	-fno-asynchronous-unwind-tables -fno-unwind-tables
export CGO_CFLAGS := -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong $(MINIAUDIO_CFLAGS) -I$(CURDIR)/device/camera/v4l2shim
# The control API is HTTP/1.1 on a unix socket: leave net/http's HTTP/2 out
# (about 400 KB).
export GOFLAGS := -tags=nethttpomithttp2

# staticcheck at a fixed version, with its default checks and U1000
# (unused code) named so that it runs even if a staticcheck.conf drops it.
# `go run pkg@version` fetches it from the module proxy once (outside
# go.mod, so neither go.sum nor buildroot's vendor/ gains its modules) and
# keeps the built tool in the Go build cache, rebuilding it when Go changes.
# Debian 12's go-staticcheck (2023.1) is too old for Go 1.26.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -checks=inherit,U1000

NATIVE := linux-$(shell $(GO) env GOARCH 2>/dev/null)
BIN := bin
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/callbox
ARM64_SYSROOT := $(CACHE)/arm64-sysroot
QEMU_ARM64 := qemu-aarch64-static -L /usr/aarch64-linux-gnu
# Fuzzing budgets are execution counts, not durations: with a duration,
# Go 1.26's fuzz coordinator can fail a target with a spurious "context
# deadline exceeded" as the time runs out on a busy machine (go.dev/issue/75804,
# fixed in Go 1.27). A count has no deadline to race.
FUZZTIME ?= 300000x
APT := $(if $(filter 0,$(shell id -u)),DEBIAN_FRONTEND=noninteractive apt-get,sudo DEBIAN_FRONTEND=noninteractive apt-get)

.PHONY: help deps version build demo test soak e2e vet fuzz bench microbench hil arm64 cross-deps test-arm64 deb test-deb test-buildroot clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# need-pkgs installs the Debian packages named in $(1) that are missing,
# with apt-get options $(2) if given (e.g. --no-install-recommends).
define need-pkgs
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing missing packages:$$missing"; \
		{ $(APT) update -q && $(APT) install -y -q $(2) $$missing; } || { echo "could not install them: run  apt-get install$(if $(2), $(2))$$missing"; exit 1; }; \
	fi
endef

deps: ## check Go, install gcc, libasound2, libspeexdsp-dev and libopus-dev if missing, download Go modules
	@test -x "$(GO)" || { echo "Go is missing: install Go 1.26 or newer from https://go.dev/dl/ into /usr/local/go"; exit 1; }
	@$(GO) version | awk '{split($$3,v,"."); sub("go","",v[1]); if (v[1]<1 || (v[1]==1 && v[2]<26)) {print "Go 1.26 or newer needed, found " $$3; exit 1}}'
	$(call need-pkgs,gcc libc6-dev libasound2 libspeexdsp-dev libopus-dev)
	@$(GO) mod download

version: ## print the version stamped into binaries and packages
	@echo $(VERSION)

build: deps ## build callboxd and callbox for this machine into bin/linux-<arch>/
	CGO_ENABLED=1 $(GOBUILD) -o $(BIN)/$(NATIVE)/ ./cmd/callboxd ./cmd/callbox

demo: build ## two boxes on 127.0.0.1 place a call with simulated devices, live figures
	$(GO) build -o $(BIN)/demo ./tools/demo
	$(BIN)/demo -bin $(BIN)/$(NATIVE)/callboxd

vet: deps ## gofmt, go vet and staticcheck (with and without cgo)
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./...
	$(STATICCHECK) ./...
	CGO_ENABLED=0 $(STATICCHECK) ./...

fuzz: deps ## run each fuzz target for FUZZTIME executions (default 300000x; a duration such as 1m works too)
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./stream/wire
	$(GO) test -run='^$$' -fuzz='^FuzzOpenAudio$$' -fuzztime=$(FUZZTIME) ./stream/wire
	$(GO) test -run='^$$' -fuzz='^FuzzTrim$$' -fuzztime=$(FUZZTIME) ./device/camera
	$(GO) test -run='^$$' -fuzz='^FuzzParseMessage$$' -fuzztime=$(FUZZTIME) ./stream/discovery
	$(GO) test -run='^$$' -fuzz='^FuzzReadMessages$$' -fuzztime=$(FUZZTIME) ./stream/pairing

# The namespace tests (test/netns, root) need ip, and for the call through
# a WireGuard tunnel wg and, without WireGuard in the kernel, wireguard-go.
# wireguard-tools recommends a kernel image (for the module): not wanted.
test: vet build ## vet, all tests with -race (incl. real daemons on 127.0.0.1, a real Mosquitto broker and, as root, namespaces over WireGuard), then short fuzzing
	$(call need-pkgs,iproute2 mosquitto)
	$(call need-pkgs,wireguard-go wireguard-tools,--no-install-recommends)
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/test/netns$$')
	@# Alone: the tunnel's user-space crypto and the emulated link keep a
	@# core busy, and the process tests judge audio played at real pace.
	$(GO) test -race -count=1 -timeout 15m ./test/netns
	$(MAKE) --no-print-directory fuzz

# The chaos soak: SOAK_CYCLES cycles (default 1000) of random faults from
# internal/faults mixed with normal calls, at most SOAK_MAX (default 30m);
# SOAK_SEED repeats a run (the seed is printed). Not part of make test.
SOAK_CYCLES ?= 1000
SOAK_MAX ?= 30m
soak: build ## chaos soak: SOAK_CYCLES (1000) random faults and calls, within SOAK_MAX (30m); table of calls, faults, failures, leaks
	$(call need-pkgs,iproute2)
	$(GO) build -o $(BIN)/soak ./tools/soak
	$(BIN)/soak -bin $(BIN)/$(NATIVE)/callboxd -cycles $(SOAK_CYCLES) -max $(SOAK_MAX) $(if $(SOAK_SEED),-seed $(SOAK_SEED))

e2e: deps ## the web page with real clients: headless Chromium (playwright-core) and ffmpeg against two daemons; screenshots in test/e2e/out/
	$(call need-pkgs,chromium ffmpeg)
	@command -v node >/dev/null && command -v npm >/dev/null || { $(APT) update -q && $(APT) install -y -q nodejs npm; }
	cd test/e2e && npm ci --no-audit --no-fund
	CALLBOX_E2E=1 $(GO) test -count=1 -timeout 10m -v ./test/e2e

bench: build ## latency, fps, CPU and RSS of real calls (loopback, emulated LAN/Wi-Fi/thin links, slow receiver) and the screen's decode+scale per frame: table in bench-out/bench.md
	$(call need-pkgs,iproute2)
	$(GO) build -o $(BIN)/bench ./tools/bench
	$(BIN)/bench -bin $(BIN)/$(NATIVE)/callboxd -out bench-out/bench.md $(BENCH_FLAGS)

microbench: deps ## Go micro-benchmarks of the hot paths (wire, playout, camera, screen): figures, never pass/fail
	$(GO) test -run='^$$' -bench=. -benchmem ./...

cross-deps: deps
	$(call need-pkgs,gcc-aarch64-linux-gnu libc6-dev-arm64-cross file)

arm64: cross-deps ## cross-build callboxd and callbox for linux/arm64 (cgo) into bin/linux-arm64/
	$(MAKE) --no-print-directory $(ARM64_STAMP)
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc $(ARM64_CGO) $(GOBUILD) -o $(BIN)/linux-arm64/ ./cmd/callboxd ./cmd/callbox
	@for b in callboxd callbox; do f=$(BIN)/linux-arm64/$$b; file $$f; s=$$(stat -c %s $$f); echo "$$b: $$s bytes"; \
		[ $$s -le 12582912 ] || { echo "$$b is over the 12 MiB budget"; exit 1; }; \
		file -b $$f | grep -q 'pie executable' || { echo "$$b is not PIE"; exit 1; }; done

# libasound2:arm64, speexdsp and opus (callboxd links both)
# unpacked, not installed, for the cross link and the tests under qemu-user. The stamp
# names the packages, so a sysroot made before one was added is refilled.
ARM64_PKGS := libasound2 libspeexdsp1 libspeexdsp-dev libopus0 libopus-dev
ARM64_STAMP := $(ARM64_SYSROOT)/.done-$(subst $(eval) ,-,$(ARM64_PKGS))
ARM64_LIB := $(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu
ARM64_CGO := CGO_CFLAGS='$(CGO_CFLAGS) -I$(ARM64_SYSROOT)/usr/include' \
	CGO_LDFLAGS='-L$(ARM64_LIB) -Wl,-rpath-link=$(ARM64_LIB)'
$(ARM64_STAMP):
	@mkdir -p $(ARM64_SYSROOT)/debs
	@dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && $(APT) update -q; }
	rm -f $(ARM64_SYSROOT)/debs/*.deb
	cd $(ARM64_SYSROOT)/debs && apt-get download $(addsuffix :arm64,$(ARM64_PKGS))
	for d in $(ARM64_SYSROOT)/debs/*.deb; do dpkg -x $$d $(ARM64_SYSROOT); done
	touch $@

test-arm64: cross-deps ## run the arm64 test binaries under qemu-user (ALSA, speexdsp and opus via unpacked arm64 packages)
	$(call need-pkgs,qemu-user-static file)
	$(MAKE) --no-print-directory $(ARM64_STAMP)
	$(MAKE) --no-print-directory arm64
	# callboxd links libspeexdsp and libopus: the unpacked arm64 ones.
	LD_LIBRARY_PATH=$(ARM64_LIB) $(QEMU_ARM64) $(BIN)/linux-arm64/callboxd -version
	LD_LIBRARY_PATH=$(ARM64_LIB) $(QEMU_ARM64) $(BIN)/linux-arm64/callbox -version
	LD_LIBRARY_PATH=$(ARM64_LIB) $(QEMU_ARM64) $(BIN)/linux-arm64/callboxd -help >/dev/null 2>&1 && echo "callboxd -help: exit 0"
	LD_LIBRARY_PATH=$(ARM64_LIB) $(QEMU_ARM64) $(BIN)/linux-arm64/callbox -help >/dev/null 2>&1 && echo "callbox -help: exit 0"
	# test/process, test/netns and test/faults run daemons, not test binaries: they stay native.
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc $(ARM64_CGO) \
	LD_LIBRARY_PATH=$(ARM64_LIB) \
	$(GO) test -count=1 -timeout 20m -exec '$(QEMU_ARM64)' $$($(GO) list ./... | grep -v -e /test/process -e /test/netns -e /test/faults)

deb: build arm64 ## Debian packages for amd64 and arm64 into bin/deb/, linted
	sh packaging/deb/build.sh amd64 $(BIN)/linux-amd64 $(VERSION) $(BIN)/deb
	sh packaging/deb/build.sh arm64 $(BIN)/linux-arm64 $(VERSION) $(BIN)/deb
	$(call need-pkgs,lintian)
	lintian --fail-on error,warning $(BIN)/deb/callbox_$(VERSION)_amd64.deb $(BIN)/deb/callbox_$(VERSION)_arm64.deb
	@dpkg-deb --info $(BIN)/deb/callbox_$(VERSION)_arm64.deb | sed -n '1,/Description/p'

test-deb: build arm64 ## install, upgrade, remove, purge the amd64 .deb in a Debian 12 root, the arm64 one in Debian 12 and 13 roots (root)
	$(call need-pkgs,debootstrap lintian systemd qemu-user-static)
	bash test/deb/run.sh $(BIN)/linux-amd64 $(VERSION) $(BIN)/linux-arm64

hil: build arm64 ## hardware in the loop: the real daemon against real kernel drivers in QEMU (amd64 and arm64; HIL_REPEAT=N runs it N times); logs in test/hil/out/
	test/hil/run -bin-amd64 $(BIN)/linux-amd64/callboxd -bin-arm64 $(BIN)/linux-arm64/callboxd $(HIL_FLAGS)

test-buildroot: ## check buildroot/ in a real buildroot 2026.02.3 checkout (cloned once into the cache; network)
	test/buildroot/check-real.sh

clean: ## remove build outputs
	rm -rf $(BIN) demo-out bench-out test/hil/out test/e2e/out
