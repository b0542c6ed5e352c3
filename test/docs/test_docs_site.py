"""The documentation site (issue 23): rosdoc2 builds it with no warning, a browser renders
it with its navigation and no console error, and the node's parameter table is the
schema's, generated.

The test command (scripts/run_tests.sh) builds the site first (scripts/build_docs.sh,
every warning an error); run alone, this module builds it when it is missing. CI installs
Debian's ``chromium`` (.ci/run); elsewhere the browser test skips, saying so.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from headless_chromium import Chromium, find_chromium

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "docs_output" / "rt2_ros"
INDEX = SITE / "index.html"
#: Where the render test leaves its picture: beside the site it checked.
SCREENSHOT = SITE / "_screenshots" / "index.png"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: The guide's pages, as their titles appear in the navigation.
GUIDE = [
    "Getting started",
    "The rt2 node",
    "Safety",
    "Models and action formats",
    "Remote serving and scaling",
    "Training",
    "Simulation and the demo",
    "Benchmarks",
    "Design",
    "API reference",
]


@pytest.fixture(scope="module")
def site() -> Path:
    """The built site (built here when the test command has not built it)."""
    if not INDEX.is_file():
        if shutil.which("rosdoc2") is None:
            if IN_CI:
                pytest.fail("rosdoc2 is missing in CI: requirements/docs.txt must be installed (scripts/bootstrap.sh)")
            pytest.skip("rosdoc2 not installed (pip install -r requirements/docs.txt)")
        p = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build_docs.sh")], capture_output=True, text=True, timeout=1200
        )
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return SITE


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; CI must have it."""
    path = find_chromium()
    if path is None:
        if IN_CI:
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium); CI installs it")
    return path


def test_index_renders_with_its_navigation_and_no_console_error(site, chromium):
    with Chromium(chromium) as browser:
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable")
        browser.send("Page.navigate", {"url": INDEX.as_uri()})
        browser.wait_for_event("Page.loadEventFired")
        nav = browser.evaluate(
            "Array.from(document.querySelectorAll('.wy-menu-vertical a')).map(a => a.textContent.trim())"
        )
        side_width = browser.evaluate("document.querySelector('.wy-nav-side').getBoundingClientRect().width")
        title = browser.evaluate("document.querySelector('h1').textContent")
        png = browser.screenshot(SCREENSHOT)
        errors = browser.console_errors()
    assert errors == [], errors
    assert "rt2_ros" in title
    missing = [page for page in GUIDE if page not in nav]
    assert missing == [], f"pages missing from the navigation: {missing} (it has {nav})"
    assert side_width > 100, "the navigation sidebar is not laid out (theme CSS not loaded?)"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_parameter_table_lists_every_parameter_the_node_declares(site):
    from rt2_ros.config import RT2Config, flat_fields

    page = (site / "node.html").read_text()
    table = page[page.index("rt2-parameters") :]
    table = table[: table.index("</table>")]
    documented = re.findall(r'<tr class="row-[a-z]+"><td><p><code[^>]*><span class="pre">([a-z0-9_.]+)</span>', table)
    declared = [name for name, _, _ in flat_fields(RT2Config)]
    assert documented == declared
    # a default and a range shown as the schema has them
    row = table[table.index(">control.period_s<") :]
    row = html.unescape(re.sub(r"<[^>]+>", " ", row[: row.index("</tr>")]))
    assert " 0.2 " in row and "> 0.0 and <= 10.0" in row
