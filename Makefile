# monokube build, test and run. `make` installs what the build needs and
# produces bin/monokube (with its helper binaries and the pause image embedded);
# `make test` runs every test tier; `make run` starts a server. See README.md.

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
ldflags = -s -w \
	-X $(KV).gitVersion=$(K8S_VERSION)+monokube.$(1) -X $(KV).gitMajor=1 -X $(KV).gitMinor=$(K8S_MINOR) \
	-X $(KV).gitCommit=$(COMMIT) -X $(KV).gitTreeState=$(TREE) -X $(KV).buildDate=$(BUILD_DATE) \
	-X $(CV).gitVersion=$(K8S_VERSION)+monokube.$(1) -X $(CV).gitMajor=1 -X $(CV).gitMinor=$(K8S_MINOR) \
	-X $(CV).gitCommit=$(COMMIT) -X $(CV).gitTreeState=$(TREE) -X $(CV).buildDate=$(BUILD_DATE) \
	-X $(MV).version=$(1) -X $(MV).commit=$(COMMIT)
LDFLAGS := $(call ldflags,$(VERSION))

BIN := bin/monokube
RUN_ARGS ?=
E2E_TIMEOUT ?= 40m

.PHONY: all deps build next assets test-images run test test-unit test-e2e lint bench conformance conformance-deps clean FORCE
all: deps build

# Debian packages: iproute2 (test namespaces), util-linux (mount, nsenter), procps (ps),
# iptables (nodes), git and ca-certificates for the build; gcc, libseccomp-dev
# and pkg-config for the static runc; zstd and tar to pack the helpers.
# busybox-static is the shell of local-path's helper pods (embedded as an image).
DEB_PKGS := iproute2 util-linux procps iptables git ca-certificates gcc libc6-dev libseccomp-dev pkg-config zstd tar busybox-static
deps:
	@scripts/install-deps.sh $(DEB_PKGS)

# bin/monokube is the launcher (internal/launcher): the real binary,
# build/monokube-full, zstd-compressed inside a small program that unpacks
# it once per version under the data dir. The payload is recompressed only
# when the real binary changed; ZSTD_LEVEL=12 packs in seconds instead of
# about a minute, for a few MB more.
FULL_BIN := build/monokube-full
PAYLOAD := embed/payload/monokube.zst
PAYLOAD_SUM := embed/payload/monokube.sha256
ZSTD_LEVEL ?= 19
build: assets
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(FULL_BIN) ./cmd/monokube
	@sum=$$(sha256sum $(FULL_BIN) | cut -d' ' -f1); \
	if [ ! -f $(PAYLOAD) ] || [ "$$sum" != "$$(cat $(PAYLOAD_SUM) 2>/dev/null)" ]; then \
		echo "compressing $(FULL_BIN) (zstd -$(ZSTD_LEVEL))"; \
		zstd -q -$(ZSTD_LEVEL) --long=27 -T0 -f $(FULL_BIN) -o $(PAYLOAD).tmp && \
		mv $(PAYLOAD).tmp $(PAYLOAD) && echo $$sum >$(PAYLOAD_SUM); \
	fi
	$(GO) build -trimpath -tags launcher -ldflags '-s -w' -o $(BIN) ./cmd/monokube

# The e2e upgrade test swaps bin/monokube for $(NEXT_BIN): the same code
# stamped $(VERSION)-next, packed fast (zstd -3) into its own launcher
# (build tag next embeds embed/payload/next/).
NEXT_BIN := build/monokube-next
NEXT_DIR := embed/payload/next
next: build
	$(GO) build -trimpath -ldflags '$(call ldflags,$(VERSION)-next)' -o build/monokube-next-full ./cmd/monokube
	@mkdir -p $(NEXT_DIR)
	zstd -q -3 --long=27 -T0 -f build/monokube-next-full -o $(NEXT_DIR)/monokube.zst
	sha256sum build/monokube-next-full | cut -d' ' -f1 >$(NEXT_DIR)/monokube.sha256
	$(GO) build -trimpath -tags launcher,next -ldflags '-s -w' -o $(NEXT_BIN) ./cmd/monokube

