# The README's test command is `make test`; .ci/run calls it on a clean machine.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REV     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.revision=$(REV)

FUZZTIME ?= 10s

.PHONY: all build test tools lint demo fuzz bench api-doc quick

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o activepieces_exporter ./cmd/activepieces_exporter

# promtool and prometheus (deploy tests run a real one) come from Debian's prometheus package,
# amtool (the Alertmanager config and templates) from prometheus-alertmanager, and the headless
# browser the status page is tested in from chromium.
tools:
	@{ command -v promtool && command -v prometheus && command -v amtool && command -v chromium; } >/dev/null 2>&1 || { \
		echo "installing Debian's prometheus, prometheus-alertmanager and chromium packages"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager chromium >/dev/null; }
	@promtool --version | head -1
	@amtool --version | head -1
	@chromium --version | head -1

STATICCHECK := $(CURDIR)/.tools/bin/staticcheck
STATICCHECK_VERSION := v0.8.2

$(STATICCHECK):
	GOBIN=$(CURDIR)/.tools/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

test: tools lint
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run '^TestSoak' ./collector -soak
	$(MAKE) --no-print-directory fuzz

# A short run of each fuzz target on top of its committed seed corpus (apiclient/testdata/fuzz).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRunPage$$' -fuzztime $(FUZZTIME) ./apiclient
	$(GO) test -run '^$$' -fuzz '^FuzzParseRetryAfter$$' -fuzztime $(FUZZTIME) ./apiclient

demo:
	$(GO) run ./cmd/activepieces_exporter --demo

# Benchmarks (each with its baseline in the same run) and the load tests (60 s of runs, a big
# platform's time to ready, 1,000 idle projects, time to ready by platform size); docs/performance.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./collector ./cmd/activepieces_exporter ./internal/gzjoin
	$(GO) test -count=1 -run '^TestLoad$$|^TestBigPlatformTimeToReady$$|^TestThousandIdleProjects$$|^TestTimeToReadyByPlatformSize$$' -v -timeout 40m ./cmd/activepieces_exporter -load
	$(GO) test -count=1 -run '^TestAPICost$$|^TestSoak' -v ./collector -soak
	$(GO) test -count=1 -v -timeout 30m -run '^TestAlertLatency$$/^defaults$$' ./deploy -latency
	ACTIVEPIECES_EXPORTER_TEST_RACE_BINARY=1 $(GO) test -race -count=1 -run '^TestLoad$$' -v -timeout 20m ./cmd/activepieces_exporter -load -load.duration=30s

# The API reference the code cites, copied from the shared material (which may gain sections).
api-doc:
	cp ../shared/activepieces/API.md docs/activepieces-api.md

# The fast loop: no package installs, no race detector, no soak or fuzz (under a minute on 2 cores).
quick:
	$(GO) vet ./...
	$(GO) test -short -count=1 ./...
