"""Bring your own code, on real engines: the README's section as written, a project with
no .dockerignore, BuildKit-only Dockerfiles, base images with and without a registry,
what a running trial sees (shm, /tmp, HOME and caches), GPU device requests, outputs
over their limit, the metric contract, and the scikit-learn example over the test hosts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from launcher.api import resume_run, run_sweep
from launcher.errors import ImageError, RunError
from launcher.image import build_image
from launcher.results import load_results
from launcher.sections import ImageSpec
from tests.support import (
    ROOT,
    TEST_HOSTS,
    assert_nothing_left,
    hosts_env,
    records,
    write_sweep,
)

pytestmark = pytest.mark.docker
BASE = "launcher-base:python3.11-bookworm"  # made by `make test` (scripts/base-image.sh)
BIN = Path(sys.executable).parent  # the venv that holds `launch`


def launch(*args: str, cwd: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


def readme_commands(title: str) -> list[str]:
    """The commands of the first bash block of the README's section ``title``, one per
    item (``a && b`` are two), comments dropped: what a reader types."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        line = re.split(r"\s{2,}#", line, maxsplit=1)[0].strip()
        commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


@pytest.mark.slow
def test_the_readme_section_bring_your_own_code_works_as_written(tmp_path: Path) -> None:
    commands = readme_commands("Bring your own code")
    assert commands[0].startswith("launch init ") and commands[1].startswith("cd ")
    assert [c.split()[:2] for c in commands[2:]] == [["launch", "sweep.yaml"]] * 2 + [
        ["launch", "verify"]]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    cwd, outputs = tmp_path, []
    for command in commands:
        if command.startswith("cd "):
            cwd = cwd / command[3:]
            sweep = cwd / "sweep.yaml"  # the reader edits the sweep before the first run
            text = sweep.read_text()
            sweep.write_text(text.replace("values: [20, 60]", "values: [10, 30]"))
            assert sweep.read_text() != text
            continue
        done = subprocess.run(command, shell=True, cwd=cwd, env=env, text=True,
                              capture_output=True, timeout=900)
        assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    runs = sorted((cwd / "results" / "digits").iterdir())
    assert len(runs) == 2
    image_ids = {i for run in runs for i in load_results(run)["image_id"]}
    assert len(image_ids) == 1, "the second run must use the same image"
    assert (cwd / "results" / "digits" / runs[0].name / "outputs").is_dir()
    assert "8/8 trials on 1 host reproduce across 2 runs" in outputs[-1]
    params = load_results(runs[0])["param.n_estimators"]
    assert sorted(set(params)) == [10, 30]
    for run in runs:
        assert_nothing_left(run.name)