# ---- Embedded assets (no registry access, ever) ----------------------------
# The helper binaries are built from pinned modules with `go install MOD@VER`,
# each in its own module graph (they are not in our go.mod), into a directory
# named by its version: a version bump rebuilds it, a repeated make does not.
BUILD_DIR := build
RUNC_VERSION := v1.5.2
SHIM_VERSION := v2.4.2
CNI_PLUGINS_VERSION := v1.9.1
CRICTL_VERSION := v1.37.0
# The one source of the pause image's name: monokube reads it back from the
# embedded tarball (internal/assets.ImageName).
PAUSE_IMAGE := monokube.local/pause:3.10
ECHO_IMAGE := monokube.local/echo:test

# Addon programs, built the same way and packed as images.
COREDNS_VERSION := v1.15.0
METRICS_SERVER_VERSION := v0.9.0
LOCAL_PATH_VERSION := v0.0.30
COREDNS_IMAGE := monokube.local/coredns:$(COREDNS_VERSION)
METRICS_SERVER_IMAGE := monokube.local/metrics-server:$(METRICS_SERVER_VERSION)
LOCAL_PATH_IMAGE := monokube.local/local-path-provisioner:$(LOCAL_PATH_VERSION)
BUSYBOX_IMAGE := monokube.local/busybox:1.35
BUSYBOX := /bin/busybox
# The applets local-path's setup/teardown scripts and e2e checks use.
BUSYBOX_APPLETS := sh mkdir rm rmdir ls cat echo sleep chmod chown du df find test true false env grep \
	hostname id mount touch head tail tee wc nslookup wget

RUNC_MODULE := github.com/opencontainers/runc
SHIM_MODULE := github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
CNI_MODULE := github.com/containernetworking/plugins/plugins
CNI_PKGS := main/bridge main/loopback ipam/host-local meta/portmap meta/bandwidth
RUNC_TAGS := seccomp netgo osusergo urfave_cli_no_docs
SHIM_TAGS := urfave_cli_no_docs no_grpc

RUNC_BIN := $(BUILD_DIR)/runc-$(RUNC_VERSION)/runc
SHIM_BIN := $(BUILD_DIR)/shim-$(SHIM_VERSION)/containerd-shim-runc-v2
CNI_DIR := $(BUILD_DIR)/cni-$(CNI_PLUGINS_VERSION)
CNI_BINS := $(addprefix $(CNI_DIR)/,$(notdir $(CNI_PKGS)))
CRICTL_BIN := $(BUILD_DIR)/crictl-$(CRICTL_VERSION)/crictl
HELPER_BINS := $(RUNC_BIN) $(SHIM_BIN) $(CNI_BINS) $(CRICTL_BIN)
COREDNS_BIN := $(BUILD_DIR)/coredns-$(COREDNS_VERSION)/coredns
METRICS_SERVER_BIN := $(BUILD_DIR)/metrics-server-$(METRICS_SERVER_VERSION)/metrics-server
LOCAL_PATH_BIN := $(BUILD_DIR)/local-path-$(LOCAL_PATH_VERSION)/local-path-provisioner
MKIMAGE := $(BUILD_DIR)/mkimage
PAUSE_BIN := $(BUILD_DIR)/pause/pause
ECHO_BIN := $(BUILD_DIR)/echo/echo
BIN_TAR := embed/bin.tar.zst
ECHO_TAR := $(BUILD_DIR)/test-images/echo.tar
# Embedded images: embed/images/NAME.tar.zst, a zstd-compressed docker-archive,
# beside NAME.ref, the image's name (the Makefile is its one source) and digest.
IMAGE_KEYS := pause coredns metrics-server local-path-provisioner busybox
EMBED_IMAGES := $(foreach k,$(IMAGE_KEYS),embed/images/$(k).tar.zst embed/images/$(k).ref)
EMBED_ASSETS := $(BIN_TAR) $(BIN_TAR).sha256 $(EMBED_IMAGES)

assets: $(EMBED_ASSETS)

# runc: static PIE (-buildmode=pie is what makes -static-pie link) with
# libseccomp; no libpathrs tag (it needs a Rust library).
$(RUNC_BIN):
	GOBIN=$(abspath $(@D)) CGO_ENABLED=1 $(GO) install -trimpath -buildmode=pie -tags '$(RUNC_TAGS)' \
		-ldflags '-s -w -X main.version=$(RUNC_VERSION:v%=%) -linkmode external -extldflags -static-pie' \
		$(RUNC_MODULE)@$(RUNC_VERSION)
	$@ --version >/dev/null

