"""``python -m tests.simengine --dir DIR --hosts N ...``: serve N simulated engines.

Writes DIR/hosts.json (``{"pid", "hosts": [{"name", "url"}], "image_id"}``) when every
engine listens; DIR/control.sock answers ``GET /stats``, ``POST /hosts/NAME/fault?kind=
stop|hang``, ``POST /hosts/NAME/latency?seconds=S``, ``POST /reset`` and ``POST /shutdown``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from tests.simengine.engine import HostConfig
from tests.simengine.server import raise_open_files_limit, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.simengine")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--prefix", default="sim")
    parser.add_argument("--tcp", action="store_true", help="loopback ports, not unix sockets")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=0.05)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--preload", choices=("first", "all", "none"), default="first")
    parser.add_argument("--image-kb", type=int, default=64)
    parser.add_argument("--lifetime", type=float, default=900.0)
    parser.add_argument("--host-config", default="{}",
                        help='JSON: {"NAME": {"latency": 1, "fault": "stop", '
                        '"fault_after_creates": 5}, ...}')
    args = parser.parse_args()
    special = json.loads(args.host_config)
    configs = {}
    for i in range(args.hosts):
        name = f"{args.prefix}-{i}"
        base = {"latency": args.latency, "duration": args.duration, "ncpu": args.ncpu}
        configs[name] = HostConfig(**{**base, **special.get(name, {})})
    raise_open_files_limit()
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args.dir, configs, tcp=args.tcp, preload=args.preload,
                    image_kb=args.image_kb, lifetime=args.lifetime))


if __name__ == "__main__":
    main()
