#!/bin/sh
# Debian's Prometheus Alertmanager at /usr/bin/prometheus-alertmanager for the alerting
# integration test (tests/integration/daemon/test_alertmanager.py).
exec sh "$(dirname "$0")/ensure_debian_package.sh" prometheus-alertmanager /usr/bin/prometheus-alertmanager
