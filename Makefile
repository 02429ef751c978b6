# tenantsweep: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin/handler
GOTEST    ?= $(GO) test
# The Functions host runs the binary on linux/amd64; CGO off makes it static,
# so the file `make build` produces is the file that deploys.
BUILDENV  := CGO_ENABLED=0 GOOS=linux GOARCH=amd64
AZURITE_PORT ?= 10002
# UseDevelopmentStorage=true (AzureWebJobsStorage in local.settings.json)
# looks for the queue service here, where local mode's queue listener polls.
AZURITE_QUEUE_PORT ?= 10001

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/handler (linux/amd64, static) as host.json names it, the file that deploys
	$(BUILDENV) $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./handler

# `make run` execs bin/handler on this machine (directly, or through func
# start and host.json), so it builds for this machine's OS and CPU: macOS and
# arm64 too. `make build` makes it the linux/amd64 deployment file again.
.PHONY: build-local
build-local: ## build bin/handler for this machine (what `make run` runs)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./handler

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: node_modules/.package-lock.json ## install Azurite (pinned in package-lock.json) and shellcheck
	@command -v shellcheck >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq shellcheck >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq shellcheck; }); \
	  else echo "make: shellcheck is not installed (apt-get install shellcheck); its test will be skipped" >&2; fi; }

local.settings.json:
	cp local.settings.json.example $@
	@echo "make: created local.settings.json from the example; put your app's id and credential in it" >&2

.PHONY: run
run: deps build-local local.settings.json ## run the app locally against Azurite (func start if installed, else local mode)
	@if command -v func >/dev/null; then \
	  scripts/azurite.sh start --port $(AZURITE_PORT) --queue-port $(AZURITE_QUEUE_PORT) --all >/dev/null; \
	  echo "make: starting with Azure Functions Core Tools"; exec func start; \
	else \
	  scripts/azurite.sh start --port $(AZURITE_PORT) --queue-port $(AZURITE_QUEUE_PORT) >/dev/null; \
	  echo "make: Azure Functions Core Tools not found; starting the binary's local mode on http://localhost:7071"; \
	  exec ./$(BIN) local --settings local.settings.json; \
	fi

.PHONY: demo
demo: deps local.settings.json ## see it run without Azure: local mode against built-in fakes of Entra ID, Graph and Key Vault, with sample tenants
	CGO_ENABLED=0 $(GO) build -trimpath -tags demo -o bin/handler-demo ./handler
	scripts/azurite.sh start --port $(AZURITE_PORT) --queue-port $(AZURITE_QUEUE_PORT) >/dev/null
	@echo "make: demo on http://localhost:7071; in another terminal: bin/handler-demo tenants --demo --settings local.settings.json (and runs --demo)"
	SWEEP_TASKS=$${SWEEP_TASKS:-access,groups} exec bin/handler-demo local --demo --settings local.settings.json

.PHONY: stop
stop: ## stop the Azurite that `make run` or `make demo` started (the app itself stops with Ctrl-C)
	scripts/azurite.sh stop

.PHONY: test
test: deps ## run the whole suite against a fresh Azurite (set AZURITE_TABLE_ENDPOINT and AZURITE_QUEUE_ENDPOINT to reuse one)
	@echo "make: building the test binaries (the first time this compiles msgraph-sdk-go, a few silent minutes), then running every package with -race"
	scripts/with-azurite.sh $(GOTEST) -race -count=1 -timeout 30m ./...

.PHONY: bench
bench: deps ## benchmark the sweep at 2,000 and 10,000 tenants, the pipeline on 3 instances, the governor under Graph's app-wide limit and the planner at 100,000, against fakes and Azurite
	scripts/with-azurite.sh $(GOTEST) -run '^$$' -bench '^Benchmark(Sweep|Pipeline|Governor|Planner)$$' -benchtime 1x -timeout 90m ./handler/

.PHONY: lint
lint: deps ## gofmt, go vet, staticcheck (pinned in go.mod) and shellcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	shellcheck scripts/*.sh infra/scripts/*.sh .ci/run

.PHONY: tidy-check
tidy-check: ## fail when go.mod/go.sum are not tidy
	$(GO) mod tidy -diff

.PHONY: clean
clean: ## remove build outputs
	rm -rf bin
