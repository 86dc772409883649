"""A real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium) for the UI tests.

Nothing leaves 127.0.0.1: every host name resolves to nothing except the names a test maps to 127.0.0.1
(Chromium's `--host-resolver-rules`), and Chromium's own background traffic (updates, sync, safe browsing) is off.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = "apt-get install chromium chromium-driver && pip install -r requirements-dev.txt (selenium)"


def missing() -> str | None:
    """One line saying what to install, or None when the browser, its driver and Selenium are all here."""
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        absent.append("selenium")
    return f"browser tests need {', '.join(absent)}: {INSTALL_HINT}" if absent else None


def _resolver_rules(hosts: Mapping[str, str]) -> str:
    return ", ".join([*(f"MAP {name} {ip}" for name, ip in hosts.items()), "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"])


class Browser:
    """One headless Chromium window; `hosts` maps host names to 127.0.0.1 inside this browser only."""

    def __init__(self, hosts: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            f"--host-resolver-rules={_resolver_rules(hosts or {})}",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-features=Translate,OptimizationHints,MediaRouter",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(60)
        self.console: list[dict[str, Any]] = []
        self.network: list[dict[str, Any]] = []
        if auth is not None:  # what the browser sends after the user answers the login prompt
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.driver.execute_cdp_cmd("Network.enable", {})
            self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})

    def open(self, url: str) -> None:
        self.driver.get(url)

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 45) -> Any:
        """Poll `check` until it returns something truthy; fail naming `what` (the page is saved on failure)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = check()
            except Exception:  # an element replaced while React re-renders: look again
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} at {self.driver.current_url}")
            time.sleep(0.5)

    def click_text(self, text: str, timeout: float = 45) -> None:
        """Click the visible element whose own text is `text`, once the page lets it be clicked (React may
        render it before it takes clicks: retried until then)."""

        def click() -> bool:
            found = self.driver.find_elements("xpath", f"//*[normalize-space(text())='{text}']")
            next(e for e in found if e.is_displayed()).click()
            return True

        self.wait(f"{text!r} to click", click, timeout)

    def text(self) -> str:
        return self.driver.find_element("tag name", "body").text

    def wait_text(self, needle: str, timeout: float = 45) -> None:
        self.wait(f"{needle!r} on the page", lambda: needle in self.text(), timeout)

    def responses(self) -> list[dict[str, Any]]:
        """Every HTTP response the page received so far (Chrome's performance log: Network.responseReceived)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.responseReceived":
                self.network.append(message["params"]["response"])
        return self.network

    def page_response(self, url: str) -> dict[str, Any]:
        """The HTTP response the browser got for the page itself (`url` without its `#` fragment), with its
        `status` and its `headers` (names lower-cased)."""
        page = url.split("#")[0]
        found = self.wait(f"the response for {page}", lambda: next(r for r in self.responses() if r["url"] == page))
        return {**found, "headers": {k.lower(): v for k, v in found["headers"].items()}}

    def save(self, folder: Path) -> list[Path]:
        """A screenshot, the console log and the HTTP responses seen: what a failed test leaves to look at."""
        folder.mkdir(parents=True, exist_ok=True)
        shot, console, network = folder / "screenshot.png", folder / "console.log", folder / "responses.log"
        self.driver.save_screenshot(str(shot))
        self.console += self.driver.get_log("browser")
        console.write_text("\n".join(f"{e['level']} {e['message']}" for e in self.console) + "\n")
        network.write_text("\n".join(f"{r['status']} {r['url']}" for r in self.responses()) + "\n")
        return [shot, console, network]

    def close(self) -> None:
        self.driver.quit()
