#!/bin/sh
# Make sure Debian's Prometheus server is at /usr/bin/prometheus for the remote-write export
# integration tests (tests/integration/export). Idempotent and silent when it is already
# installed; only the distribution package is used. The package's own service is not needed
# (the tests start their own Prometheus on a free port with a temporary storage directory);
# if apt starts it, it is left alone.
set -eu

PROMETHEUS=/usr/bin/prometheus

if [ -x "$PROMETHEUS" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_prometheus: $PROMETHEUS is missing and apt-get is not available; install it by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "ensure_prometheus: installing Debian's prometheus package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if [ ! -x "$PROMETHEUS" ]; then
    echo "ensure_prometheus: apt-get finished but $PROMETHEUS is still missing" >&2
    exit 1
fi
echo "ensure_prometheus: $("$PROMETHEUS" --version 2>&1 | head -n 1) installed" >&2
