# monokube build, test and run. `make` installs what the build needs and
# produces bin/monokube; `make test` runs every test tier; `make run` starts a
# server. See README.md.

SHELL := /bin/bash
GO ?= go
export GOFLAGS := -buildvcs=false
export CGO_ENABLED := 0

VERSION ?= 0.1.0-dev
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
TREE := $(shell git diff --quiet HEAD 2>/dev/null && echo clean || echo dirty)
K8S_VERSION := $(shell $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
BUILD_DATE := $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)

# The apiserver's /version shows the real Kubernetes release with monokube's
# version as semver build metadata (v1.37.2+monokube.0.1.0-dev), as k3s does.
KV := k8s.io/component-base/version
CV := k8s.io/client-go/pkg/version
MV := github.com/monokube/monokube/internal/version
LDFLAGS := -s -w \
	-X $(KV).gitVersion=$(K8S_VERSION)+monokube.$(VERSION) -X $(KV).gitMajor=1 -X $(KV).gitMinor=$(K8S_MINOR) \
	-X $(KV).gitCommit=$(COMMIT) -X $(KV).gitTreeState=$(TREE) -X $(KV).buildDate=$(BUILD_DATE) \
	-X $(CV).gitVersion=$(K8S_VERSION)+monokube.$(VERSION) -X $(CV).gitMajor=1 -X $(CV).gitMinor=$(K8S_MINOR) \
	-X $(CV).gitCommit=$(COMMIT) -X $(CV).gitTreeState=$(TREE) -X $(CV).buildDate=$(BUILD_DATE) \
	-X $(MV).version=$(VERSION) -X $(MV).commit=$(COMMIT)

BIN := bin/monokube
RUN_ARGS ?=
E2E_TIMEOUT ?= 40m

.PHONY: all deps build run test test-unit test-e2e bench clean
all: deps build

# Debian packages: iproute2 (test namespaces), util-linux (mount, nsenter),
# iptables (nodes, later issues), git and ca-certificates for the build.
DEB_PKGS := iproute2 util-linux iptables git ca-certificates
deps:
	@scripts/install-deps.sh $(DEB_PKGS)

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/monokube

run: all
	$(BIN) server $(RUN_ARGS)

test: all test-unit test-e2e

test-unit:
	@test -z "$$(gofmt -l cmd internal tests embed manifests)" || { gofmt -l cmd internal tests embed manifests; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/...
	$(GO) test -short -count=1 ./internal/...

# E2E needs root; E2E=1 turns a skip for missing root into a failure.
test-e2e: build
	E2E=1 MONOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) test -tags e2e -p 1 -count=1 -timeout $(E2E_TIMEOUT) -v ./tests/e2e/...

bench: all
	MONOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) test -tags e2e -run '^$$' -bench . -benchtime 1x -count=1 -timeout 30m ./tests/bench/

clean:
	rm -rf bin
