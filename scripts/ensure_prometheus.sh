#!/bin/sh
# Debian's Prometheus server at /usr/bin/prometheus for the remote-write export integration
# test (tests/integration/export).
exec sh "$(dirname "$0")/ensure_debian_package.sh" prometheus /usr/bin/prometheus
