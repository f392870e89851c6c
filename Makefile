# plinth Makefile. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Trivy (linked by the operator binary) needs encoding/json/v2.
export GOEXPERIMENT := jsonv2

# Settings of every build and test, chosen for the time a first build
# takes on a small machine; build caches are kept apart by them, so the
# binaries, the control plane and the tests share what they compile only
# when all use the same:
# - the disable_grpc_modules tag leaves out the gRPC transport of Google
#   Cloud Storage's client (its documented opt-out). Trivy links the client,
#   through go-getter; plinth never uses it, and its gRPC transport brought
#   about 130 packages, mostly Envoy's generated API.
# - -dwarf=false: the compiler writes no debugger information. Local
#   binaries dropped it at link time anyway (-ldflags -w); stack traces,
#   profiles and race reports do not need it. A debugger (dlv) builds with
#   its own flags.
# - no inlining (-l) outside HOT_PKGS, the packages where the operator
#   spends its time. The rest are the control plane's own packages (it only
#   serves tests and the playground) and the many the operator links but
#   never runs, such as Trivy's misconfiguration scanners and cloud SDKs.
#   They are about three quarters of what a first build compiles, and the
#   compiler spends about a quarter less on each without inlining. The
#   container image (Dockerfile) inlines everything.
# - CGO_ENABLED=0, as the container image is built: no C compiler is
#   needed, and the C sources of a zstd library Trivy links are not
#   compiled. `go test -race` needs cgo: make test CGO_ENABLED=1
#   GO_TEST_FLAGS=-race.
#
# HOT_PKGS: the standard library; plinth; Trivy (but for COLD_PKGS, its
# misconfiguration checks) with its package-version comparisons and
# vulnerability DB; image access and layer decompression; the Kubernetes
# client side and serialization; HTTP/2 and the other golang.org/x
# packages; logging. A package built without inlining also lets no caller
# inline its functions, so small libraries that hot code calls are listed
# too. Each pattern costs the go command some time on every build, even
# one with nothing to do (about 70 ms here), so the list stays short.
HOT_PKGS := std github.com/plinth-dev/plinth/... \
	github.com/aquasecurity/... github.com/knqyf263/... go.etcd.io/bbolt/... \
	github.com/google/go-containerregistry/... github.com/klauspost/... \
	k8s.io/api/... k8s.io/apimachinery/... k8s.io/client-go/... sigs.k8s.io/... \
	golang.org/x/... github.com/go-logr/... go.uber.org/...
# Inside HOT_PKGS, but never run by the operator: Trivy's misconfiguration
# scanners and generated clients it does not call.
COLD_PKGS := github.com/aquasecurity/trivy/pkg/iac/... \
	k8s.io/client-go/informers/... k8s.io/client-go/listers/... \
	k8s.io/client-go/applyconfigurations/... k8s.io/client-go/kubernetes/typed/...
# A later -gcflags pattern overrides an earlier one for the packages it
# matches; GOFLAGS takes single-quoted words.
GCFLAGS := '-gcflags=all=-l -dwarf=false' $(patsubst %,-gcflags=%=-dwarf=false,$(HOT_PKGS)) \
	$(patsubst %,'-gcflags=%=-l -dwarf=false',$(COLD_PKGS))
BUILD_FLAGS := -tags=disable_grpc_modules $(GCFLAGS)
USER_GOFLAGS := $(filter-out $(BUILD_FLAGS),$(shell go env GOFLAGS))
export GOFLAGS := $(strip $(USER_GOFLAGS) $(BUILD_FLAGS))
# The trivy CLI and Flux's controller, which benchmarks compare plinth with,
# and the cosign CLI build with inlining everywhere, as their projects ship
# them.
PEER_GOFLAGS := $(strip $(USER_GOFLAGS) -tags=disable_grpc_modules -gcflags=all=-dwarf=false)
CGO_ENABLED ?= 0
export CGO_ENABLED

BIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(BIN)/controller-gen
IMG ?= ghcr.io/plinth-dev/plinth:latest

# The release. VERSION is the operator's (and the OLM bundle's) version; the
# image tag in config/manager/kustomization.yaml follows it. BUNDLE_CREATED_AT
# is the CSV's createdAt, fixed so that regenerating the bundle changes
# nothing.
VERSION ?= 0.1.0
BUNDLE_CREATED_AT ?= 2026-11-26T00:00:00Z
BUNDLE_IMG ?= ghcr.io/plinth-dev/plinth-bundle:$(VERSION)

# Test control plane (envtest). A user who already has binaries sets
# KUBEBUILDER_ASSETS and nothing is built.
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ETCD_VERSION ?= 3.6.16
ENVTEST_DIR ?= $(BIN)/k8s/$(ENVTEST_K8S_VERSION)-etcd$(ENVTEST_ETCD_VERSION)
KUBEBUILDER_ASSETS ?= $(ENVTEST_DIR)
# Non-empty when KUBEBUILDER_ASSETS holds both binaries.
ENVTEST_BUILT = $(shell [ -x "$(KUBEBUILDER_ASSETS)/kube-apiserver" ] && [ -x "$(KUBEBUILDER_ASSETS)/etcd" ] && echo yes)
export KUBEBUILDER_ASSETS

