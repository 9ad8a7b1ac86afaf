"""The build context: what is never part of the job, per-file digests, the digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.buildcontext import (
    context_digest,
    describe_changes,
    is_sweep_file,
    scan_context,
)


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM base\nCOPY . /app\n")
    (root / "train.py").write_text("print('train')\n")
    (root / "src" / "model.py").write_text("W = 1\n")
    (root / "config.yaml").write_text("lr: 0.1\nlayers: 2\n")  # a job's own config stays
    return root


def digest(root: Path, **kwargs: object) -> str:
    context = scan_context(root, "Dockerfile", **kwargs)  # type: ignore[arg-type]
    return context_digest(context, "Dockerfile", {}, "sha256:base", None)


def test_the_digest_ignores_results_git_venvs_caches_and_sweep_files(tmp_path: Path) -> None:
    root = project(tmp_path)
    before = digest(root, leave_out=[root / "results"])
    run = root / "results" / "digits" / "20260101-000000-abcd"
    run.mkdir(parents=True)
    for name in ("manifest.json", "plan.json", "trials.jsonl"):
        (run / name).write_text("{}\n")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "my-env" / "lib").mkdir(parents=True)  # a venv of any name: found by pyvenv.cfg
    (root / "my-env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "src" / "__pycache__").mkdir()
    (root / "src" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (root / "wandb" / "run-1").mkdir(parents=True)
    (root / "sweep.yaml").write_text("method: grid\nparameters:\n  lr: {values: [1]}\n")
    (root / "elsewhere-runs" / "x" / "20260101-000000-ffff").mkdir(parents=True)
    for name in ("manifest.json", "plan.json"):  # a run folder under another results root
        (root / "elsewhere-runs" / "x" / "20260101-000000-ffff" / name).write_text("{}")
    context = scan_context(root, "Dockerfile", leave_out=[root / "results"])
    assert digest(root, leave_out=[root / "results"]) == before
    assert sorted(context.digests) == ["Dockerfile", "config.yaml", "src/model.py", "train.py"]
    (root / "sweep.yaml").write_text("method: random\nrun_cap: 3\nparameters: {}\n")
    assert digest(root, leave_out=[root / "results"]) == before  # editing a sweep file


def test_a_source_change_changes_the_digest_and_is_named(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = scan_context(root)
    before = digest(root)
    (root / "src" / "model.py").write_text("W = 2\n")
    (root / "data.csv").write_text("x\n1\n")
    (root / "train.py").unlink()
    second = scan_context(root)
    assert digest(root) != before
    said = describe_changes({"files": first.digests, "args": {}},
                            {"files": second.digests, "args": {"BASE": "x"}})
    assert said == ("changed: src/model.py; added: data.csv; removed: train.py; "
                    "build args changed")


def test_the_executable_bit_and_links_count(tmp_path: Path) -> None:
    root = project(tmp_path)
    before = digest(root)
    (root / "train.py").chmod(0o755)
    executable = digest(root)
    (root / "link").symlink_to("train.py")
    assert len({before, executable, digest(root)}) == 3


def test_a_dockerignore_adds_to_the_defaults_and_can_bring_files_back(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"1" * 10)
    (root / "data" / "keep.txt").write_text("k\n")
    (root / ".dockerignore").write_text("# comment\ndata\n!data/keep.txt\nconfig.yaml\n"
                                        ".wheelhouse\nDockerfile\n")
    context = scan_context(root)
    # The Dockerfile and .dockerignore always go (Docker's rules); the wheelhouse pattern
    # is dropped (the launcher adds the wheels itself).
    assert sorted(context.digests) == [".dockerignore", "Dockerfile", "data/keep.txt",
                                       "src/model.py", "train.py"]


@pytest.mark.parametrize(("text", "is_sweep"), [
    ("method: grid\nparameters:\n  lr: {value: 1}\n", True),
    ("parameters:\n  lr: {value: 1}\nreplicas: 3\n", True),
    ("program: train.py\nmetric: {name: a}\nparameters: {}\n", True),
    ("replicas: 10\ncommand: [python3, job.py]\n", True),  # replicas only
    ("parameters:\n  lr: 1\n", False),  # a job's config with a "parameters" key
    ("image: cat.png\nsize: 3\n", False),
    ("lr: 0.1\n", False),
    ("- a\n- b\n", False),
    ("{{ not yaml", False),
])
def test_sweep_files_are_recognised_by_their_keys(tmp_path: Path, text: str,
                                                  is_sweep: bool) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert is_sweep_file(path) is is_sweep
