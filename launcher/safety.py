"""No way out of the container: refuse sweeps whose trials could reach the engine or the
host's root, before anything starts.

A trial is contained by its hardening (no capabilities, no privilege, read-only root,
no network). A bind mount is the one door the sweep file can open, so:

- a bind source must not be an engine's socket (any path that resolves to it, on any
  host of this machine), a folder that contains one, ``/``, or a system path
  (/proc, /sys, /dev, /run, /boot, /etc, /root, the engines' data), nor any socket;
- binds are for hosts on this machine (the path is checked here; on a remote host it
  cannot be);
- a trial that runs as root (user 0), or in group 0 or the docker group, gets no bind.

Each rule can be lifted by a loudly named opt-in under ``unsafe:`` in the sweep file,
which the launcher repeats as a warning every time the sweep is loaded.
"""

from __future__ import annotations

import contextlib
import grp
import os
import stat
from collections.abc import Iterable

from launcher.errors import SweepError
from launcher.schema import Reader
from launcher.sections import HostSpec, Mount

UNSAFE_KEYS = ("system_binds", "remote_binds", "root_with_binds")
UNSAFE_WARNINGS = {
    "system_binds": "unsafe.system_binds: trials may bind the engine's socket or system "
                    "paths, which can give them the engine and the host's root",
    "remote_binds": "unsafe.remote_binds: bind paths on remote hosts are not checked",
    "root_with_binds": "unsafe.root_with_binds: trials may run as root or in the docker "
                       "group with bind mounts",
}
ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                  "/run/docker/containerd/containerd.sock")
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/etc", "/root",
                "/var/lib/docker", "/var/lib/containerd", "/var/lib/launcher-h2",
                "/var/lib/launcher-h3")


def engine_sockets(host_urls: Iterable[str], environ: dict[str, str] | None = None) -> set[str]:
    """The engine sockets of this machine that a sweep might name: the default ones,
    DOCKER_HOST's, and every ``unix://`` host; each as the real path it resolves to."""
    environ = dict(os.environ) if environ is None else environ
    paths = list(ENGINE_SOCKETS)
    docker_host = environ.get("DOCKER_HOST", "")
    for url in [docker_host, *host_urls]:
        if url.startswith("unix://"):
            paths.append(url[len("unix://"):])
    return {os.path.realpath(p) for p in paths}


def bind_problem(source: str, sockets: set[str]) -> str | None:
    """Why ``source`` (an absolute path) must not be bound into a trial; None if it may."""
    real = os.path.realpath(source)
    shown = source if real == source else f"{source} (which resolves to {real})"
    if real == "/":
        return f"bind source {shown} is the host's root"
    for sock in sorted(sockets):
        if real == sock:
            return f"bind source {shown} is the Docker engine's socket"
        if _inside(sock, real):
            return f"bind source {shown} contains the Docker engine's socket {sock}"
    for tree in sorted({os.path.realpath(t) for t in SYSTEM_TREES}):
        if _inside(real, tree) or real == tree:
            return f"bind source {shown} is the system path {tree}" + (
                "" if real == tree else " or inside it")
        if _inside(tree, real):
            return f"bind source {shown} contains the system path {tree}"
    try:
        if stat.S_ISSOCK(os.stat(real).st_mode):
            return f"bind source {shown} is a socket"
    except OSError:
        pass  # a missing path is the engine's to refuse
    return None


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip("/") + "/")


def privileged_user(user: str | None, sockets: set[str] | None = None) -> str | None:
    """Why ``user`` (``uid[:gid]`` or names) counts as root for binds; None if it does not."""
    if not user:
        return None
    uid, _, gid = user.partition(":")
    if uid.strip() in ("0", "root"):
        return f"user {user!r} is root"
    if gid and gid.strip() in _privileged_groups(sockets or set()):
        return f"user {user!r} is in group {gid} (root or the docker group)"
    return None


def _privileged_groups(sockets: set[str]) -> set[str]:
    groups = {"0", "root", "docker"}
    with contextlib.suppress(KeyError):
        groups.add(str(grp.getgrnam("docker").gr_gid))
    for sock in sockets:
        try:
            groups.add(str(os.stat(sock).st_gid))
        except OSError:
            continue
    return groups


def check_effective_user(user: str | None, has_binds: bool, unsafe: frozenset[str],
                         path: str | None) -> None:
    """The user a trial really runs as (the image may decide it): root or the docker
    group with a bind mount is refused before any container starts."""
    if not has_binds or "root_with_binds" in unsafe:
        return
    problem = privileged_user(user, engine_sockets(()))
    if problem:
        raise SweepError(f"{problem} (the image's USER) and the sweep binds host paths",
                         path=path, hint="set `user:` to an unprivileged uid, or drop the "
                         "bind; `unsafe: {root_with_binds: true}` allows it")


def is_local(url: str) -> bool:
    """True for hosts on this machine (a bind path there is this machine's path)."""
    if url in ("local", "context:default"):
        return os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")
    return url.startswith("unix://")


def check_sweep(reader: Reader, *, mounts: tuple[Mount, ...], hosts: tuple[HostSpec, ...],
                user: str | None, backend: str, unsafe: frozenset[str]) -> None:
    """Refuse (file:line, exit 2) a sweep whose trials could reach the engine or the
    host's root, unless its ``unsafe`` section opts in."""
    binds = [(i, m) for i, m in enumerate(mounts) if m.kind == "bind"]
    if not binds:
        return
    remote = [h for h in hosts if not is_local(h.url)]
    if remote and backend == "docker" and "remote_binds" not in unsafe:
        i, _ = binds[0]
        raise reader.error(("mounts", i, "bind"), f"binds are for hosts on this machine; "
                           f"host {remote[0].name} ({remote[0].url}) is not, and the path "
                           "cannot be checked there", hint="use a named volume, or "
                           "`unsafe: {remote_binds: true}`")
    sockets = engine_sockets(h.url for h in hosts)
    if "system_binds" not in unsafe:
        for i, mount in binds:
            problem = bind_problem(mount.source, sockets)
            if problem:
                raise reader.error(("mounts", i, "bind"), problem, hint="bind a data folder "
                                   "of your own; `unsafe: {system_binds: true}` allows it")
    problem = privileged_user(user, sockets)
    if problem and "root_with_binds" not in unsafe:
        raise reader.error(("user",), f"{problem} and the sweep binds host paths",
                           hint="use an unprivileged user, or drop the bind; "
                           "`unsafe: {root_with_binds: true}` allows it")


def parse_unsafe(reader: Reader, raw: object) -> frozenset[str]:
    """The ``unsafe`` section: opt-ins by name, each true or false."""
    if raw is None:
        return frozenset()
    section = reader.mapping(raw, ("unsafe",))
    reader.check_keys(section, ("unsafe",), UNSAFE_KEYS)
    return frozenset(k for k, v in section.items() if reader.boolean(v, ("unsafe", k)))