TRIVY_VERSION ?= $(shell awk '$$1 == "require" && $$2 == "github.com/aquasecurity/trivy" {print $$3}' hack/trivy-cli/go.mod)
TRIVY_CLI ?= $(BIN)/trivy-$(TRIVY_VERSION)

COSIGN_VERSION ?= $(shell awk '$$1 == "require" && $$2 == "github.com/sigstore/cosign/v2" {print $$3}' hack/cosign-cli/go.mod)
COSIGN_CLI ?= $(BIN)/cosign-$(COSIGN_VERSION)

FLUX_IRC_VERSION ?= $(shell awk '$$1 == "require" && $$2 == "github.com/fluxcd/image-reflector-controller" {print $$3} $$1 == "github.com/fluxcd/image-reflector-controller" {print $$2}' hack/flux-irc/go.mod)
FLUX_IRC ?= $(BIN)/image-reflector-controller-$(FLUX_IRC_VERSION)

GO_TEST_FLAGS ?= -count=1

# Local binaries are built without -trimpath, like the tests, so the
# packages they share compile once; and without symbol tables and DWARF
# (panics still print stack traces), which shortens the link of the
# Trivy-linked operator. GO_LDFLAGS= keeps them for a debugger.
GO_LDFLAGS ?= -s -w
TEST_TIMEOUT ?= 30m

.PHONY: all
all: build

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy functions.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: verify
verify: manifests generate bundle ## Fail when generated files differ from the committed ones, or Go files are not gofmt'ed.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "not gofmt'ed"; exit 1; }
	go mod tidy
	hack/check-shared-modules.sh
	git diff --exit-code -- . ':(exclude)bin'
	@test -z "$$(git status --porcelain --untracked-files=all -- api config bundle bundle.Dockerfile go.mod go.sum)" || { git status --porcelain --untracked-files=all -- api config bundle bundle.Dockerfile; echo "untracked generated files"; exit 1; }

.PHONY: envtest
envtest: ## Build the test control plane (etcd, kube-apiserver) unless KUBEBUILDER_ASSETS has them.
	$(if $(ENVTEST_BUILT),@echo "test control plane: $(KUBEBUILDER_ASSETS)",hack/envtest/build.sh "$(KUBEBUILDER_ASSETS)")

# The packages of the binaries (the operator and the playground).
BINARY_PKGS := . ./hack/playground

# Downloads the modules of the binaries: go list loads them and compiles
# nothing. It runs beside a build of the control plane, whose compiling
# then fills the time the downloads wait; with nothing to build beside, it
# would only add its own time.
.PHONY: modules
modules:
	go list -deps $(BINARY_PKGS) >/dev/null

.PHONY: test
test: ## Run every test against a real API server.
	$(MAKE) --no-print-directory -j2 envtest $(if $(ENVTEST_BUILT),,modules)
	$(MAKE) --no-print-directory -j3 binaries trivy-cli cosign-cli
	PLINTH_BINARY=$(BIN)/plinth PLINTH_PLAYGROUND_BINARY=$(BIN)/plinth-playground PLINTH_TRIVY_CLI=$(TRIVY_CLI) \
		PLINTH_COSIGN_CLI=$(COSIGN_CLI) \
		go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) fuzz FUZZ_TARGETS="$(FUZZ_TARGETS_SHORT)"

# FUZZ_TARGETS are package:target pairs; `make fuzz` runs each for FUZZTIME,
# a count of executions by default (a duration, such as 1m, also works; but a
# duration can end a run while an input is being minimized, which Go then
# reports as a failure, "context deadline exceeded").
# make test runs FUZZ_TARGETS_SHORT: all but the DB archive reader, whose
# fuzzing build instruments all of Trivy (many minutes on 2 cores); its
# seed corpus still runs with the ordinary tests.
# FUZZMINIMIZETIME bounds the minimizing of each new input: left at Go's
# default (a minute per input), a target whose code runs goroutines spends
# a short run minimizing instead of fuzzing.
FUZZTIME ?= 5000x
FUZZMINIMIZETIME ?= 200x
FUZZ_TARGETS ?= ./internal/policy:FuzzEvaluate ./internal/check:FuzzParseDockerfile ./internal/check:FuzzParseImage \
	./internal/admission:FuzzAdmissionReview ./internal/admission:FuzzDecodeWorkload \
	./internal/scan/trivy:FuzzExtractDB
FUZZ_TARGETS_SHORT ?= $(filter-out ./internal/scan/trivy:%,$(FUZZ_TARGETS))

.PHONY: fuzz
fuzz: ## Run each fuzz target briefly (FUZZTIME), from its seed corpus on.
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) "$${t%%:*}"; \
	done

.PHONY: trivy-cli
trivy-cli: ## Build the trivy CLI that tests compare plinth's findings with.
	GOFLAGS="$(PEER_GOFLAGS)" hack/trivy-cli.sh $(TRIVY_CLI) >/dev/null