def small_project(root: Path, job: str = "print('{\"metrics\": {\"ok\": 1}}')\n") -> Path:
    """A project of one's own, the size of a unit test: a job, a Dockerfile, no
    .dockerignore, no requirements."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(f"FROM {BASE}\nCOPY . /app/\nUSER 10001\n"
                                     'ENTRYPOINT ["python3", "/app/job.py"]\n')
    (root / "job.py").write_text(job)
    return root


FAILING_JOB = """import json, sys
fail = "--fail=true" in [a.lower() for a in sys.argv]
print(json.dumps({"metrics": {"ok": 0 if fail else 1}}))
sys.exit(1 if fail else 0)
"""


def test_results_git_venvs_and_sweep_files_never_change_the_image(tmp_path: Path) -> None:
    root = small_project(tmp_path / "mine", FAILING_JOB)
    sweep = root / "sweep.yaml"
    sweep.write_text("parameters:\n  fail: {values: [false, true]}\n"
                     "resources: {cpus: 0.5, memory: 128m}\n")
    os.chdir(root)  # results/ lands inside the project, as for a student
    try:
        first = run_sweep(sweep)
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        (root / ".venv").mkdir()
        (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (root / "__pycache__").mkdir()
        (root / "__pycache__" / "job.cpython-311.pyc").write_bytes(b"\0\1")
        sweep.write_text(sweep.read_text() + "replicas: 1\n")  # an edited sweep
        second = run_sweep(sweep)
        ids = {i for r in (first, second) for i in r.df["image_id"]}
        assert (root / "results").is_dir() and len(ids) == 1
        (root / "job.py").write_text(FAILING_JOB + "# a change\n")
        with pytest.raises(RunError, match=r"the image changed since run .*; changed: job.py"):
            resume_run(first.run_dir, root / "results", retry_failed=True)
    finally:
        os.chdir(ROOT)
    assert_nothing_left(first.run_id)
    client = docker.from_env()
    changed = build_image(client, ImageSpec(context=str(root)), root,
                          leave_out=[root / "results", sweep])  # built by the resume
    assert not changed.built
    for image_id in (*ids, changed.id):
        client.images.remove(image_id, force=True)
    client.close()


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env()
    yield c
    c.close()


def test_a_buildkit_only_dockerfile_builds_with_buildkit(tmp_path: Path,
                                                         client: docker.DockerClient) -> None:
    root = small_project(tmp_path / "bk")
    (root / "Dockerfile").write_text(
        f"FROM {BASE}\n"
        "RUN --mount=type=cache,target=/var/cache/job python3 -c \"import os; "
        "open('/var/cache/job/x', 'w').write('1'); print(os.listdir('/var/cache/job'))\"\n"
        "RUN --mount=type=bind,source=job.py,target=/mnt/job.py cp /mnt/job.py /job-copy.py\n"
        'ENTRYPOINT ["python3", "/job-copy.py"]\n')
    lines: list[str] = []
    image = build_image(client, ImageSpec(context=str(root)), root, lines.append)
    assert image.built and image.builder == "buildkit"
    assert any("RUN --mount=type=cache" in line for line in lines)
    out = client.containers.run(image.id, remove=True, network_disabled=True)
    assert json.loads(out) == {"metrics": {"ok": 1}}
    classic = ImageSpec(context=str(root), builder="classic")
    (root / "job.py").write_text("print('{\"metrics\": {\"ok\": 2}}')\n")  # a new digest
    with pytest.raises(ImageError, match="RUN --mount needs BuildKit"):
        build_image(client, classic, root)
    client.images.remove(image.tag)


def test_heredocs_need_a_newer_dockerfile_syntax_than_this_engine(
        tmp_path: Path, client: docker.DockerClient) -> None:
    root = small_project(tmp_path / "heredoc")
    (root / "Dockerfile").write_text(f"FROM {BASE}\nRUN <<EOT\necho one > /one\nEOT\n"
                                     "COPY job.py /app/job.py\n")
    major = int(str(client.version()["Version"]).split(".")[0])
    if major >= 23:  # the engine's own Dockerfile syntax has heredocs: they must work
        image = build_image(client, ImageSpec(context=str(root)), root)
        assert image.builder == "buildkit"
        client.images.remove(image.tag)
        return
    with pytest.raises(ImageError) as info:
        build_image(client, ImageSpec(context=str(root)), root)
    message = str(info.value)
    assert "heredocs (RUN <<EOF) need Dockerfile syntax 1.4" in message
    assert "\n" not in message


@pytest.mark.parametrize(("dockerfile", "advice"), [
    ("FROM launcher-test-absent/python:3.11-slim\n",
     "write `ARG BASE=launcher-test-absent/python:3.11-slim` and `FROM ${BASE}`"),
    ("ARG BASE=launcher-test-absent/python:3.11-slim\nFROM ${BASE}\n",
     "--set image.build.args.BASE=IMAGE"),
])
def test_a_base_that_cannot_be_pulled_is_one_line_that_says_what_to_do(
        tmp_path: Path, dockerfile: str, advice: str) -> None:
    root = small_project(tmp_path / "nobase")
    (root / "Dockerfile").write_text(dockerfile + "COPY job.py /app/job.py\n")
    (root / "sweep.yaml").write_text("replicas: 1\n")
    done = launch("build", str(root / "sweep.yaml"))
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("launch: error: base image launcher-test-absent/python:3.11-"
                               "slim is not on engine local and cannot be pulled")
    assert advice in lines[0] and "`launch base-image` makes launcher-base" in lines[0]


@pytest.mark.hosts
def test_a_literal_official_base_builds_on_an_engine_that_has_it(tmp_path: Path) -> None:
    """`FROM python:3.11-slim` as written, on test host h2 given that name (the local
    engine is left alone: other tests rely on that name being absent there)."""
    local = docker.from_env()
    h2 = docker.DockerClient(base_url=hosts_env()["H2_SOCK"], timeout=300)
    official = "python:3.11-slim"
    had_base = bool(h2.api.images(name=BASE))
    assert not h2.api.images(name=official), "h2 must not have python:3.11-slim already"
    root = small_project(tmp_path / "official")
    (root / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY job.py /app/job.py\n"
                                     'ENTRYPOINT ["python3", "/app/job.py"]\n')
    image = None
    try:
        if not had_base:
            h2.api.load_image(local.api.get_image(BASE))
        h2.api.tag(BASE, "python", "3.11-slim")
        image = build_image(h2, ImageSpec(context=str(root)), root)
        assert image.built and image.base == h2.api.inspect_image(official)["Id"]
        out = h2.containers.run(image.id, remove=True, network_disabled=True)
        assert json.loads(out) == {"metrics": {"ok": 1}}
    finally:
        if image is not None:
            h2.api.remove_image(image.tag)
        h2.api.remove_image(official)  # the name only; the image stays if h2 had it
        if not had_base:
            h2.api.remove_image(BASE)
        h2.close()
        local.close()


PROBE_RUNTIME = """
import json, os
def size(path):
    s = os.statvfs(path)
    return s.f_blocks * s.f_frsize
