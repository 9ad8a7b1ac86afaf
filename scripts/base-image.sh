#!/usr/bin/env bash
# Make sure a Python 3.11 base image exists; print its name (see launcher/data/base-image.sh,
# which `launch base-image` also runs).
exec "$(dirname "$0")/../launcher/data/base-image.sh" "$@"
