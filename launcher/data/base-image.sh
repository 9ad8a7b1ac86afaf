#!/usr/bin/env bash
# Make sure a Python 3.11 base image for the Dockerfile exists; print its name.
#
# Usage:  BASE=$(launch base-image)     (or scripts/base-image.sh in the repository)
#         docker build --build-arg BASE_IMAGE="$BASE" ...
#
# The name is the only thing written to stdout (one line); progress goes to stderr.
# Order of preference (idempotent, fast once an image is there):
#   1. python:3.11-slim present locally              -> print it
#   2. `docker pull python:3.11-slim` works (20 s)   -> print it
#   3. launcher-base:python3.11-bookworm present     -> print it
#   4. build launcher-base:python3.11-bookworm from Debian packages with debootstrap
#      (minbase + python3, python3-venv, python3-pip, ca-certificates; ~1 min, ~300 MB),
#      using the Debian mirror apt is already configured with, then print it.
# The local image has `python3` (not `python`) and Debian's PEP 668 marker, so the
# Dockerfile installs its dependencies into a venv; `useradd` comes from `passwd`,
# which is Priority: required and therefore part of minbase.
#
# Environment:
#   DEBIAN_MIRROR        override the mirror read from apt's configuration
#   BASE_IMAGE_NO_PULL   set to 1 to skip the `docker pull` attempt
set -euo pipefail

OFFICIAL="python:3.11-slim"
LOCAL="launcher-base:python3.11-bookworm"
SUITE="bookworm"
INCLUDE="python3,python3-venv,python3-pip,ca-certificates,passwd"
LOCK="${TMPDIR:-/tmp}/launcher-base-image.lock"

say() { echo "base-image: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/ensure-docker.sh first"

if have_image "$OFFICIAL"; then
    echo "$OFFICIAL"; exit 0
fi
if [[ "${BASE_IMAGE_NO_PULL:-0}" != 1 ]]; then
    say "trying: docker pull $OFFICIAL (20 s at most)"
    if timeout 20 docker pull -q "$OFFICIAL" >/dev/null 2>&1 && have_image "$OFFICIAL"; then
        echo "$OFFICIAL"; exit 0
    fi
    say "no registry reachable; using a locally made Debian $SUITE image instead"
fi
if have_image "$LOCAL"; then
    echo "$LOCAL"; exit 0
fi

# ---------------------------------------------------------------- build it
# Print "URI SUITE" for every enabled `deb` source apt knows (deb822 and one-line style).
apt_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        awk '
            function flush(   i, j, nu, ns, nt, u, s, t, isdeb) {
                if (uris != "" && tolower(enabled) != "no") {
                    nt = split(types, t, /[ \t]+/); isdeb = 0
                    for (i = 1; i <= nt; i++) if (t[i] == "deb") isdeb = 1
                    nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
                    if (isdeb) for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                        if (u[i] != "" && s[j] != "") print u[i], s[j]
                }
                types = uris = suites = enabled = ""; last = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/   { if (last == "uris") uris = uris " " $0
                         else if (last == "suites") suites = suites " " $0
                         else if (last == "types") types = types " " $0
                         next }
            {
                key = tolower($0); sub(/:.*/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                last = key
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = val
            }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        awk '
            /^[ \t]*deb[ \t]/ {
                line = $0; sub(/#.*/, "", line); gsub(/\[[^]]*\]/, "", line)
                n = split(line, w, /[ \t]+/); k = 0
                for (i = 1; i <= n; i++) if (w[i] != "") v[++k] = w[i]
                if (k >= 3) print v[2], v[3]
            }
        ' "$f"
    done
}

# Pick the main Debian archive: not the security archive, suite "bookworm" preferred,
# else the host's own codename or a plain alias (stable, ...), never a third-party repo.
debian_mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "${DEBIAN_MIRROR%/}"; return; fi
    local codename=""
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")" || true
    apt_sources | awk -v want="$SUITE" -v host="$codename" '
        $1 !~ /^(https?|ftp|file):/ { next }
        $1 ~ /security/ || $2 ~ /security/ { next }
        $2 == want && first == "" { first = $1 }
        ($2 == host || $2 ~ /^(stable|testing|unstable|sid)$/) && second == "" { second = $1 }
        END { if (first != "") print first; else if (second != "") print second }
    ' | sed 's:/*$::'
}

[[ "$(id -u)" -eq 0 ]] || die "building $LOCAL needs root (debootstrap); run as root"

exec 9>"$LOCK"
flock -w 900 9 || die "timed out waiting for another base-image build (lock $LOCK)"
if have_image "$LOCAL"; then   # built by a concurrent run while we waited
    echo "$LOCAL"; exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

MIRROR="$(debian_mirror)"
[[ -n "$MIRROR" ]] || die "found no Debian archive in /etc/apt/sources.list{,.d}; set DEBIAN_MIRROR"

ROOTFS="$(mktemp -d "${TMPDIR:-/var/tmp}/launcher-base-rootfs.XXXXXX")"
# debootstrap mounts proc/sys (maybe dev) inside the target; never rm -rf through a mount.
unmount_all() {
    local m
    awk -v r="${ROOTFS:?}/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
cleanup() { unmount_all; rm -rf --one-file-system "${ROOTFS:?}"; }
trap cleanup EXIT

say "debootstrap --variant=minbase $SUITE from $MIRROR (about a minute)"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >&2; then
    tail -n 20 "$ROOTFS/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed (mirror $MIRROR)"
fi

unmount_all
# Slim down and drop host-specific files (Docker provides hostname/hosts/resolv.conf).
rm -rf --one-file-system "${ROOTFS:?}"/var/cache/apt/archives/*.deb "${ROOTFS:?}"/var/lib/apt/lists/* \
       "${ROOTFS:?}"/var/log/* "${ROOTFS:?}"/dev "${ROOTFS:?}"/proc "${ROOTFS:?}"/sys "${ROOTFS:?}"/run/* \
       "${ROOTFS:?}"/etc/resolv.conf "${ROOTFS:?}"/etc/hostname "${ROOTFS:?}"/debootstrap
mkdir -p "$ROOTFS"/dev "$ROOTFS"/proc "$ROOTFS"/sys
: > "$ROOTFS"/etc/hostname

say "importing the root filesystem into Docker"
ID="$(tar --numeric-owner -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --message "debootstrap --variant=minbase --include=$INCLUDE $SUITE" - )"

# Check before naming it, so a broken image never satisfies the idempotency check.
if ! docker run --rm --network none "$ID" sh -c \
        'python3 -c "import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 11)" && command -v useradd' >/dev/null; then
    docker image rm "$ID" >/dev/null 2>&1 || true
    die "the imported image fails its check (python3 3.11 with venv/ensurepip, useradd)"
fi
docker tag "$ID" "$LOCAL"
say "built $LOCAL in $((SECONDS - start)) s"
echo "$LOCAL"
