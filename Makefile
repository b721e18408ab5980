# shopstream — two commands do everything: `make run` (the embedded demo)
# and `make test` (the whole suite, as CI runs it).
GO      ?= go
PKGS    := ./...

.PHONY: run test build vet fmt-check unit integration kafka clean helm chart-test image

## run: the embedded default — Kafka (kfake), Redis (miniredis), a Magento
## simulator and an event generator with the real processor in between.
run:
	$(GO) run ./cmd/shopstream demo

## test: formatting, vet, then every test with the race detector.
## Needs redis-server and kcat on PATH (.ci/run installs them from Debian's
## packages) and java + mvn for the real Kafka broker the integration suite
## starts (or SHOPSTREAM_TEST_BROKERS=host:port to use a running one).
## Then chart-test (needs helm; `make helm` installs it).
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) chart-test

build:
	$(GO) build -o bin/shopstream ./cmd/shopstream

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 $$($(GO) list $(PKGS) | grep -v /test/)

integration:
	$(GO) test -race -count=1 ./test/...

## kafka: a real single-node Apache Kafka on a free port, until Ctrl-C.
kafka:
	$(GO) run ./test/realkafka/cmd/realkafka single

## helm: install helm (v3.22.0, from the Go module proxy) unless one is
## already on PATH or in $(go env GOPATH)/bin.
HELM_VERSION := v3.22.0
GOBIN_DIR     = $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH | cut -d: -f1)/bin)
helm:
	@command -v helm >/dev/null 2>&1 || [ -x "$(GOBIN_DIR)/helm" ] || \
	  { echo "installing helm $(HELM_VERSION) into $(GOBIN_DIR)"; $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }

## chart-test: the Helm chart (deploy/helm/shopstream) with helm lint and
## helm template, strict decoding into the Kubernetes, KEDA and
## prometheus-operator types, PromQL checks and the real binary; a separate
## Go module (deploy/helm/charttest), so the main module has no Kubernetes
## dependencies.
chart-test: helm
	cd deploy/helm/charttest && PATH="$$PATH:$(GOBIN_DIR)" $(GO) vet ./... && PATH="$$PATH:$(GOBIN_DIR)" $(GO) test -count=1 -timeout 15m ./...

## image: the container image (needs a Docker engine with BuildKit).
image:
	docker build -f deploy/Dockerfile -t shopstream:dev .

clean:
	rm -rf bin
