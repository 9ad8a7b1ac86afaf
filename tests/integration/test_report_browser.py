"""The HTML report of a real run opens in headless Chromium with every image loaded and
nothing fetched from outside the file (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from launcher.api import run_sweep
from tests.support import FAST_TRAIN, write_sweep

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


def test_report_of_a_real_run_loads_every_image_offline(tmp_path: Path, browser: Any) -> None:
    sweep = write_sweep(tmp_path, {"metric": {"name": "val_acc", "goal": "maximize"},
                                   "parameters": {**FAST_TRAIN, "lr": {"values": [0.1, 0.3]}},
                                   "replicas": 2, "seed_mode": "fixed"}, "reported")
    run_dir = run_sweep(sweep).run_dir
    result = subprocess.run([sys.executable, "-m", "launcher", "report", str(run_dir)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip())
    assert report == run_dir / "report.html"

    browser.get(report.as_uri())
    images = browser.execute_script(IMAGES_STATE)
    assert len(images) == 6, images  # params, spread, curves, gantt, throughput, matrix
    for alt, complete, width, src in images:
        assert complete and width > 0, f"image {alt!r} did not load"
        assert src == "data:image/png;base64"
    assert browser.execute_script(EXTERNAL_REFERENCES) == []
    text = browser.find_element("tag name", "body").text
    assert "4/4 trials on 1 host reproduce" in text
    assert "Best configurations" in text and "Learning curves" in text
