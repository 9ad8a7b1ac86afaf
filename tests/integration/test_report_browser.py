"""The HTML report of a real run opens in headless Chromium with every image loaded and
nothing fetched from outside the file (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from launcher.api import run_sweep
from tests.support import write_sweep

pytestmark = [pytest.mark.browser, pytest.mark.docker]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")
IMAGES_STATE = """
return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth,
                                              i.src.slice(0, 21)]);
"""
EXTERNAL_REFERENCES = """
const refs = [];
for (const el of document.querySelectorAll('[src],[href],[srcset],[poster],[data]')) {
  for (const a of ['src', 'href', 'srcset', 'poster', 'data']) {
    const v = el.getAttribute(a);
    if (v && !v.startsWith('data:') && !v.startsWith('#')) refs.push(a + '=' + v);
  }
}
for (const sheet of document.styleSheets) {
  for (const rule of sheet.cssRules) {
    if (/url\\(|@import/.test(rule.cssText)) refs.push(rule.cssText);
  }
}
for (const e of performance.getEntriesByType('resource')) {
  if (!e.name.startsWith('data:')) refs.push('fetched ' + e.name);
}
return refs;
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


TICK_OVERLAPS = """
const found = [];
const box = document.createElement('div');
document.body.appendChild(box);
for (const img of document.images) {
  if (!img.src.startsWith('data:image/svg+xml;base64,')) {
    found.push('not svg: ' + img.alt);
    continue;
  }
  const bytes = Uint8Array.from(atob(img.src.split(',')[1]), c => c.charCodeAt(0));
  box.innerHTML = new TextDecoder().decode(bytes)
    .replace(/<\\?xml[^>]*>/, '').replace(/<!DOCTYPE[^>]*>/, '');
  for (const axes of box.querySelectorAll('g[id^="axes_"]')) {
    for (const kind of ['xtick_', 'ytick_']) {
      const labels = Array.from(axes.querySelectorAll(`g[id^="${kind}"] text`));
      const rects = labels.map(t => t.getBoundingClientRect()).filter(r => r.width > 0);
      for (let i = 0; i < rects.length; i++) for (let j = 0; j < i; j++) {
        const a = rects[i], b = rects[j];
        if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 &&
            b.top < a.bottom - 0.5) found.push(img.alt + ' ' + kind + ': ' +
            labels[i].textContent + ' / ' + labels[j].textContent);
      }
    }
  }
  box.innerHTML = '';
}
box.remove();
return found;
"""
TICK_LABELS = """
return Array.from(document.querySelectorAll('g[id^="xtick_"] text, g[id^="ytick_"] text'))
  .length;
"""
TRAIN = {"epochs": {"value": 20}, "samples": {"value": 300}}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reports of real runs: a 3 x 3 grid x 3 replicas, and a random sweep of 6."""
    folder = tmp_path_factory.mktemp("reports")
    metric = {"name": "val_acc", "goal": "maximize"}
    grid = write_sweep(folder, {"metric": metric, "replicas": 3, "parameters": {
        **TRAIN, "lr": {"values": [0.05, 0.2, 0.5]}, "hidden": {"values": [4, 16, 64]}}},
        "grid")
    rand = write_sweep(folder, {"metric": metric, "method": "random", "run_cap": 6,
                                "parameters": {**TRAIN, "lr": {
                                    "distribution": "log_uniform_values", "min": 0.01,
                                    "max": 1.0}, "hidden": {"min": 4, "max": 64}}}, "rand")
    out = {}
    for name, sweep in (("grid", grid), ("random", rand)):
        run_dir = run_sweep(sweep).run_dir
        result = subprocess.run([sys.executable, "-m", "launcher", "report", str(run_dir)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        out[name] = Path(result.stdout.strip())
        assert out[name] == run_dir / "report.html"
    return out


def _open(browser: Any, report: Path) -> None:
    browser.get(report.as_uri())
    shots = os.environ.get("LAUNCH_SCREENSHOTS")  # docs/: make the README's screenshots
    if shots:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1200, min(height + 80, 12000))
        browser.save_screenshot(str(Path(shots) / f"report-{report.parent.parent.name}.png"))
        browser.set_window_size(1200, 900)


@pytest.mark.parametrize("kind", ["grid", "random"])
def test_report_loads_every_image_offline_with_readable_ticks(
        reports: dict[str, Path], browser: Any, kind: str) -> None:
    _open(browser, reports[kind])
    images = browser.execute_script(IMAGES_STATE)
    alts = [alt for alt, *_ in images]
    for alt, complete, width, src in images:
        assert complete and width > 0, f"image {alt!r} did not load"
        assert src == "data:image/svg+xml;ba"  # (the first 21 characters)
    assert browser.execute_script(EXTERNAL_REFERENCES) == []
    assert any(alt.startswith("heatmap of val_acc over") for alt in alts), alts
    assert "parallel coordinates" in alts
    assert browser.execute_script(TICK_OVERLAPS) == []
    text = browser.find_element("tag name", "body").text
    assert "Best configurations" in text and "Learning curves" in text
    assert "Failed and stopped trials: none" in text
    assert "The sweep" in text and "/app/experiments/train.py" not in text  # entrypoint
    assert "(the image's entrypoint) --epochs=20 --samples=300 --lr=" in text  # a command
    if kind == "grid":
        assert len(images) == 7, alts  # params, heatmap, parallel, spread, curves, 2 timeline
        assert "Spread over replicas" in text
        assert "Reproducibility (same configuration and seed, same result): nothing to " \
            "compare" in text  # distinct seeds: one line, no box
    else:
        assert "Spread over replicas: no configuration has two succeeded replicas" in text
        assert len(images) == 6, alts


def test_a_log_distribution_is_drawn_on_a_log_axis(reports: dict[str, Path]) -> None:
    import base64
    import re

    html = reports["random"].read_text()
    first = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert first is not None
    params_svg = base64.b64decode(first.group(1)).decode()
    assert "lr (log)" in params_svg and "hidden (log)" not in params_svg
