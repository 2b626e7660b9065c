# secwire: `make qemu` builds everything and boots the appliance; `make test` runs every test.
GO       ?= go
BOARD    ?= qemu
BOOT     ?= uefi
ifeq ($(origin VERSION),undefined)
VERSION  := $(shell sh image/version.sh)
endif
# The release signing key (ed25519, PEM); empty: a development key that
# make generates under build/keys. TRUSTED_KEYS: more public keys the
# image accepts bundles from (comma-separated PEM files).
SIGNING_KEY  ?=
TRUSTED_KEYS ?=
LDFLAGS  := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2
TOOLS    := $(CURDIR)/build/tools
BIN      := build/bin/secwire
LINUXBIN := build/bin/linux-amd64/secwire
GOFILES  := $(shell find . -name '*.go' -not -path './build/*' -not -path './.cache/*') go.mod go.sum

.PHONY: all build image release qemu test testkernel deps lint bench bench-codec bench-forward bench-boot fuzz soak clean

all: build

build: $(BIN)

$(BIN): $(GOFILES)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/secwire

# The appliance runs the same code, built static for linux/amd64.
$(LINUXBIN): $(GOFILES)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/secwire

image: build/$(BOARD)/disk.img

# disk.img carries the release bundle secwire.bundle in boot slot A.
build/$(BOARD)/disk.img: $(LINUXBIN) board/$(BOARD).json image/kernel.json $(GOFILES) $(SIGNING_KEY)
	@command -v dpkg-deb >/dev/null && command -v depmod >/dev/null || $(MAKE) deps
	$(GO) run ./image/cmd/mkimage -board $(BOARD) -secwire $(LINUXBIN) -version '$(VERSION)' \
		$(if $(SIGNING_KEY),-signing-key '$(SIGNING_KEY)') $(if $(TRUSTED_KEYS),-trusted-keys '$(TRUSTED_KEYS)')

# make release: the signed bundle for `request system software add`
# (format: docs/bundle.md), built with the image.
release: image
	@echo "release bundle: build/$(BOARD)/secwire.bundle (secwire $(VERSION), board $(BOARD))"

# make qemu [VM=a|b] [FRESH=1] [BOOT=uefi|kernel] [PLAIN_NETDEV=...] [LINE_NETDEV=...] [MGMT_NETDEV=...] [CONFIG=file] [NIC=e1000e]
# Each VM keeps its own disk in build/$(BOARD)/vm-$(VM); a rebuild rewrites
# only its boot partition (the config survives), FRESH=1 starts blank.
VM       ?= a
qemu: deps image
	$(GO) run ./qemu/cmd/secwire-qemu -dir build/$(BOARD) -vm $(VM) $(if $(filter 1 yes true,$(FRESH)),-fresh) -boot $(BOOT) \
		$(if $(PLAIN_NETDEV),-plain '$(PLAIN_NETDEV)') $(if $(LINE_NETDEV),-line '$(LINE_NETDEV)') $(if $(MGMT_NETDEV),-mgmt '$(MGMT_NETDEV)') \
		$(if $(NIC),-nic $(NIC)) $(if $(CONFIG),-config '$(CONFIG)')

deps:
	@sh .ci/deps

# make test runs four groups side by side, as most of the time goes to
# waiting (outages, QEMU guests): the daemon tests' VM cases, their host
# cases, the appliance VM tests (qemu/), and every other package. The packages of RACE_PKGS run under the
# race detector (the datapath and VM packages are too slow for it on 2 cores).
DAEMON_GUEST_TESTS := ^(TestKernelDatapath|TestXPNDerivationAgainstIPMACsec)
RACE_PKGS := ./firmware/mka ./firmware/config ./firmware/commit ./firmware/store ./firmware/health \
	./firmware/watchdog ./firmware/logring ./mgmt/... ./image ./drivers ./offload/afpacket
test: deps lint image testkernel
	@all=$$($(GO) list ./... | grep -v -e '/cmd/secwire$$' -e '/qemu$$'); race=$$($(GO) list $(RACE_PKGS)); \
	rest=$$(printf '%s\n' $$all | grep -v -x -F "$$race"); \
	( r=0; $(GO) test -count=1 -timeout 45m -race $$race || r=1; $(GO) test -count=1 -timeout 45m $$rest || r=1; exit $$r ) & others=$$!; \
	$(GO) test -count=1 -timeout 45m -run '$(DAEMON_GUEST_TESTS)' ./cmd/secwire & guest=$$!; \
	$(GO) test -count=1 -timeout 45m -skip '$(DAEMON_GUEST_TESTS)' ./cmd/secwire & host=$$!; \
	$(GO) test -count=1 -timeout 45m ./qemu & vms=$$!; \
	rc=0; wait $$others || rc=1; wait $$guest || rc=1; wait $$host || rc=1; wait $$vms || rc=1; \
	if [ $$rc = 0 ]; then echo "make test: all passed"; else echo "make test: FAILED (see above)"; fi; exit $$rc

# The netdevsim test kernel for the hardware-offload tests: built once from
# Debian's linux-source (about 5 minutes on 2 cores), then cached in .cache/.
testkernel: deps
	@sh image/testkernel/build.sh >/dev/null

lint: $(TOOLS)/staticcheck
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './build/*' -not -path './.cache/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bench: bench-codec bench-forward bench-boot

# Codec throughput beside bare AES-GCM Seal/Open of the same bytes.
bench-codec:
	@mkdir -p build
	$(GO) test -run '^$$' -bench 'Benchmark(Protect|Seal|Validate|Open)/' -benchtime 1s ./offload/macsec/ | tee build/bench-codec.txt
	@sh .ci/benchratio build/bench-codec.txt

# Frames per second through two software datapaths beside two Linux
# bridges (plain kernel forwarding) on the same machine; needs root.
bench-forward:
	@mkdir -p build
	$(GO) test -run '^$$' -bench BenchmarkForward -benchtime 1x -timeout 10m ./offload/software/ | tee build/bench-forward.txt

# Time from QEMU start to the management prompt, median of 5 boots.
bench-boot: image
	$(GO) test -run '^$$' -bench BenchmarkBoot -benchtime 5x -timeout 20m ./qemu/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzValidate -fuzztime 10m ./offload/macsec/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 10m ./firmware/mka/
	$(GO) test -run '^$$' -fuzz FuzzKaY -fuzztime 10m ./firmware/mka/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 10m -parallel 1 ./firmware/config/
	$(GO) test -run '^$$' -fuzz FuzzCLILine -fuzztime 10m -parallel 1 ./mgmt/cli/
	$(GO) test -run '^$$' -fuzz FuzzSessionRequests -fuzztime 10m -parallel 1 ./mgmt/sshd/
	$(GO) test -run '^$$' -fuzz FuzzPcapDecrypt -fuzztime 10m -parallel 1 ./cmd/secwire/

# The soak of issue 14 (not in make test; needs root): two daemons on the
# software datapath in network namespaces, traffic both ways, a rekey every
# 30 s, a line flap every 2 minutes, a SIGKILL every 10 minutes, tshark on
# the line. Prints losses outside the fault windows, leaked frames and
# RSS/goroutines over time (also in build/soak.txt).
DURATION ?= 30m
soak: deps
	@mkdir -p build
	@{ $(GO) test -tags soak -count=1 -run '^TestSoak$$' -timeout 24h -v ./cmd/secwire/ -args -soak.duration=$(DURATION); \
		echo $$? > build/soak.rc; } | tee build/soak.txt; exit $$(cat build/soak.rc)

clean:
	rm -rf build