# The shim with containerd's own shim tags: no_grpc drops the gRPC server it
# does not need (14 MB -> 8 MB).
$(SHIM_BIN):
	GOBIN=$(abspath $(@D)) $(GO) install -trimpath -tags '$(SHIM_TAGS)' \
		-ldflags '-s -w -X github.com/containerd/containerd/v2/version.Version=$(SHIM_VERSION:v%=%)' \
		$(SHIM_MODULE)@$(SHIM_VERSION)
	$@ -v >/dev/null

$(CNI_DIR)/%:
	GOBIN=$(abspath $(@D)) $(GO) install -trimpath -ldflags '-s -w' \
		$(CNI_MODULE)/$(filter %/$*,$(CNI_PKGS))@$(CNI_PLUGINS_VERSION)
	test -x $@

# Addon programs: plain `go install MOD@VER`, stripped (DESIGN.md, sizes).
$(COREDNS_BIN):
	GOBIN=$(abspath $(@D)) $(GO) install -trimpath -ldflags '-s -w' github.com/coredns/coredns@$(COREDNS_VERSION)
	$@ -version >/dev/null
$(METRICS_SERVER_BIN):
	GOBIN=$(abspath $(@D)) $(GO) install -trimpath -ldflags '-s -w' \
		sigs.k8s.io/metrics-server/cmd/metrics-server@$(METRICS_SERVER_VERSION)
	test -x $@
$(LOCAL_PATH_BIN):
	GOBIN=$(abspath $(@D)) $(GO) install -trimpath -ldflags '-s -w -X main.VERSION=$(LOCAL_PATH_VERSION)' \
		github.com/rancher/local-path-provisioner@$(LOCAL_PATH_VERSION)
	test -x $@

# crictl for `monokube crictl` (its main package cannot be imported).
$(CRICTL_BIN):
	GOBIN=$(abspath $(@D)) $(GO) install -trimpath \
		-ldflags '-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$(CRICTL_VERSION)' \
		sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)
	$@ --version >/dev/null

