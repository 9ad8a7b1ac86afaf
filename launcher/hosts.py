"""Docker hosts: connect (local, unix, tcp+TLS, ssh, docker contexts), check, describe.

A :class:`Host` is one engine with one connection pool sized to its slots. Connecting
costs one round trip (the engine's /info, which also negotiates the API version) and
is bounded by a timeout. Errors while connecting become :class:`HostError` with
advice, raised before any trial starts: an unreachable engine, a TLS certificate that
does not verify, an SSH host key that is not known. With ``skip_unreachable`` such hosts
are left out and reported instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from launcher.engine import API_TIMEOUT, CONNECT_TIMEOUT, MIN_API_VERSION, engine_info, one_pool
from launcher.errors import HostError
from launcher.sections import HostSpec
from launcher.store.manifest import HostRecord

if TYPE_CHECKING:
    import docker

DEFAULT_POOL_SLOTS = 8  # a first pool size while the engine's CPUs are not known yet
CONNECTIONS_PER_SLOT = 2  # a trial's wait and its live log stream (early termination)
POOL_EXTRA = 2  # connections beyond the slots: health pings, teardown, stop calls


@dataclass
class Host:
    """A connected Docker engine and what we learned about it."""

    spec: HostSpec
    client: docker.DockerClient
    slots: int
    info: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False  # this run may have left a container here (teardown must look)
    gpu_groups: tuple[tuple[str, ...], ...] = ()  # the GPU device IDs of each slot
    notes: tuple[str, ...] = ()  # why it has fewer slots than asked, if it has

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> HostRecord:
        """Provenance for the manifest (never secrets)."""
        info = self.info
        return HostRecord(name=self.name, url=self.spec.url, slots=self.slots,
                          cert_path=self.spec.cert_path,
                          engine_version=info.get("ServerVersion"), engine_id=info.get("ID"),
                          engine_name=info.get("Name"), cpus=info.get("NCPU"),
                          memory=info.get("MemTotal"), kernel=info.get("KernelVersion"),
                          os=info.get("OperatingSystem"), arch=info.get("Architecture"),
                          cpu_model=info.get("cpu_model", ""))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a dead connection must not hide the problem
            self.client.close()


def connect_all(specs: tuple[HostSpec, ...], *, cpus_per_trial: float,
                max_parallel: int | None = None, skip_unreachable: bool = False,
                **needs: int) -> tuple[list[Host], list[HostError]]:
    """Connect to every host, at most HOST_WORKERS at once. Returns the connected hosts
    and, with ``skip_unreachable``, the errors of the hosts left out; otherwise the first
    failure is raised (the others closed), as it is when no host answers at all.
    ``needs``: ``gpus_per_trial`` and ``memory_per_trial`` (see :func:`connect`)."""
    from launcher.parallel import each

    outcomes = each(lambda s: connect(s, cpus_per_trial=cpus_per_trial,
                                      max_parallel=max_parallel, **needs), specs)
    hosts = [o for o in outcomes if isinstance(o, Host)]
    errors = [o for o in outcomes if isinstance(o, HostError)]
    unexpected = [o for o in outcomes if isinstance(o, BaseException)
                  and not isinstance(o, HostError)]
    if unexpected or (errors and (not skip_unreachable or not hosts)):
        for host in hosts:
            host.close()
        if unexpected:
            raise unexpected[0]
        first = errors[0]
        if len(errors) > 1:
            more = f"{len(errors) - 1} more host{'s' if len(errors) > 2 else ''} failed too"
            first.hint = f"{first.hint}; {more}" if first.hint else more
        if not skip_unreachable and hosts:
            first.hint = f"{first.hint}; --skip-unreachable runs on the others"
        raise first
    return hosts, errors


def connect(spec: HostSpec, *, cpus_per_trial: float = 1.0,
            max_parallel: int | None = None, gpus_per_trial: int = 0,
            memory_per_trial: int = 0, timeout: float | None = None) -> Host:
    """Open one engine in one round trip (its /info), size its one connection pool to
    its slots (capped by its memory and GPUs, see :mod:`launcher.gpus`): two
    connections per slot, a trial's wait and its live log stream under early
    termination (the pool fills only as far as it is used). ``timeout``
    [CONNECT_TIMEOUT]: how long the engine has to answer."""
    from launcher.gpus import host_capacity

    client = _client(spec, CONNECTIONS_PER_SLOT * (spec.slots or DEFAULT_POOL_SLOTS)
                     + POOL_EXTRA)
    try:
        info = engine_info(client.api, CONNECT_TIMEOUT if timeout is None else timeout)
    except Exception as e:
        client.close()
        raise _host_error(spec, e) from e
    info["cpu_model"] = _local_cpu_model() if _is_this_machine(spec) else ""
    slots = spec.slots or max(1, int(int(info.get("NCPU", 1)) // max(cpus_per_trial, 0.01)))
    if max_parallel:
        slots = min(slots, max_parallel)
    try:
        capacity = host_capacity(spec.name, slots, info, gpus_per_trial=gpus_per_trial,
                                 memory_per_trial=memory_per_trial, gpus=spec.gpus)
    except HostError:
        client.close()
        raise
    slots = capacity.slots
    one_pool(client.api, CONNECTIONS_PER_SLOT * slots + POOL_EXTRA)
    return Host(spec=spec, client=client, slots=slots, info=info,
                gpu_groups=capacity.gpu_groups, notes=capacity.notes)


def _client(spec: HostSpec, pool: int) -> docker.DockerClient:
    import docker

    # The API version is pinned here and negotiated from the first answer's header
    # (engine_info), which saves docker-py's /version round trip per host.
    kwargs: dict[str, Any] = {"timeout": API_TIMEOUT, "max_pool_size": pool,
                              "version": MIN_API_VERSION}
    try:
        if spec.url == "local":
            return _pooled(docker.from_env(**kwargs), pool)
        if spec.url.startswith("context:"):
            return _pooled(_from_context(spec, kwargs), pool)
        if spec.url.startswith("tcp://"):
            kwargs["tls"] = _tls_config(spec)
            if kwargs["tls"]:
                return _pooled(_tls_client(spec.url, kwargs), pool)
        elif spec.url.startswith("ssh://"):
            kwargs["use_ssh_client"] = False  # paramiko: one SSH login, channels per call
        return _pooled(docker.DockerClient(base_url=spec.url, **kwargs), pool)
    except HostError:
        raise
    except Exception as e:
        raise _host_error(spec, e) from e


def _tls_client(url: str, kwargs: dict[str, Any]) -> docker.DockerClient:
    """A TLS client that verifies with cert_path's CA, whatever the environment says.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the CA that docker-py
    sets on its session, so a host's private CA would never be used; the client must
    not take its TLS settings from the environment.
    """
    import docker

    client = docker.DockerClient(base_url=url, **kwargs)
    client.api.trust_env = False
    return client


def _pooled(client: docker.DockerClient, size: int) -> docker.DockerClient:
    """One pool per engine; and no proxy or ~/.netrc lookups from the environment on
    every call (half of docker-py's CPU per request). Engines are reached over unix
    sockets, SSH, TLS (which must ignore the environment anyway) or loopback TCP."""
    client.api.trust_env = False
    one_pool(client.api, size)
    return client


def _from_context(spec: HostSpec, kwargs: dict[str, Any]) -> docker.DockerClient:
    """A client for a `docker context`, read from the CLI's own context store.

    docker-py's ContextAPI only finds contexts when ~/.docker/config.json exists, which
    the CLI does not always write, so the store is read here directly.
    """
    import docker
    from docker.tls import TLSConfig

    name = spec.url.split(":", 1)[1]
    if name == "default":
        return docker.from_env(**kwargs)
    store = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "contexts"
    context_id = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((store / "meta" / context_id / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
    except (OSError, ValueError, KeyError):
        raise HostError(f"no docker context named {name!r}", host=spec.name,
                        hint="see `docker context ls`") from None
    url = str(endpoint.get("Host") or "unix:///var/run/docker.sock")
    tls_dir = store / "tls" / context_id / "docker"
    if (tls_dir / "cert.pem").is_file():
        ca = tls_dir / "ca.pem"
        kwargs["tls"] = TLSConfig(client_cert=(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem")),
                                  ca_cert=str(ca) if ca.is_file() else None,
                                  verify=not endpoint.get("SkipTLSVerify", False))
        return _tls_client(url, kwargs)
    if url.startswith("ssh://"):
        kwargs["use_ssh_client"] = False
    return docker.DockerClient(base_url=url, **kwargs)


def _tls_config(spec: HostSpec) -> Any:
    from docker.tls import TLSConfig

    cert_path = spec.cert_path or os.environ.get("DOCKER_CERT_PATH")
    host = urlsplit(spec.url).hostname or ""
    if not cert_path:
        if _is_loopback(host):
            return False
        raise HostError("plain TCP is allowed only on loopback; this host needs TLS",
                        host=spec.name, hint="give the host a cert_path with ca.pem, cert.pem "
                        "and key.pem (or set DOCKER_CERT_PATH)")
    folder = Path(cert_path).expanduser()
    files = {n: folder / n for n in ("ca.pem", "cert.pem", "key.pem")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise HostError(f"TLS files missing: {', '.join(missing)}", host=spec.name,
                        hint="cert_path must hold ca.pem, cert.pem and key.pem")
    return TLSConfig(client_cert=(str(files["cert.pem"]), str(files["key.pem"])),
                     ca_cert=str(files["ca.pem"]), verify=True)


def _host_error(spec: HostSpec, e: Exception) -> HostError:
    """Known connection failures turned into advice."""
    text = " ".join(str(e).split())
    root = re.search(r"\[Errno -?\d+\] [^'\")]+|\[SSL: [A-Z_]+\][^'\")]*|Read timed out",
                     text)
    if root:  # the innermost reason, not urllib3's wrapping of it
        text = root.group(0).strip()
    kind = type(e).__name__
    if "known_hosts" in text or kind == "BadHostKeyException":
        host = urlsplit(spec.url).hostname
        return HostError(f"unknown or changed SSH host key ({text[:200]})", host=spec.name,
                         hint=f"check the key, then add it: ssh-keyscan {host} >> "
                         "~/.ssh/known_hosts")
    if "SSL" in text or "certificate" in text.lower() or kind.startswith("SSL"):
        return HostError(f"TLS verification failed ({text[:200]})", host=spec.name,
                         hint="the host's certificate must be signed by the CA in cert_path "
                         "and name the host")
    if "Authentication failed" in text or kind == "AuthenticationException":
        return HostError("SSH login refused", host=spec.name,
                         hint="check the user and that your key is in its authorized_keys")
    if "Connection refused" in text or "No such file" in text or "timed out" in text.lower() \
            or "Max retries" in text or "Unable to connect" in text:
        return HostError(f"no Docker engine answers at {spec.url} ({text[:200]})",
                         host=spec.name, hint="is the engine running and the address right?")
    return HostError(f"cannot use {spec.url}: {kind}: {text[:300]}", host=spec.name)


def cpu_model_of(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_this_machine(spec: HostSpec) -> bool:
    return spec.url == "local" or spec.url.startswith("unix://")


def _local_cpu_model() -> str:
    try:
        return cpu_model_of(Path("/proc/cpuinfo").read_text()) or platform.processor()
    except OSError:
        return platform.processor()


def connect_local(*, cpus_per_trial: float = 1.0, required: bool = True) -> Host | None:
    """The local engine (DOCKER_HOST or the default socket), where images are built;
    None when it does not answer and it is not ``required``."""
    try:
        return connect(HostSpec("local", "local"), cpus_per_trial=cpus_per_trial)
    except HostError:
        if required:
            raise
        return None
