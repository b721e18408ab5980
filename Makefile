# shopstream — two commands do everything: `make run` (the embedded demo)
# and `make test` (the whole suite, as CI runs it).
GO      ?= go
PKGS    := ./...

.PHONY: run test build vet fmt-check unit integration clean

## run: the embedded default — Kafka (kfake), Redis (miniredis), a Magento
## simulator and an event generator with the real processor in between.
run:
	$(GO) run ./cmd/shopstream demo

## test: formatting, vet, then every test with the race detector.
## Needs redis-server on PATH (.ci/run installs it from Debian's packages).
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

clean:
	rm -rf bin
