# Marg — build, run and test.
#
#   make run    build the server in release and serve examples/hello.js on :3000
#   make test   everything CI checks: fmt, clippy -D warnings, the whole test
#               suite, `marg-gen check` on every kernel variant, a short
#               differential fuzz run
#
# Both install the system packages they need on a fresh Debian machine.

SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 3000
FUZZ_SECONDS ?= 30

# System packages: JavaScriptCore for the JS bridge, llvm-19 for `marg-gen mca`,
# curl/wrk/h2load/nginx for the end-to-end tests and the benchmarks.
APT_PACKAGES := libjavascriptcoregtk-4.0-dev pkg-config llvm-19 curl wrk nghttp2-client nginx-light valgrind

.PHONY: all deps build run test fmt-check clippy unit check-kernels fuzz bench bench-kernels clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt

build: deps
	$(CARGO) build --release -p marg

run: build
	./target/release/marg serve examples/hello.js --port $(PORT)

test: deps fmt-check clippy unit check-kernels fuzz

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked
	MARG_KERNELS=baseline $(CARGO) test --locked -p kernels -p verify
	MARG_IO=epoll $(CARGO) test --locked -p marg-tests

check-kernels:
	$(CARGO) run --locked -q -p marg-gen-cli -- check

fuzz:
	$(CARGO) run --locked -q -p verify --bin marg-verify -- fuzz all --seconds $(FUZZ_SECONDS)

bench-kernels:
	$(CARGO) bench -p kernels --bench http1
	$(CARGO) bench -p kernels --bench aead

bench: deps
	bash bench/run.sh

clean:
	$(CARGO) clean
