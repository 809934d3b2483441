#!/usr/bin/env bash
# The C libraries the build links: OpenSSL (TLS for Kafka, PostgreSQL and MySQL) and Cyrus SASL
# (Kafka's SASL), from Debian's packages; and for the fault tests libfaketime (clock jumps) and
# iproute2 (network namespaces), and for the web UI's test Debian's headless-capable Chromium.
# A fresh machine has none of them; idempotent.
set -euo pipefail

missing=()
for pkg in libssl-dev libsasl2-dev pkg-config faketime iproute2 chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
