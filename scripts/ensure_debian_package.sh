#!/bin/sh
# usage: ensure_debian_package.sh PACKAGE BINARY
# Make sure Debian's PACKAGE is installed, checked by its BINARY being executable. Idempotent
# and silent when it is already there; only the distribution package is used (apt-get, with
# sudo when not root). A service the package may start is left alone: the tests start their
# own instances on free ports.
set -eu

PACKAGE=$1
BINARY=$2
NAME="ensure $PACKAGE"

if [ -x "$BINARY" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$NAME: $BINARY is missing and apt-get is not available; install $PACKAGE by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "$NAME: installing Debian's $PACKAGE package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null
if [ ! -x "$BINARY" ]; then
    echo "$NAME: apt-get finished but $BINARY is still missing" >&2
    exit 1
fi
echo "$NAME: $("$BINARY" --version 2>&1 | head -n 1) installed" >&2
