# icsnare: the two commands that matter are `make run` and `make test`.
SHELL     := /bin/bash
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/icsnare/icsnare/sensor.Version=$(VERSION)
ARGS      ?=
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
APT_PKGS  := nmap tshark mbpoll snmp snmpd ipmitool python3-pymodbus curl openssl wrk iproute2 clang llvm libbpf-dev bpftool lftp tftp-hpa systemd prometheus podman runc ieee-data arping ethtool zsh groff-base rsyslog rsyslog-gnutls nats-server

.PHONY: build run test test-deps bench fuzz lint generate check-generated deps clean man completions

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# Man pages and shell completions, generated from the command definitions.
man: build
	$(BIN)/icsnare man $(BIN)/man

completions: build
	mkdir -p $(BIN)/completions
	$(BIN)/icsnare completion bash > $(BIN)/completions/icsnare.bash
	$(BIN)/icsnare completion zsh > $(BIN)/completions/_icsnare

# Runs the embedded default profile on every local address at the standard ports
# (ports below 1024 need root; privileges drop to nobody after binding).
# As an ordinary user: make run ARGS="--port-offset 10000 --state $$HOME/.local/state/icsnare"
run: build
	./$(BIN)/icsnare run $(ARGS)

# Unit, protocol and end-to-end tests. Under CI=true a test that lacks a client or root fails.
# Every package runs under the race detector except cmd/, whose tests drive the built binary.
RACE_PKGS = $(shell $(GO) list ./... | grep -v /cmd/)
# Packages with allocation tests (TestXxxNoAllocs): run again without the race detector,
# under which sync.Pool drops items at random and those tests skip.
ALLOC_PKGS = $(shell grep -rl --include='*_test.go' 'NoAllocs(t \*testing.T)' . | xargs -r -n1 dirname | sort -u)
# go test -json through internal/testreport: go test's usual lines, then every skipped test
# and its reason, so a run without some client says which checks it did not make.
test: test-deps
	$(GO) vet ./...
	$(GO) build -o $(BIN)/testreport ./internal/testreport
	set -o pipefail; $(GO) test -json -count=1 -timeout 20m -race $(RACE_PKGS) | $(BIN)/testreport
	set -o pipefail; $(GO) test -json -count=1 -timeout 20m ./cmd/... | $(BIN)/testreport
	set -o pipefail; $(GO) test -json -count=1 -run 'NoAllocs$$' $(ALLOC_PKGS) | $(BIN)/testreport

# Scans /24s as a careful scanner would (nmap -sV with the ICS scripts, SNMP walks, S7 and
# Modbus identity, web pages, timing) and fails on a known honeypot tell: the mixed /24 and
# a sparse /24 of each embedded persona, each in a network namespace of its own, four at a
# time. As root; about four minutes (the mixed /24 alone about two and a half). One
# population: make selfscan SELFSCAN='^m340$$'. `make test` runs it too (two at a time).
selfscan:
	$(GO) test -count=1 -timeout 12m -parallel 4 -run '^TestSelfScan$$/$(SELFSCAN)' -v ./test/selfscan

# Codec benchmarks, the ratio bench (icsnare against bare servers doing the same I/O, bench.json),
# then the load generator against freshly started sensors.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./protocols/... ./sensor/...
	$(GO) test -tags bench -count=1 -run TestEvictionStallAt1MHosts -v ./sensor
	./scripts/bench-ratio.sh
	RATE=20000 OUT=bench-rate.json ./scripts/bench-ratio.sh
	./scripts/bench.sh
	@if [ "$$(id -u)" = 0 ]; then \
		ICSNARE_BENCH_ROUNDS=$${ICSNARE_BENCH_ROUNDS:-9} $(GO) test ./bpf -run '^$$' -bench Veth -benchtime 1x; \
		$(GO) test ./bpf -run '^$$' -bench Program -benchtime 2000000x; \
	else echo "bench: the XDP benchmarks need root; skipped"; fi

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Rebuilds the XDP objects and their Go bindings (needs clang, llvm, libbpf-dev) and the
# OUI table (needs ieee-data).
generate:
	$(GO) generate ./bpf/... ./profiles/...

# Fails when the committed XDP object differs from a fresh build.
check-generated: generate
	git diff --exit-code -- bpf/ratelimit_bpfel.go bpf/ratelimit_bpfel.o bpf/kident_bpfel.go bpf/kident_bpfel.o profiles/oui_table.go

# Quick when every test client is there; as root installs what is missing (make deps),
# otherwise names it and the command that installs it.
test-deps:
	@./scripts/test-deps.sh "$(APT_PKGS)"

# Installs what the tests need (Debian packages, the npm test clients).
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS)
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
	if [ -f test/node/package.json ]; then npm ci --prefix test/node --no-audit --no-fund; fi

clean:
	rm -rf $(BIN)
