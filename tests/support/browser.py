"""A person's browser for the web app's tests: Debian's headless Chromium driven by selenium
through Debian's chromedriver, watched for console errors, uncaught errors and
Content-Security-Policy violations from before the page's own script runs; controls found the
way a screen reader finds them (by their accessible name, as Chromium computes it); and
axe-core (bundled by axe-selenium-python) for what is wrong with a screen's accessibility."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

# Debian's packages (as .ci/run installs them), or a Chrome and chromedriver found on PATH.
CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
# As root, in a container, with no network but loopback: nothing that phones home.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
)
DESKTOP = (1280, 860)
PHONE = (390, 844)  # an iPhone 12 to 15's screen, in CSS pixels
# Narrower than this is a phone: emulated as one (touch, overlay scroll bars, its density);
# a headless window alone cannot be made that narrow.
PHONE_WIDTH_MAX = 600
PHONE_DENSITY = 2
WAIT_S = 30
# Recorded from before the page's own script runs (DevTools injects it; CSP does not apply).
WATCH = """
window.__violations = [];
window.__errors = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
window.addEventListener("error", (e) => window.__errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason)));
"""


@contextlib.contextmanager
def chromium(profile: Path, size: tuple[int, int] = DESKTOP) -> Iterator[webdriver.Chrome]:
    assert CHROMIUM and CHROMEDRIVER, "install Debian's chromium and chromium-driver packages"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(profile.parent / f"{profile.name}.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
        if size[0] < PHONE_WIDTH_MAX:
            metrics = {"width": size[0], "height": size[1], "mobile": True}
            metrics["deviceScaleFactor"] = PHONE_DENSITY
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})
        yield driver
    finally:
        driver.quit()


def wait(driver, what: str, check, timeout: float = WAIT_S):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: check())
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; console: {console(driver)}") from None


def console(driver) -> list[dict]:
    """Console messages since the last call (Chromium's log is read once)."""
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def named(driver, css: str, name: str) -> WebElement:
    """The element matching ``css`` whose accessible name (as a screen reader gets it,
    computed by Chromium) is ``name``; exactly one."""
    found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.accessible_name == name]
    assert len(found) == 1, f"{len(found)} {css} named {name!r}"
    return found[0]


def appears(driver, css: str, name: str) -> WebElement | None:
    """For ``wait``: the element ``named`` finds, or None while there is none (yet)."""
    try:
        found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.accessible_name == name]
    except StaleElementReferenceException:
        return None
    assert len(found) <= 1, f"{len(found)} {css} named {name!r}"
    return found[0] if found else None


def names(driver, css: str) -> list[str] | None:
    """The accessible names of the elements matching ``css`` (None mid-render)."""
    try:
        return [e.accessible_name for e in driver.find_elements(By.CSS_SELECTOR, css)]
    except StaleElementReferenceException:
        return None


def click(driver, element: WebElement) -> None:
    """Click as a person would: scrolled to the middle first, clear of the fixed player bar
    (WebDriver scrolls only until the element is somewhere in the window)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def accessibility_problems(driver) -> list[str]:
    """What axe-core finds wrong with the page as it is now: names, roles, ARIA, contrast,
    landmarks, and so on."""
    axe = Axe(driver)
    axe.inject()
    violations = axe.run()["violations"]
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations]


def assert_clean(driver) -> None:
    """No console error or warning, no policy violation, no uncaught error; and proof that
    each of those watches sees what it is there for."""
    assert console(driver) == []
    assert driver.execute_script("return window.__violations") == []
    assert driver.execute_script("return window.__errors") == []
    driver.execute_script("console.error('seen'); document.body.setAttribute('style', 'x')")
    wait(driver, "a violation", lambda: driver.execute_script("return window.__violations"))
    assert any("seen" in entry["message"] for entry in console(driver))


def database_env(postgres) -> dict[str, str]:
    """``mosic serve``'s settings for a test's database: none (SQLite in the data dir), or
    the given PostgreSQL database (a ``PostgresConfig``)."""
    if postgres is None:
        return {}
    return {
        "MOSIC_DB_HOST": postgres.host,
        "MOSIC_DB_PORT": str(postgres.port),
        "MOSIC_DB_USER": postgres.user,
        "MOSIC_DB_NAME": postgres.name,
    }


def sign_in(driver, base: str, key: str) -> None:
    """Open the app and give it ``key`` in its "API key" field."""
    driver.get(base + "/")
    field = wait(driver, "the key prompt", lambda: named(driver, "input", "API key"))
    field.send_keys(key, Keys.ENTER)
    wait(driver, "the app", lambda: driver.find_elements(By.ID, "view-heading"))
