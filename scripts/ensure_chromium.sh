#!/bin/sh
# Debian's headless-capable Chromium at /usr/bin/chromium for the browser tests (tests/browser).
# Playwright's own browser download is never used: only the distribution package.
exec sh "$(dirname "$0")/ensure_debian_package.sh" chromium /usr/bin/chromium
