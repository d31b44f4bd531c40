"""Headless Chromium through selenium for the browser tests: Debian's ``chromium`` and
``chromium-driver`` (``tests/browser/install.sh`` installs them), run so that it never reaches
for the network, with a fresh profile per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def _find(names, env: str) -> str | None:
    if os.environ.get(env):  # an explicit path: that one or none
        return os.environ[env] if os.path.isfile(os.environ[env]) else None
    for name in names:
        path = shutil.which(name) or (
            f"/usr/lib/chromium/{name}" if os.path.exists(f"/usr/lib/chromium/{name}") else None
        )
        if path:
            return path
    return None


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here (one line), or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _find(BROWSERS, "GNNGMM_CHROMIUM") is None:
        return "chromium is not installed (tests/browser/install.sh installs it)"
    if _find(DRIVERS, "GNNGMM_CHROMEDRIVER") is None:
        return "chromedriver is not installed (tests/browser/install.sh installs Debian's chromium-driver)"
    return None


@contextmanager
def chromium(extra_flags=()):
    """A selenium Chrome driver on headless Chromium that records the browser console
    (``driver.get_log("browser")``); quit and its profile removed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gnngmm-chromium-")
    options = Options()
    for flag in (*FLAGS, *extra_flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.binary_location = _find(BROWSERS, "GNNGMM_CHROMIUM")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_find(DRIVERS, "GNNGMM_CHROMEDRIVER")), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    """The console entries of level SEVERE since the last call (JavaScript errors, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
