# botfleet — see README.md. `make help` lists the targets.
GO      ?= go
BIN     := bin
CMDS    := $(notdir $(wildcard cmd/*))
API_KEY ?= dev-key
PORT    ?= 8080
CONFIG  ?= $(wildcard config.yaml)

.PHONY: help build test test-k8s stress vet deps run bench soak bench-go clean fleet fleet-down fleet-status chaos fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every command into bin/
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

deps: ## install what the fleet and the tests need if missing (as root), else print the command
	@scripts/install_deps.sh

# deploy/k8s/check is a module of its own (Kubernetes' dependencies stay out
# of the bot's go.mod): the manifests' check against a real kube-apiserver.
K8S_CHECK := deploy/k8s/check

vet:
	@test -z "$$(gofmt -l cmd pkg $(K8S_CHECK))" || { echo "gofmt needed:"; gofmt -l cmd pkg $(K8S_CHECK); exit 1; }
	$(GO) vet ./...
	cd $(K8S_CHECK) && $(GO) vet ./...

test: vet ## vet, what the tests run if missing (as root), every test with the race detector, each fuzz target for 2s, then the k8s manifests' check
	@scripts/install_deps.sh --tests
	$(GO) test -race -count=1 -timeout 15m ./...
	@GO=$(GO) FUZZTIME=2s scripts/fuzz.sh
	$(MAKE) test-k8s

# Without -race: the check's own code is small, and the race build of
# client-go and kustomize would double its compile time. The first run
# compiles kube-apiserver (minutes); the go command caches it.
test-k8s: ## the Kubernetes manifests: kustomize build, server-side dry run on kube-apiserver + etcd
	cd $(K8S_CHECK) && $(GO) test -count=1 -timeout 30m ./...

fuzz: ## run each fuzz target for FUZZTIME (default 1m); crashers land in testdata/fuzz/ as regression tests
	@GO=$(GO) FUZZTIME=$(or $(FUZZTIME),1m) scripts/fuzz.sh

# The packages whose code runs concurrently, for make stress.
STRESS_PKGS := ./pkg/memory ./pkg/chat ./pkg/stream ./pkg/queue ./pkg/im/... ./pkg/llm ./pkg/httpapi ./pkg/lease ./pkg/pause

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

chaos: deps build ## faults under load on a throwaway fleet (free ports), the history checked -> CHAOS.md, chaos.json (CHAOS_FLAGS=--quick or --scenario NAME,...)
	$(BIN)/bench chaos $(CHAOS_FLAGS)

bench: deps build ## the bench fleet on free ports, every row -> BENCHMARKS.md, bench.json (BENCH_FLAGS=--quick: a smoke run)
	$(BIN)/bench $(BENCH_FLAGS)

DURATION ?= 10m
soak: deps build ## half the sustained rate for $(DURATION): RSS, goroutines, sockets, Redis -> run/bench/soak.{md,json,html}
	$(BIN)/bench soak --duration $(DURATION)

bench-go: ## only the Go benchmarks of the turn path
	$(GO) test -run '^$$' -bench . -benchmem ./cmd/bot ./pkg/chat ./pkg/memory ./pkg/llm

clean: ## remove built binaries
	rm -rf $(BIN)
