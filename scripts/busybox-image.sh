#!/usr/bin/env bash
# Make a tiny image `launcher-busybox:latest` from Debian's busybox-static; print its name.
#
# Usage:  IMG=$(scripts/busybox-image.sh)
#
# For benchmarks and fast tests that need "a container" without Python: starts in
# milliseconds, needs no registry. Layout:
#   /bin/busybox + one symlink per applet (sh, true, sleep, cat, echo, id, ...),
#   /usr/bin, /sbin, /usr/sbin -> bin; /tmp (1777); /outputs owned by 10001:10001
#   (an anonymous volume there takes that owner, as in the training image);
#   /etc/passwd and /etc/group know root and trainer (10001).
# Default CMD ["/bin/sh"], default user root (pass user=10001 to mimic the real image).
# The name is the only thing written to stdout; progress goes to stderr. Idempotent.
set -euo pipefail

NAME="launcher-busybox:latest"
UID_TRAINER=10001

say() { echo "busybox-image: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/ensure-docker.sh first"

if docker image inspect "$NAME" >/dev/null 2>&1; then
    echo "$NAME"; exit 0
fi

# The static build is required: the image has no libc. (Package `busybox` is dynamic.)
if [[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" != *"ok installed"* ]]; then
    [[ "$(id -u)" -eq 0 ]] || die "busybox-static is not installed and installing it needs root"
    say "installing busybox-static"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2
fi
BUSYBOX="$(dpkg -L busybox-static | grep -E '/busybox$' | head -n 1)"
[[ -x "$BUSYBOX" ]] || die "busybox-static is installed but its binary was not found"

ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/launcher-busybox-rootfs.XXXXXX")"
trap 'rm -rf --one-file-system "$ROOTFS"' EXIT

mkdir -p "$ROOTFS"/{bin,usr,etc,dev,proc,sys,tmp,outputs,root,home/trainer}
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
chmod 0755 "$ROOTFS/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [[ "$applet" == busybox || -e "$ROOTFS/bin/$applet" ]] || ln -s busybox "$ROOTFS/bin/$applet"
done
ln -s bin "$ROOTFS/sbin"
ln -s ../bin "$ROOTFS/usr/bin"
ln -s ../bin "$ROOTFS/usr/sbin"
cat > "$ROOTFS/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
trainer:x:${UID_TRAINER}:${UID_TRAINER}:trainer:/home/trainer:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$ROOTFS/etc/group" <<EOF
root:x:0:
trainer:x:${UID_TRAINER}:
nogroup:x:65534:
EOF
chmod 1777 "$ROOTFS/tmp"
chmod 0700 "$ROOTFS/root"
chown "$UID_TRAINER:$UID_TRAINER" "$ROOTFS/outputs" "$ROOTFS/home/trainer"

say "importing $NAME"
# Fixed owners, order and times keep the layer identical from one build to the next.
ID="$(tar --numeric-owner --sort=name --mtime='@0' -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/bin' \
        --change 'CMD ["/bin/sh"]' \
        --message "busybox-static rootfs for launcher tests" - )"

if ! docker run --rm --network none --user "$UID_TRAINER" "$ID" sh -c 'true && id -u && echo ok' >/dev/null; then
    docker image rm "$ID" >/dev/null 2>&1 || true
    die "the imported image cannot run /bin/sh (is $BUSYBOX really static?)"
fi
docker tag "$ID" "$NAME"
echo "$NAME"
