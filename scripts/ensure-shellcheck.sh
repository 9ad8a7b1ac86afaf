#!/usr/bin/env bash
# ShellCheck from Debian's packages, for `make lint`. Idempotent: installs nothing when
# it is present.
set -euo pipefail
if command -v shellcheck >/dev/null; then
    exit 0
fi
echo "installing Debian's shellcheck (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq shellcheck >/dev/null