.PHONY: cosign-cli
cosign-cli: ## Build the cosign CLI that tests check plinth's signatures with.
	GOFLAGS="$(PEER_GOFLAGS)" hack/cosign-cli.sh $(COSIGN_CLI) >/dev/null

.PHONY: flux-irc
flux-irc: ## Build Flux's image-reflector-controller that the cold start benchmark compares plinth with.
	GOFLAGS="$(PEER_GOFLAGS)" hack/flux-irc.sh $(FLUX_IRC) >/dev/null

.PHONY: bench
bench: build trivy-cli flux-irc envtest ## Print benchmarks: scans against the trivy CLI, DB updates, re-evaluation, restarts, memory; the operator's peak memory scanning two 1 GB images; a cold start of 1,000 entries and the steady state, each beside Flux's image-reflector-controller; signing and verification; admission latency.
	PLINTH_TRIVY_CLI=$(TRIVY_CLI) go test -run '^$$' -bench 'BenchmarkReport' -benchtime=1x ./internal/scan/trivy/
	PLINTH_BINARY=$(BIN)/plinth PLINTH_TRIVY_CLI=$(TRIVY_CLI) go test -run '^$$' -bench 'BenchmarkScanMemory' -benchtime=1x -timeout 20m ./test/e2e/
	PLINTH_FLUX_IRC=$(FLUX_IRC) go test -run '^$$' -bench '^BenchmarkColdStartFlux$$' -benchtime=1x -timeout 60m ./test/scale/
	PLINTH_BINARY=$(BIN)/plinth PLINTH_FLUX_IRC=$(FLUX_IRC) go test -run '^$$' -bench 'BenchmarkSteadyStateFlux' -benchtime=1x -timeout 30m ./test/scale/
	go test -run '^$$' -bench 'BenchmarkPublish|BenchmarkVerify' -benchmem ./internal/sign/
	go test -run '^$$' -bench 'BenchmarkWebhook' -benchtime=2000x ./internal/admission/

# CLUSTER=1 makes `make run` use KUBECONFIG's cluster; unset (or 0, false,
# no), it uses a local playground and never touches that cluster.
CLUSTER ?=
RUN_ON_CLUSTER := $(filter-out 0 false no,$(CLUSTER))

# The control plane builds before the binaries, not beside them: they
# share most of the Kubernetes packages, which then compile once (see
# hack/envtest/build.sh), and each go build keeps every core busy. The
# binaries' modules download meanwhile (`modules`).
.PHONY: run
run: ## Run the operator on a local playground; CLUSTER=1 runs it against KUBECONFIG's cluster instead.
	$(if $(RUN_ON_CLUSTER),,$(MAKE) --no-print-directory -j2 envtest $(if $(ENVTEST_BUILT),,modules))
	$(MAKE) --no-print-directory binaries
	$(BIN)/plinth-playground $(if $(RUN_ON_CLUSTER),-cluster)

.PHONY: test-install
test-install: envtest ## Check config/ and bundle/: rendering, dry-run install, pod security, RBAC, OLM validation.
	go test $(GO_TEST_FLAGS) ./test/install/...

##@ Build

.PHONY: build
build: ## Build the operator binary.
	go build -ldflags "$(GO_LDFLAGS)" -o $(BIN)/plinth .

.PHONY: playground
playground: ## Build the local playground that `make run` starts.
	go build -ldflags "$(GO_LDFLAGS)" -o $(BIN)/plinth-playground ./hack/playground

# One go build for both, so that their shared packages compile once and the
# two links overlap. The outputs stay in bin/.binaries, where go build finds
# them up to date and links nothing the next time; bin/ gets hard links.
.PHONY: binaries
binaries: ## Build the operator and the playground.
	go build -ldflags "$(GO_LDFLAGS)" -o $(BIN)/.binaries/ $(BINARY_PKGS)
	ln -f $(BIN)/.binaries/plinth $(BIN)/plinth
	ln -f $(BIN)/.binaries/playground $(BIN)/plinth-playground

.PHONY: docker-build
docker-build: ## Build the container image.
	docker build -t $(IMG) .

$(CONTROLLER_GEN):
	cd hack/tools && GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen

##@ Deployment

.PHONY: bundle
bundle: manifests ## Generate the OLM bundle (bundle/, bundle.Dockerfile) from config/.
	go run ./hack/bundle --version $(VERSION) --created-at $(BUNDLE_CREATED_AT) --out bundle

.PHONY: bundle-build
bundle-build: ## Build the OLM bundle image.
	docker build -f bundle.Dockerfile -t $(BUNDLE_IMG) .

.PHONY: bundle-push
bundle-push: ## Push the OLM bundle image.
	docker push $(BUNDLE_IMG)

.PHONY: install
install: manifests ## Install the CRDs into the cluster of KUBECONFIG.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs, and with them every BaseImage and ImagePolicy, from the cluster of KUBECONFIG.
	kubectl delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Install plinth (config/default) into the cluster of KUBECONFIG.
	kubectl apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove plinth (config/default) from the cluster of KUBECONFIG.
	kubectl delete --ignore-not-found -k config/default
