# Thin wrapper over CMake presets (CMakePresets.json is the source of truth).
#   make            release build: build/release/ternd and build/release/tern (linked as build/ternd, build/tern)
#   make run        install deps, build, start ternd in the foreground with data in ./data
#   make test       install deps, build, run every test layer, the threaded ones under TSan, then
#                   all of it again under ASan+UBSan
#   make bench-store  storage engine benchmark (see bench/README.md)
#   make bench-amqp   AMQP load generator against ternd and Debian's rabbitmq-server, one run
#   make bench-kafka  Kafka load generator against ternd, with NATS JetStream and Redis streams
#                     and the disk and loopback ceilings measured in the same run
#   make test-vs-rabbitmq  the AMQP integration suite against Debian's rabbitmq-server (not in CI)
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS each (clang-14)
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
# fuzz_segment writes a log directory per input: keep it in RAM
FUZZ_TMPDIR ?= /dev/shm
ifeq ($(CI),true)
export TERN_WERROR := ON
endif
RUN_ARGS ?=

.PHONY: all deps release debug asan tsan run test test-release test-tsan test-asan bench-store \
	bench-amqp test-vs-rabbitmq rabbitmq-deps bench-kafka kafka-bench-deps fuzz clean

all: release

deps:
	@scripts/deps.sh

release: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@ln -sf release/ternd build/ternd
	@ln -sf release/tern build/tern

debug: deps
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)

tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan -j $(JOBS)

run: release
	@mkdir -p data
	exec build/release/ternd --data-dir ./data $(RUN_ARGS)

test-release: release
	cd build/release && ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer over the tests that run the loop and the fsync pool together.
test-tsan: tsan
	cd build/tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) -R '^(unit|component)/'

test-asan: asan
	cd build/asan && ctest --output-on-failure -j $(JOBS)

# Every layer runs; the last line printed is ctest's summary of the ASan+UBSan run.
test: test-release test-tsan test-asan

bench-store: release
	build/release/bench/bench_store $(BENCH_ARGS)

# Debian's rabbitmq-server (3.10) for the differential suite and the AMQP benchmark; its own
# service is stopped: the tests and the benchmark start private instances on ephemeral ports.
rabbitmq-deps: deps
	@dpkg-query -W -f='$${Status}' rabbitmq-server python3-matplotlib 2>/dev/null | grep -q 'install ok installed.*install ok installed' || { \
	  SUDO=$$( [ "$$(id -u)" -ne 0 ] && echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server python3-matplotlib >&2; \
	  $$SUDO service rabbitmq-server stop >/dev/null 2>&1 || true; }

test-vs-rabbitmq: rabbitmq-deps
	TERN_AMQP_TARGET=rabbitmq /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration/amqp

bench-amqp: release rabbitmq-deps
	/usr/bin/python3 bench/amqp_bench.py $(BENCH_ARGS)

# The Kafka benchmark's peers and clients, benchmark-only (not in scripts/deps.sh): Debian's
# nats-server and redis-server, and the C clients its load generators link (librdkafka, libnats,
# hiredis). The servers' own services are stopped: the benchmark starts private instances.
KAFKA_BENCH_PKGS := nats-server redis-server librdkafka-dev libnats-dev libhiredis-dev \
	python3-matplotlib
kafka-bench-deps: deps
	@missing=$$(for p in $(KAFKA_BENCH_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" -ne 0 ] && echo sudo ); \
	  echo "kafka-bench-deps: installing" $$missing >&2; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >&2 && \
	  { $$SUDO service redis-server stop >/dev/null 2>&1; $$SUDO service nats-server stop >/dev/null 2>&1; true; }; \
	fi

# The generators are configured only when their libraries are installed: build after the deps.
bench-kafka: kafka-bench-deps
	@$(MAKE) --no-print-directory release
	/usr/bin/python3 bench/kafka_bench.py $(BENCH_ARGS)

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)
	@ls build/fuzz/tests/fuzz_* >/dev/null 2>&1 || { echo "fuzz: no targets built" >&2; exit 1; }
	@for t in build/fuzz/tests/fuzz_*; do \
	  name=$$(basename $$t); mkdir -p build/fuzz/corpus/$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	  TMPDIR=$(FUZZ_TMPDIR) $$t -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus/$$name tests/fuzz/corpus/$${name#fuzz_} || exit 1; \
	done

clean:
	rm -rf build
