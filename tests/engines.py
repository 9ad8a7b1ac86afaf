"""Docker engines that belong to one test run, so that tests may kill, restart and freeze
them (the shared engines must never be touched that way).

Each engine is started by scripts/scratch-engine.sh (own network namespace, data root,
exec root, pidfile and unix socket) and removed again by it; the project's image is
copied into it with save/load, which keeps the image ID.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "scratch-engine.sh"
SCRIPT_TIMEOUT = 120  # seconds for one call of the script (a restart waits for containers)


_NAME = re.compile(r"launcher-(f(\d+)[a-z])")


def remove_orphans() -> None:
    """Remove the engines of test sessions that no longer run (named f<pid><letter>)."""
    for folder in Path("/run").glob("launcher-f*"):
        match = _NAME.fullmatch(folder.name)
        if match and not Path(f"/proc/{match.group(2)}").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                ScratchEngine(match.group(1)).down()


def engines_problem() -> str | None:
    """Why this machine cannot start engines of its own (None: it can)."""
    if os.geteuid() != 0:
        return "starting Docker engines of the test's own needs root"
    missing = [t for t in ("dockerd", "nsenter", "ip") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing; run `make docker`"
    return None


@dataclass
class ScratchEngine:
    """One engine of the test run's own, on /run/launcher-NAME/docker.sock."""

    name: str

    @property
    def url(self) -> str:
        return f"unix:///run/launcher-{self.name}/docker.sock"

    def host(self, slots: int = 2) -> str:
        """The engine as a `--host` option."""
        return f"{self.url},slots={slots},name={self.name}"

    def entry(self, slots: int = 2) -> dict[str, Any]:
        """The engine as an entry of a sweep's `hosts`."""
        return {"url": self.url, "name": self.name, "slots": slots}

    def script(self, command: str) -> None:
        out = subprocess.run([str(SCRIPT), command, self.name], capture_output=True,
                             text=True, timeout=SCRIPT_TIMEOUT)
        if out.returncode != 0:
            raise RuntimeError(f"scratch-engine.sh {command} {self.name}: {out.stderr}")

    def up(self) -> None:
        self.script("up")

    def down(self) -> None:
        self.script("down")

    def kill(self) -> None:
        """SIGKILL the engine: a crash; its containers are killed when it comes back."""
        self.script("kill")

    def start(self) -> None:
        self.script("start")

    def freeze(self) -> None:
        """SIGSTOP the engine: connections are accepted, never answered."""
        self.script("freeze")

    def thaw(self) -> None:
        self.script("thaw")

    def client(self, timeout: int = 30) -> Any:
        import docker

        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def answers(self) -> bool:
        try:
            client = self.client(timeout=5)
        except Exception:  # no socket: not up
            return False
        try:
            client.ping()
            return True
        except Exception:  # frozen or dead
            return False
        finally:
            client.close()

    def ensure_up(self) -> None:
        """Back to a running engine after a test killed or froze it."""
        if self.answers():
            return
        with contextlib.suppress(RuntimeError):  # not running at all
            self.thaw()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.answers():
            time.sleep(0.2)
        if not self.answers():
            self.start()

    def load(self, image_ref: str) -> None:
        """Copy an image from the main engine into this one (save/load keeps its ID)."""
        import docker

        main = docker.from_env(timeout=300)
        target = self.client(timeout=300)
        try:
            target.api.load_image(main.api.get_image(image_ref, chunk_size=1 << 20))
        finally:
            main.close()
            target.close()

    def has_image(self, ref: str) -> bool:
        import docker.errors

        client = self.client()
        try:
            client.api.inspect_image(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        finally:
            client.close()

    def remove_image(self, ref: str) -> None:
        client = self.client()
        try:
            client.api.remove_image(ref, force=True)
        finally:
            client.close()

    def containers(self, label: str) -> list[str]:
        """Containers (any state) carrying ``label``."""
        client = self.client()
        try:
            return [c["Id"] for c in client.api.containers(all=True, filters={"label": label})]
        finally:
            client.close()


def scratch_engines(count: int, image_ref: str) -> Iterator[list[ScratchEngine]]:
    """``count`` engines with ``image_ref`` loaded, removed again afterwards. Engines that
    an earlier test session left behind (it was killed: its pid, in their names, is gone)
    are removed first."""
    remove_orphans()
    tag = f"f{os.getpid()}"
    engines = [ScratchEngine(f"{tag}{chr(ord('a') + i)}") for i in range(count)]
    try:
        for engine in engines:
            engine.up()
            engine.load(image_ref)
        yield engines
    finally:
        for engine in engines:
            try:
                engine.down()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"warning: {e}")
