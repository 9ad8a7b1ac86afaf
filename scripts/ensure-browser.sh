#!/usr/bin/env bash
# Headless Chromium and ChromeDriver from Debian's packages, for the report test.
# Idempotent: installs nothing when both are present.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
echo "installing Debian's chromium and chromium-driver (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium chromium-driver >/dev/null
