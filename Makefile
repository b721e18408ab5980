# shopstream — two commands do everything: `make run` (the embedded demo)
# and `make test` (the whole suite, as CI runs it).
GO      ?= go
PKGS    := ./...

.PHONY: run test build vet fmt-check unit integration kafka clean

## run: the embedded default — Kafka (kfake), Redis (miniredis), a Magento
## simulator and an event generator with the real processor in between.
run:
	$(GO) run ./cmd/shopstream demo

## test: formatting, vet, then every test with the race detector.
## Needs redis-server and kcat on PATH (.ci/run installs them from Debian's
## packages) and java + mvn for the real Kafka broker the integration suite
## starts (or SHOPSTREAM_TEST_BROKERS=host:port to use a running one).
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

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

clean:
	rm -rf bin
