"""Debian's chromium driven by selenium, as a person uses the Airflow UI: log in through the form, click."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / ".run" / "test-artifacts"


@contextmanager
def browser(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and DRIVER.exists(), "no chromium here: run include/devstack/chromium.sh"
    options = Options()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver: Any, url: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text == "Sign in").click()
    wait_until(lambda: "/auth/login" not in driver.current_url, 30, "the login did not go through")


def wait_until(condition: Any, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.3)


def screenshot(driver: Any, name: str) -> Path:
    """Saved under .run/test-artifacts/ (kept after the run, for people to look at)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
