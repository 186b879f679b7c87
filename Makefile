# make check is the one gate: what .ci/run runs, with PostgreSQL and NATS up.
GO ?= go
LINT = $(GO) tool -modfile=tools/go.mod golangci-lint

.PHONY: check fmt vet lint test tidy build fuzz storm bench cluster-test cluster-bench cluster

check: fmt vet lint tidy test

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint:
	$(LINT) run ./...

tidy:
	$(GO) mod tidy -diff
	cd tools && $(GO) mod tidy -diff

# The end-to-end tests run after the rest: with JACKALOPE_TEST_NATS_URL set
# they purge and reuse the shared server's streams, which the bus tests use.
E2E = ./cmd/internal/e2e
test:
	$(GO) test -race -timeout 20m $(GOTESTFLAGS) $$($(GO) list ./... | grep -v /cmd/internal/e2e)
	$(GO) test -race -timeout 15m $(GOTESTFLAGS) $(E2E)

# cluster-test runs TestCluster alone: the split services on a 3-node
# JetStream cluster, a node killed and the nodes rolled under load. It needs
# nothing but Go; `make test` runs it too when JACKALOPE_TEST_CLUSTER=1 (CI).
cluster-test:
	JACKALOPE_TEST_CLUSTER=1 $(GO) test -race -count=1 -timeout 15m -run '^TestCluster$$' -v $(E2E)

# cluster runs that deployment on this machine for trying it by hand
# (deploy/cluster/run.sh; Ctrl-C stops it).
cluster:
	./deploy/cluster/run.sh

# cluster-bench measures the same deployment for docs/capacity.md: the
# drain rate with 1, 2 and 4 dispatchers and the CPU per event of each part.
cluster-bench:
	JACKALOPE_MEASURE_CLUSTER=1 $(GO) test -count=1 -timeout 60m -run '^TestDispatcherScaling$$' -v $(E2E)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

# fuzz runs the decode+render fuzz target; FUZZTIME=5m for the long run.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeRender -fuzztime $(FUZZTIME) ./internal/render

# storm is issue 11's load run (cmd/internal/e2e/stormload_test.go): 10,000
# check-ins in 10 s into one paced channel beside ten quiet ones, through a
# split fleet, without the race detector. ROUNDS=3 repeats it.
ROUNDS ?= 1
storm:
	JACKALOPE_LOAD_STORM=1 $(GO) test -count=$(ROUNDS) -timeout 30m -run '^TestStormLoad$$' -v $(E2E) | grep -E 'stormload_test|^(---|ok|FAIL)'

# bench runs the comparisons of docs/benchmarks.md (target beside its
# ceiling, three rounds) and writes their table to bench-results.md in
# 6–10 minutes, BENCH_QUICK=1 for a 3-minute pass. See tools/bench/bench.sh.
bench:
	tools/bench/bench.sh
