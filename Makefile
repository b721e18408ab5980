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

## chaos: the fault-injection suite (test/chaos) in its long version —
## kill -9 rounds over a 50 k-event stream (kfake and real Kafka), rebalance
## storm, 20 s Redis outage, Redis restarted empty, 30 s sink outage +
## redrive, 10% poison flood, slow shutdown, broker loss on a real 3-node
## cluster (3 nodes killed in turn), oversized records — printing the
## invariant checker's summary per scenario (lines starting with CHAOS).
## `make test` runs the short version. Needs what `make test` needs
## (redis-server, java + mvn — the broker-loss cluster always starts from
## the Maven jars — or SHOPSTREAM_TEST_BROKERS for the other real-Kafka
## scenarios). Then a short fuzzing pass over every fuzz target.
FUZZTIME ?= 30s
.PHONY: chaos
chaos:
	@mkdir -p bin
	@echo "chaos suite (long): full log in bin/chaos.log"
	@SHOPSTREAM_CHAOS=long $(GO) test -count=1 -v -timeout 120m ./test/chaos/ > bin/chaos.log 2>&1; rc=$$?; \
	  grep -E 'CHAOS |^ *--- (PASS|FAIL|SKIP)|^(ok |FAIL|panic)|good records/s|KNOWN GAP|SIGTERM with|retries_exhausted on|redrive:|SIGKILLed node|failed dead-letter writes|max.message.bytes' bin/chaos.log; exit $$rc
	@for t in FuzzParseRunConfig:./cmd/shopstream FuzzParseDeadLetter:./admin FuzzDecode:./topics \
	          FuzzDecodeStructured:./topics FuzzDecodeMatchesSchema:./topics; do \
	  echo "fuzz $${t%%:*} ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:} || exit 1; done

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

## bench: Go micro-benchmarks of the hot paths (benchstat-friendly output,
## also kept as test/bench/results/<time>-micro.txt), then the load harness
## (test/bench), which prints one markdown table of shopstream vs a baseline
## measured in the same run, writes it to test/bench/results/<time>.md and
## fails when a scenario misses its target. Needs redis-server on PATH; about
## 4 minutes on 2 cores. Not part of `make test`. For example:
##   make bench BENCHFLAGS=-count=6     # more samples per benchmark, for benchstat
##   make bench BENCHARGS='-quick -scenarios S1,S3 -cpuprofile -memprofile'
## Both are built with shopstream's profile (PGO, below), as the binary is.
BENCHFLAGS ?=
BENCHARGS  ?=
PGO        := cmd/shopstream/default.pgo
.PHONY: bench pgo
bench:
	@mkdir -p test/bench/results
	@out=test/bench/results/$$(date -u +%Y%m%dT%H%M%SZ)-micro.txt; \
	{ $(GO) test -pgo=$(PGO) -run '^$$' -bench . -benchmem $(BENCHFLAGS) ./topics/ ./ordering/ ./processor/ ./test/bench/ 2>&1; \
	  echo $$? > $$out.rc; } | tee $$out; \
	rc=$$(cat $$out.rc); rm -f $$out.rc; exit $$rc
	$(GO) run -pgo=$(PGO) ./test/bench $(BENCHARGS)

## pgo: regenerate cmd/shopstream/default.pgo, the CPU profile `go build`
## optimises shopstream with (profile-guided optimisation, picked up by
## every build of ./cmd/shopstream, the image's included): CPU profiles of
## three runs of the load harness's S1, S2 and S3 (decode, scheduling, the
## fence, the webhook client), merged. About 2 minutes; the harness's
## verdicts (and its "exit status 1" on a missed target) do not matter here,
## only that the profiles were written.
pgo:
	@dir=$$(mktemp -d); \
	for i in 1 2 3; do \
	  $(GO) run -pgo=off ./test/bench -scenarios S1,S2,S3 -cpuprofile -results $$dir >/dev/null || true; \
	done; \
	if ! ls $$dir/*-S1-cpu.pprof $$dir/*-S2-cpu.pprof $$dir/*-S3-cpu.pprof >/dev/null 2>&1; then \
	  echo "pgo: the harness wrote no profiles (is redis-server on PATH?)" >&2; rm -rf $$dir; exit 1; fi; \
	$(GO) tool pprof -proto $$dir/*-cpu.pprof > $(PGO) && rm -rf $$dir && echo "pgo: wrote $(PGO)"
