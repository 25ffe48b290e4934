# botfleet — see README.md. `make help` lists the targets.
GO      ?= go
BIN     := bin
CMDS    := $(notdir $(wildcard cmd/*))
API_KEY ?= dev-key
PORT    ?= 8080
CONFIG  ?= $(wildcard config.yaml)

.PHONY: help build test stress vet deps run bench bench-go clean fleet fleet-down fleet-status chaos fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every command into bin/
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

deps: ## install redis-server and nginx if missing (as root), else print the command
	@scripts/install_deps.sh

vet:
	@test -z "$$(gofmt -l cmd pkg)" || { echo "gofmt needed:"; gofmt -l cmd pkg; exit 1; }
	$(GO) vet ./...

test: deps vet ## vet, run every test with the race detector, then each fuzz target for 2s
	$(GO) test -race -count=1 -timeout 15m ./...
	@GO=$(GO) FUZZTIME=2s scripts/fuzz.sh

fuzz: ## run each fuzz target for FUZZTIME (default 1m); crashers land in testdata/fuzz/ as regression tests
	@GO=$(GO) FUZZTIME=$(or $(FUZZTIME),1m) scripts/fuzz.sh

# The packages whose code runs concurrently, for make stress.
STRESS_PKGS := ./pkg/memory ./pkg/chat ./pkg/stream ./pkg/queue ./pkg/im ./pkg/llm ./pkg/httpapi

stress: deps ## the concurrent packages' tests ten times in a row under the race detector
	$(GO) test -race -count=10 -timeout 30m $(STRESS_PKGS)

run: deps build ## one instance on $(PORT) against a local Redis (started if none answers)
	@scripts/ensure_redis.sh
	@echo "try: curl -s http://127.0.0.1:$(PORT)/v1/chat -H 'Authorization: Bearer $(API_KEY)' -H 'Content-Type: application/json' -d '{\"message\":\"你好\"}'"
	API_KEY=$(API_KEY) $(BIN)/bot --port $(PORT) $(if $(CONFIG),--config $(CONFIG))

fleet: build ## the local fleet: Redis, instances 8080-8083, nginx on 127.0.0.1:18789, healthchecker
	@API_KEY=$(API_KEY) scripts/fleet.sh up

fleet-down: ## stop the local fleet (and the Redis that make fleet started)
	@scripts/fleet.sh down

fleet-status: ## every part of the local fleet with its pid and state
	@API_KEY=$(API_KEY) scripts/fleet.sh status

chaos: ## failure drills on a throwaway fleet (free ports): kill -9, rolling restart, Redis outage
	$(GO) test -count=1 -v -run 'TestKillPrimaryDuringStream|TestRollingRestartDuringStream|TestRedisOutage' ./pkg/fleet

bench: build ## bench fleet on fixed high ports: rate searches, baseline, RSS, cold start, Go benchmarks -> BENCHMARKS.md
	@scripts/bench.sh

bench-go: ## only the Go benchmarks of the turn path
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/chat ./pkg/memory ./pkg/llm

clean: ## remove built binaries
	rm -rf $(BIN)
