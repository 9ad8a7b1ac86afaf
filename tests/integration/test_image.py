"""One image, built once: identity, caching, determinism in the image, clear build errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import docker
import pytest

from launcher.api import run_sweep
from launcher.errors import ImageError
from launcher.image import build_image, ensure_image, find_context
from launcher.sections import ImageSpec
from tests.support import FAST_TRAIN, ROOT, write_sweep

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def test_unchanged_context_is_never_rebuilt(client: docker.DockerClient) -> None:
    first = ensure_image(client, ImageSpec(context=str(ROOT)), ROOT)
    started = time.perf_counter()
    second = ensure_image(client, ImageSpec(context=str(ROOT)), ROOT)
    assert time.perf_counter() - started < 1.0
    assert second.id == first.id and not second.built and second.id.startswith("sha256:")
    assert second.tag.startswith("launcher-job:") and second.digest[:16] in second.tag


def test_a_context_change_gives_a_new_digest(tmp_path: Path,
                                             client: docker.DockerClient) -> None:
    context = _copy_project(tmp_path)
    before = ensure_image(client, ImageSpec(context=str(context)), context)
    (context / "experiments" / "extra.txt").write_text("changes the image\n")
    after = ensure_image(client, ImageSpec(context=str(context)), context)
    (context / "experiments" / "notes.yaml").write_text("ignored: true\n")  # .dockerignore
    again = ensure_image(client, ImageSpec(context=str(context)), context)
    assert before.digest != after.digest and after.built
    assert again.digest == after.digest and not again.built
    client.api.remove_image(after.tag)


def test_same_seed_same_bytes_different_seed_different_weights(tmp_path: Path) -> None:
    fixed = run_sweep(write_sweep(tmp_path, {"parameters": FAST_TRAIN, "seed": 3,
                                             "seed_mode": "fixed"}, "fixed"), replicas=2)
    models = [(fixed.run_dir / "outputs" / t / "model.npy").read_bytes()
              for t in fixed.df["trial_id"]]
    assert models[0] == models[1] and len(models[0]) > 100
    metrics = fixed.df[[c for c in fixed.df.columns if c.startswith("metric.")]]
    assert (metrics.nunique() == 1).all()
    distinct = run_sweep(write_sweep(tmp_path, {"parameters": FAST_TRAIN, "seed": 3},
                                     "distinct"), replicas=2)
    weights = set(distinct.df["metric.weights_sha256"])
    assert len(weights) == 2 and models[0] != (
        distinct.run_dir / "outputs" / distinct.df["trial_id"].iloc[1] / "model.npy"
    ).read_bytes()


def test_a_dockerfile_that_fails_carries_its_log(tmp_path: Path,
                                                 client: docker.DockerClient) -> None:
    context = _copy_project(tmp_path)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN echo about to fail && exit 7\n")
    with pytest.raises(ImageError) as info:
        build_image(client, ImageSpec(context=str(context)), context)
    error = info.value
    assert "the image build failed" in str(error) and "exit 7" in str(error)
    assert "about to fail" in error.build_log and "fix the Dockerfile" in str(error)


def test_a_requirement_missing_from_the_wheelhouse_says_what_to_do(
        tmp_path: Path, client: docker.DockerClient) -> None:
    context = _copy_project(tmp_path)
    dockerfile = context / "Dockerfile"
    text = dockerfile.read_text().replace(
        "-r /tmp/requirements.txt", "-r /tmp/requirements.txt left-pad-not-in-wheelhouse")
    assert text != dockerfile.read_text()
    dockerfile.write_text(text)
    with pytest.raises(ImageError) as info:
        build_image(client, ImageSpec(context=str(context)), context)
    assert "needs left-pad-not-in-wheelhouse, which is not in the wheelhouse" in str(info.value)
    assert "experiments/requirements.txt" in str(info.value)


def test_a_requirement_that_cannot_be_downloaded(tmp_path: Path,
                                                client: docker.DockerClient) -> None:
    context = _copy_project(tmp_path)
    (context / "experiments" / "requirements.txt").write_text("numpy==0.0.0.404\n")
    with pytest.raises(ImageError, match=r"pip download of .* failed"):
        build_image(client, ImageSpec(context=str(context)), context)


def test_a_missing_context_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"build context .* does not exist"):
        find_context(ImageSpec(context=str(tmp_path / "nope")), tmp_path)
    with pytest.raises(ImageError, match="no Dockerfile in the build context"):
        find_context(ImageSpec(context=str(tmp_path)), tmp_path)


def test_build_command_prints_the_image_id(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write_sweep(tmp_path, {"parameters": FAST_TRAIN})
    result = subprocess.run([sys.executable, "-m", "launcher", "build", str(path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("sha256:") and len(result.stdout.strip()) == 71


def _copy_project(tmp_path: Path) -> Path:
    context = tmp_path / "project"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "experiments", context / "experiments",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return context
