#!/bin/sh
# Make sure Debian's Prometheus Alertmanager is at /usr/bin/prometheus-alertmanager for the
# alerting integration tests (tests/integration/alerts). Idempotent and silent when it is
# already installed; only the distribution package is used. The package's own service is
# not needed by the tests (they start their own Alertmanager on a free port).
set -eu

ALERTMANAGER=/usr/bin/prometheus-alertmanager

if [ -x "$ALERTMANAGER" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_alertmanager: $ALERTMANAGER is missing and apt-get is not available; install it by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "ensure_alertmanager: installing Debian's prometheus-alertmanager package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
if [ ! -x "$ALERTMANAGER" ]; then
    echo "ensure_alertmanager: apt-get finished but $ALERTMANAGER is still missing" >&2
    exit 1
fi
echo "ensure_alertmanager: $("$ALERTMANAGER" --version 2>&1 | head -n 1) installed" >&2
