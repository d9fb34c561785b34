#!/usr/bin/env bash
# Installs, from Debian 12 packages, everything tern needs to build, run and test.
# Idempotent: a package already installed is not installed again, and `apt-get update`
# runs only when something is missing. Uses sudo when not root. Safe without a terminal.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  clang-14 libclang-rt-14-dev            # fuzz targets (libFuzzer) and sanitizers
  libuv1-dev                             # event loop, timers, thread pool
  libsqlite3-dev                         # catalog
  zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev  # Kafka batch codecs (store/compress.c)
  libcmocka-dev                          # unit tests
  python3 python3-pytest                 # integration tests (run by /usr/bin/python3)
  procps                                 # pgrep/ps used by tests
  python3-pika amqp-tools                # AMQP clients the integration tests drive
  librabbitmq-dev                        # rabbitmq-c, for the AMQP load generator (bench)
  kcat python3-kafka python3-confluent-kafka  # Kafka clients the tests drive (librdkafka, kafka-python)
  python3-snappy python3-zstandard       # kafka-python's optional snappy and zstd codecs
)

# Node.js and npm run the amqplib and kafkajs tests (tests/js). A machine that already has both
# (from any source) keeps them; otherwise Debian's packages are installed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
