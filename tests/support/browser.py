"""Headless Chromium driven by Selenium, from Debian's ``chromium`` and ``chromium-driver``: Selenium
is pointed at the Debian chromedriver, so it downloads nothing (this machine has no network)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.docker import listen_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: What headless Chromium needs as root on a machine without network or a large /dev/shm.
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    "--hide-scrollbars",
)


def missing() -> str | None:
    """What is missing to run the browser tests, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(path) is None:
            return f"{path} is missing: apt-get install {package} (make test installs it)"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with a profile of its own, closed afterwards."""
    profile = tempfile.mkdtemp(prefix="desk-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (*ARGUMENTS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(argument)
    # chromedriver's port from below the ephemeral range: Selenium's own pick (a port the kernel
    # just found free) can be taken by an outgoing connection before chromedriver binds it.
    service = Service(executable_path=CHROMEDRIVER, port=listen_port(), log_output=os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_window_size(width, height)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
