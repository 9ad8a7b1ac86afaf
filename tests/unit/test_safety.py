"""No way out of the container: binds of the engine's socket, of system paths, and root
with binds are refused at load time (file:line, exit 2), unless `unsafe` opts in."""

from __future__ import annotations

import grp
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.errors import SweepError
from launcher.overrides import Overrides
from launcher.safety import bind_problem, engine_sockets, privileged_user
from launcher.spec import load_sweep


@pytest.fixture
def fake_engine_socket(tmp_path: Path) -> Iterator[Path]:
    """A listening unix socket standing for an engine's socket (a `unix://` host)."""
    folder = tmp_path / "engine"
    folder.mkdir()
    path = folder / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    yield path
    server.close()


def sweep(tmp_path: Path, body: str, hosts: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nparameters: {x: {value: 1}}\n" + hosts + body)
    return path


def refusal(path: Path, **overrides: object) -> SweepError:
    with pytest.raises(SweepError) as info:
        load_sweep(path, Overrides(**overrides))  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    return info.value


def test_binding_the_engine_socket_is_refused_with_file_and_line(tmp_path: Path) -> None:
    e = refusal(sweep(tmp_path, "mounts:\n  - {bind: /var/run/docker.sock, target: /d}\n"))
    assert str(e).startswith(f"{tmp_path / 's.yaml'}:4: ")
    assert "is the Docker engine's socket" in str(e) and "unsafe" in str(e)


def test_a_symlink_to_the_socket_is_refused(tmp_path: Path, fake_engine_socket: Path) -> None:
    (tmp_path / "innocent").symlink_to(fake_engine_socket)
    hosts = f"hosts: [unix://{fake_engine_socket}]\n"
    e = refusal(sweep(tmp_path, "mounts: [{bind: innocent, target: /d}]\n", hosts))
    assert f"which resolves to {fake_engine_socket}" in str(e)
    assert "is the Docker engine's socket" in str(e)


def test_a_folder_holding_the_socket_is_refused(tmp_path: Path, fake_engine_socket: Path) -> None:
    hosts = f"hosts: [unix://{fake_engine_socket}]\n"
    e = refusal(sweep(tmp_path, "mounts: [{bind: engine, target: /d}]\n", hosts))
    assert "contains the Docker engine's socket" in str(e)
    for parent in ("/run", "/var/run", "/var"):
        e = refusal(sweep(tmp_path, f"mounts: [{{bind: {parent}, target: /d}}]\n"))
        assert "system path /run" in str(e) or "contains" in str(e), str(e)


@pytest.mark.parametrize("source", ["/", "/etc", "/etc/shadow", "/proc", "/sys/fs",
                                    "/dev", "/root", "/var/lib/docker"])
def test_the_hosts_root_and_system_paths_are_refused(tmp_path: Path, source: str) -> None:
    e = refusal(sweep(tmp_path, f"mounts: [{{bind: '{source}', target: /d}}]\n"))
    assert "host's root" in str(e) or "system path" in str(e)


def test_any_socket_is_refused(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "other.sock"))
    try:
        assert bind_problem(str(tmp_path / "other.sock"), set()) == (
            f"bind source {tmp_path / 'other.sock'} is a socket")
    finally:
        server.close()


@pytest.mark.parametrize("user", ["0", "root", "0:0", "1000:0", "1000:root", "1000:docker"])
def test_root_or_the_docker_group_with_a_bind_is_refused(tmp_path: Path, user: str) -> None:
    (tmp_path / "data").mkdir()
    e = refusal(sweep(tmp_path, f"user: '{user}'\nmounts: [{{bind: data, target: /d}}]\n"))
    assert str(e).startswith(f"{tmp_path / 's.yaml'}:3: ") and "binds host paths" in str(e)


def test_the_docker_groups_number_counts_as_the_docker_group() -> None:
    try:
        gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        pytest.skip("no docker group on this machine")
    assert privileged_user(f"1000:{gid}") is not None
    assert privileged_user("1000:1000") is None and privileged_user(None) is None


def test_root_without_binds_and_plain_data_binds_are_fine(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    assert load_sweep(sweep(tmp_path, "user: '0'\n")).user == "0"
    spec = load_sweep(sweep(tmp_path, "mounts: [{bind: data, target: /d}]\n"))
    assert spec.mounts[0].source == str(tmp_path / "data")


def test_binds_need_hosts_on_this_machine(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    e = refusal(sweep(tmp_path, "mounts: [{bind: data, target: /d}]\n",
                      "hosts: [{url: 'ssh://me@10.0.0.9', name: far}]\n"))
    assert "host far (ssh://me@10.0.0.9) is not" in str(e)


def test_unsafe_opts_in_loudly(tmp_path: Path) -> None:
    path = sweep(tmp_path, "user: '0'\nmounts: [{bind: /var/run/docker.sock, target: /d}]\n"
                 "unsafe: {system_binds: true, root_with_binds: true}\n")
    spec = load_sweep(path)
    assert spec.unsafe == {"system_binds", "root_with_binds"}
    assert any("unsafe.system_binds" in w and "host's root" in w for w in spec.warnings)
    e = refusal(sweep(tmp_path, "unsafe: {system_bind: true}\n"))
    assert "did you mean 'system_binds'" in str(e)


def test_a_bind_set_on_the_command_line_is_checked_too(tmp_path: Path) -> None:
    e = refusal(sweep(tmp_path, "mounts: [{bind: /tmp, target: /d}]\n"),
                sets=("mounts.0.bind=/var/run/docker.sock",))
    assert "--set mounts" in str(e) and "engine's socket" in str(e)


def test_engine_sockets_resolve_docker_host() -> None:
    found = engine_sockets(["unix:///tmp/x/docker.sock", "tcp://1.2.3.4:2376"],
                           {"DOCKER_HOST": "unix:///tmp/y.sock"})
    assert {"/tmp/x/docker.sock", "/tmp/y.sock", "/run/docker.sock"} <= found
