# stageproxy: build, run and test. See README.md.
GO      ?= go
BIN     := bin/stageproxy

.PHONY: build run test vet unit e2e bench fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/stageproxy

# Runs the proxy on its defaults: 127.0.0.1:8123, 100MB in-memory cache.
run: build
	./$(BIN) serve

# Everything CI runs: vet, the unit and integration tests under the race
# detector, then the end-to-end tests that drive real pip and npm.
test: vet unit e2e

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/

unit:
	$(GO) test -race ./...

e2e:
	$(GO) test -tags e2e -count=1 -timeout 4m ./e2e/

# Load benchmark on loopback: stageproxy against the origin served directly
# and against Squid (installed from Debian when absent).
bench:
	$(GO) run ./bench

clean:
	rm -rf bin