home = os.environ["HOME"]
os.makedirs(os.environ["MPLCONFIGDIR"], exist_ok=True)
for var in ("XDG_CACHE_HOME", "HF_HOME", "TORCH_HOME", "WANDB_DIR"):
    os.makedirs(os.environ[var], exist_ok=True)
    with open(os.path.join(os.environ[var], "written"), "w") as f:
        f.write(var)
st = os.stat(home)
print(json.dumps({"metrics": {
    "shm": size("/dev/shm"), "tmp": size("/tmp"), "home": home, "home_size": size(home),
    "home_owner": st.st_uid, "uid": os.getuid(),
    "caches": {v: os.environ[v] for v in ("XDG_CACHE_HOME", "MPLCONFIGDIR", "HF_HOME",
                                        "TORCH_HOME", "WANDB_DIR")},
    "root_read_only": not os.access("/", os.W_OK)}}))
"""


def test_shm_tmp_and_a_writable_home_are_seen_from_inside_a_running_trial(
        tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"command": ["python3", "-c", PROBE_RUNTIME],
                                  "resources": {"cpus": 0.5, "memory": "256m", "shm": "1g",
                                                "tmp": "64m"}})
    results = run_sweep(path)
    row = results.df.iloc[0]
    assert row["status"] == "succeeded", row["reason"]
    metrics = records(results.run_dir)[0]["metrics"]
    assert metrics["shm"] == 2**30 and metrics["tmp"] == 64 * 2**20
    assert metrics["home"] == "/home/trial" and metrics["home_size"] == 64 * 2**20
    assert metrics["home_owner"] == metrics["uid"] == 10001 and metrics["root_read_only"]
    assert all(v.startswith("/home/trial") for v in metrics["caches"].values())
    assert_nothing_left(results.run_id)


def test_gpu_device_requests_reach_the_engine(tmp_path: Path,
                                              client: docker.DockerClient) -> None:
    from launcher.command import Argv
    from launcher.container import ContainerSettings
    from launcher.sections import Resources
    from launcher.trial import Trial

    settings = ContainerSettings(image=BASE, run_id="gpu-inspect", sweep="g",
                                 resources=Resources(gpus=2), user="10001:10001")
    trial = Trial("abcdefabcdef", "c", 0, 0, 0, ())
    kwargs = settings.create_kwargs(client.api, trial, Argv(None, ["true"]), 1,
                                    devices=("2", "3"))
    cid = client.api.create_container(**kwargs)["Id"]
    try:
        requests = client.api.inspect_container(cid)["HostConfig"]["DeviceRequests"]
    finally:
        client.api.remove_container(cid, v=True, force=True)
    assert requests == [{"Driver": "", "Count": 0, "DeviceIDs": ["2", "3"],
                         "Capabilities": [["gpu"]], "Options": {}}]
    # A whole run on a host that says it has two GPUs but no GPU runtime: each trial is
    # a failed row that says why (not a lost trial retried forever).
    path = write_sweep(tmp_path, {"command": ["true"],
                                  "hosts": [{"url": "local", "gpus": 2}],
                                  "resources": {"cpus": 0.5, "memory": "64m", "gpus": 1}})
    results = run_sweep(path, replicas=3)
    assert set(results.df["status"]) == {"failed"}
    assert results.df["reason"].str.contains("cannot give containers GPUs").all()
    assert_nothing_left(results.run_id)


BIG_OUTPUTS = """
import json, os
open("/outputs/a-small.txt", "w").write("kept\\n")
open("/outputs/b-model.bin", "wb").write(os.urandom(3 * 2**20))
json.dump({"acc": 0.5}, open("/outputs/metrics.json", "w"))
print(json.dumps({"metrics": {"acc": 0.5}}))
"""


def test_outputs_over_the_limit_keep_the_trial_and_mark_the_copy(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"command": ["python3", "-c", BIG_OUTPUTS],
                                  "outputs_limit": "1m",
                                  "metric": {"name": "acc"}})
    done = launch(str(path), "-q")
    assert done.returncode == 0, done.stderr
    assert "warning: the outputs of 1 trials were over outputs_limit" in done.stdout
    run_dir = next((tmp_path / "results" / "t").iterdir())
    df = load_results(run_dir)
    assert df["status"].tolist() == ["succeeded"] and df["metric.acc"].tolist() == [0.5]
    assert df["outputs_truncated"].tolist() == [True]
    kept = run_dir / "outputs" / df["trial_id"].iloc[0]
    assert sorted(p.name for p in kept.iterdir()) == ["a-small.txt", "metrics.json"]
    shown = launch("results", str(run_dir))
    assert "outputs_truncated" in shown.stdout and "truncated" in shown.stderr
    report = launch("report", str(run_dir))
    assert report.returncode == 0
    assert "their copies are truncated" in (run_dir / "report.html").read_text()


def test_a_metric_no_trial_reports_is_said_and_strict_metrics_fail(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"command": ["python3", "-c",
                                              "print('{\"metrics\": {\"acc\": 1}}')"],
                                  "metric": {"name": "val_acc"}})
    line = ("no trial reported the sweep's metric 'val_acc' (reported: acc); the job's "
            'last stdout line must be like {"metrics": {"val_acc": 0.93}}')
    done = launch(str(path), "-q")
    assert done.returncode == 0 and f"warning: {line}" in done.stdout
    run_dir = next((tmp_path / "results" / "t").iterdir())
    shown = launch("results", str(run_dir), "--format", "csv")
    assert shown.stderr.strip() == f"warning: {line}" and "val_acc" not in shown.stdout
    strict = launch(str(path), "-q", "--strict-metrics")
    assert strict.returncode == 1 and "1 failed of 1 trials" in strict.stdout
    runs = sorted((tmp_path / "results" / "t").iterdir())
    assert "the job reported no 'val_acc'" in load_results(runs[-1])["reason"].iloc[0]


@pytest.mark.hosts
@pytest.mark.slow
def test_the_scikit_learn_example_reproduces_over_the_test_hosts(tmp_path: Path) -> None:
    sweep = str(ROOT / "launcher" / "starter" / "sweep.yaml")
    hosts = str(TEST_HOSTS / "hosts.yaml")
    args = [sweep, "--host", "local", "--hosts", hosts, "--replicas", "2",
            "--set", "seed_mode=fixed", "--results", str(tmp_path), "-q"]
    for _ in range(2):
        done = launch(*args)
        assert done.returncode == 0, done.stdout + done.stderr
    runs = sorted((tmp_path / "digits").iterdir())
    tables = [load_results(run) for run in runs]
    assert all(set(t["host"]) == {"local", "h2", "h3"} for t in tables)
    assert len({i for t in tables for i in t["image_id"]}) == 1
    verified = launch("verify", *map(str, runs))
    assert verified.returncode == 0, verified.stdout
    assert "16/16 trials on 3 hosts reproduce across 2 runs" in verified.stdout
    for run in runs:
        assert_nothing_left(run.name)


def test_the_starter_dockerfile_builds_without_wheels_with_the_classic_builder(
        tmp_path: Path, client: docker.DockerClient) -> None:
    """The starter's other path: no .wheelhouse (as with plain `docker build .`), pip
    from the index (here with nothing to install), on the classic builder."""
    from launcher.project import write_starter

    root = tmp_path / "starter"
    write_starter(root)
    (root / "requirements.txt").write_text("# nothing to install\n")
    image = build_image(client, ImageSpec(context=str(root), builder="classic"), root)
    try:
        assert image.built and image.builder == "classic"
        listing = client.containers.run(image.id, entrypoint=["ls", "-A", "/app"],
                                        remove=True, network_disabled=True)
        assert listing.decode().split() == ["requirements.txt", "train.py"]
        assert client.api.inspect_image(image.id)["Config"]["User"] == "10001"
    finally:
        client.images.remove(image.tag)