# One tar (sorted, fixed owner and mtime) of the helpers, zstd-compressed;
# internal/assets.ExtractBin unpacks it once per content hash.
$(BIN_TAR): $(HELPER_BINS)
	@mkdir -p $(@D) $(BUILD_DIR)/bin-stage
	rm -f $(BUILD_DIR)/bin-stage/* && cp $^ $(BUILD_DIR)/bin-stage/
	tar -C $(BUILD_DIR)/bin-stage --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		--mode=0755 -cf - $(sort $(notdir $^)) | zstd -q -19 -T0 -f -o $@.tmp
	mv $@.tmp $@
$(BIN_TAR).sha256: $(BIN_TAR)
	sha256sum $< | cut -d' ' -f1 >$@

$(MKIMAGE): scripts/mkimage/main.go scripts/mkimage/archive/archive.go
	$(GO) build -trimpath -o $@ ./scripts/mkimage

$(PAUSE_BIN): scripts/pause/main.go
	$(GO) build -trimpath -ldflags '-s -w' -o $@ ./scripts/pause

$(ECHO_BIN): tests/images/echo/main.go
	$(GO) build -trimpath -ldflags '-s -w' -o $@ ./tests/images/echo

# Image names live in stamp files so that renaming an image remakes it.
FORCE:
$(BUILD_DIR)/%.name: FORCE
	@mkdir -p $(@D)
	@echo '$(IMAGE_NAME)' | cmp -s - $@ || echo '$(IMAGE_NAME)' >$@
$(BUILD_DIR)/pause.name: IMAGE_NAME := $(PAUSE_IMAGE)
$(BUILD_DIR)/echo.name: IMAGE_NAME := $(ECHO_IMAGE)
$(BUILD_DIR)/coredns.name: IMAGE_NAME := $(COREDNS_IMAGE)
$(BUILD_DIR)/metrics-server.name: IMAGE_NAME := $(METRICS_SERVER_IMAGE)
$(BUILD_DIR)/local-path-provisioner.name: IMAGE_NAME := $(LOCAL_PATH_IMAGE)
$(BUILD_DIR)/busybox.name: IMAGE_NAME := $(BUSYBOX_IMAGE)

# Each image's mkimage arguments, by key.
IMAGE_ARGS_pause := -entrypoint /pause -file $(PAUSE_BIN):/pause
IMAGE_ARGS_coredns := -entrypoint /coredns -file $(COREDNS_BIN):/coredns
IMAGE_ARGS_metrics-server := -entrypoint /metrics-server -file $(METRICS_SERVER_BIN):/metrics-server -dir /tmp
IMAGE_ARGS_local-path-provisioner := -entrypoint /local-path-provisioner -file $(LOCAL_PATH_BIN):/local-path-provisioner
IMAGE_ARGS_busybox := -cmd sh -file $(BUSYBOX):/bin/busybox -dir /tmp $(foreach a,$(BUSYBOX_APPLETS),-link /bin/$(a):busybox)

embed/images/pause.tar.zst: $(PAUSE_BIN)
embed/images/coredns.tar.zst: $(COREDNS_BIN)
embed/images/metrics-server.tar.zst: $(METRICS_SERVER_BIN)
embed/images/local-path-provisioner.tar.zst: $(LOCAL_PATH_BIN)
embed/images/busybox.tar.zst: $(BUSYBOX)

# --long lets zstd match across a whole Go binary; monokube decompresses the
# stream while containerd imports it.
embed/images/%.tar.zst: $(MKIMAGE) $(BUILD_DIR)/%.name
	@mkdir -p $(@D) $(BUILD_DIR)/images
	$(MKIMAGE) -o $(BUILD_DIR)/images/$*.tar -name $$(cat $(BUILD_DIR)/$*.name) $(IMAGE_ARGS_$*)
	zstd -q -19 --long=27 -T0 -f $(BUILD_DIR)/images/$*.tar -o $@.tmp
	mv $@.tmp $@
# NAME, then the archive's SHA-256: monokube skips importing an image
# containerd already holds from the same archive without reading it.
embed/images/%.ref: $(BUILD_DIR)/%.name embed/images/%.tar.zst Makefile
	{ cat $<; sha256sum embed/images/$*.tar.zst | cut -d' ' -f1; } >$@

# Test images are for e2e only; they are not embedded in monokube.
test-images: $(ECHO_TAR)
$(ECHO_TAR): $(ECHO_BIN) $(MKIMAGE) $(BUILD_DIR)/echo.name
	@mkdir -p $(@D)
	$(MKIMAGE) -o $@ -name $(ECHO_IMAGE) -entrypoint /echo -file $(ECHO_BIN):/echo

run: all
	$(BIN) server $(RUN_ARGS)

test: all lint test-unit test-e2e

# golangci-lint at a pinned version, built from the Go module proxy like the
# helpers; .golangci.yml says which linters and why. A finding fails the run.
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(BUILD_DIR)/golangci-lint-$(GOLANGCI_VERSION)/golangci-lint
$(GOLANGCI):
	GOBIN=$(abspath $(@D)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	$@ version >/dev/null
lint: assets $(GOLANGCI)
	$(GOLANGCI) run ./...

test-unit: assets
	@test -z "$$(gofmt -l cmd internal tests embed manifests scripts)" || { gofmt -l cmd internal tests embed manifests scripts; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/...
	$(GO) vet -tags conformance ./tests/conformance/...
	$(GO) test -short -count=1 ./internal/... ./embed/... ./tests/conformance/mkimages/

# E2E needs root; E2E=1 turns a skip for missing root into a failure.
test-e2e: build next test-images
	E2E=1 MONOKUBE_BIN=$(CURDIR)/$(BIN) MONOKUBE_NEXT_BIN=$(CURDIR)/$(NEXT_BIN) MONOKUBE_TEST_IMAGES=$(CURDIR)/$(dir $(ECHO_TAR)) $(GO) test -tags e2e -p 1 -count=1 -timeout $(E2E_TIMEOUT) -v ./tests/e2e/...

bench: all next test-images
	MONOKUBE_BIN=$(CURDIR)/$(BIN) MONOKUBE_NEXT_BIN=$(CURDIR)/$(NEXT_BIN) MONOKUBE_TEST_IMAGES=$(CURDIR)/$(dir $(ECHO_TAR)) $(GO) test -tags e2e -run '^$$' -bench . -benchtime 1x -count=1 -timeout 30m ./tests/bench/

# ---- Conformance: the upstream [Conformance] suite, offline ----------------
# Not part of `make test` (it runs for about an hour). Everything comes from
# the pinned modules in go.mod (tests/conformance/tools.go names them): the
# e2e.test binary, ginkgo, kubectl and the programs inside the images the
# suite runs; the images share one Debian tree made by mmdebstrap. All of it
# is cached per Kubernetes version under build/conformance-<version>/.
# CONF_FOCUS=REGEXP re-runs only the matching specs.
CONF_DEB_PKGS := mmdebstrap curl bzip2 make
CONF_DIR := $(BUILD_DIR)/conformance-$(K8S_VERSION)
CONF_BIN := $(CONF_DIR)/bin
CONF_TOOLS := $(CONF_DIR)/e2e.test $(CONF_DIR)/ginkgo $(CONF_DIR)/kubectl
CONF_IMAGE_BINS := $(addprefix $(CONF_BIN)/,agnhost nnp sample-apiserver etcd coredns pause busybox)
CONF_IMAGES := $(CONF_DIR)/images.tar
CONF_RESULTS ?= $(BUILD_DIR)/conformance-results/$(shell date -u +%Y%m%d-%H%M%S)
CONF_PROCS ?= 4
CONF_TIMEOUT ?= 90m
CONF_FOCUS ?=
CONF_LDFLAGS := -s -w -X $(KV).gitVersion=$(K8S_VERSION) -X $(KV).gitMajor=1 -X $(KV).gitMinor=$(K8S_MINOR) \
	-X $(CV).gitVersion=$(K8S_VERSION) -X $(CV).gitMajor=1 -X $(CV).gitMinor=$(K8S_MINOR)

conformance-deps:
	@scripts/install-deps.sh $(DEB_PKGS) $(CONF_DEB_PKGS)

conformance: conformance-deps build $(CONF_TOOLS) $(CONF_IMAGES)
	E2E=1 MONOKUBE_BIN=$(CURDIR)/$(BIN) CONFORMANCE_DIR=$(CURDIR)/$(CONF_DIR) \
	CONFORMANCE_RESULTS=$(abspath $(CONF_RESULTS)) CONFORMANCE_PROCS=$(CONF_PROCS) \
	CONFORMANCE_TIMEOUT=$(CONF_TIMEOUT) CONFORMANCE_FOCUS='$(CONF_FOCUS)' \
	$(GO) test -tags conformance -count=1 -timeout 4h -v ./tests/conformance/

$(CONF_DIR)/e2e.test:
	$(GO) test -c -trimpath -ldflags '$(CONF_LDFLAGS)' -o $@ k8s.io/kubernetes/test/e2e
$(CONF_DIR)/ginkgo:
	$(GO) build -trimpath -ldflags '-s -w' -o $@ github.com/onsi/ginkgo/v2/ginkgo
$(CONF_DIR)/kubectl:
	$(GO) build -trimpath -ldflags '$(CONF_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kubectl
$(CONF_DIR)/mkimages: $(wildcard tests/conformance/mkimages/*.go)
	$(GO) build -trimpath -o $@ ./tests/conformance/mkimages

# The programs inside the images, by the package that builds each.
CONF_PKG_agnhost := k8s.io/kubernetes/test/images/agnhost
CONF_PKG_nnp := k8s.io/kubernetes/test/images/nonewprivs
CONF_PKG_sample-apiserver := k8s.io/sample-apiserver
CONF_PKG_etcd := go.etcd.io/etcd/server/v3
$(addprefix $(CONF_BIN)/,agnhost nnp sample-apiserver etcd):
	$(GO) build -trimpath -ldflags '-s -w' -o $@ $(CONF_PKG_$(@F))
$(CONF_BIN)/coredns: $(COREDNS_BIN)
	@mkdir -p $(@D) && cp $< $@
$(CONF_BIN)/pause: $(PAUSE_BIN)
	@mkdir -p $(@D) && cp $< $@

$(CONF_BIN)/busybox: tests/conformance/busybox.sh
	tests/conformance/busybox.sh $@
$(CONF_DIR)/rootfs.tar: tests/conformance/rootfs.sh
	tests/conformance/rootfs.sh $@

$(CONF_IMAGES): $(CONF_DIR)/mkimages $(CONF_DIR)/rootfs.tar $(CONF_IMAGE_BINS)
	$(CONF_DIR)/mkimages -o $@ -rootfs $(CONF_DIR)/rootfs.tar -bin $(CONF_BIN) \
		-files "$$($(GO) list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images"

clean:
	rm -rf bin $(BUILD_DIR) $(EMBED_ASSETS) $(PAYLOAD) $(PAYLOAD_SUM) $(NEXT_DIR)
