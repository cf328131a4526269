"""The explorer page in a real headless browser, against a real ``tripletrec serve``.

Debian's chromium (``/usr/bin/chromium``, ``/usr/bin/chromedriver``, the packages
``chromium`` and ``chromium-driver``) driven through selenium; nothing is downloaded at run
time. Without the browser the test skips and says why.

``TRIPLETREC_EXPLORER_SCREENSHOT=docs/explorer.png`` also saves a screenshot of the page
with the recommendations showing (how ``docs/explorer.png`` was taken).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from _serve_process import serve_process

import tripletrec as tr

pytest.importorskip("selenium", reason="selenium is not installed (the test extra has it)")
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
)  # fmt: skip
WAIT = 60  # seconds; generous, the cores are shared
QUERIES = ("death note", "fullmetal", "toradora")  # typed into the search box
# Every /explain request of the page answered by a 500 from here on.
BROKEN_EXPLAIN = """
const realFetch = window.fetch;
window.fetch = (url, init) => String(url).startsWith("/explain")
  ? Promise.resolve(new Response('{"detail": "broken"}', {status: 500}))
  : realFetch(url, init);
"""


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(f"{base}{path}", timeout=30) as response:
        return json.loads(response.read())


def _post(base: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}{path}", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(
            f"no headless browser: {', '.join(missing)} absent "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        # Selenium Manager would look for drivers online; both paths are given, it must not.
        patch.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(options=options, service=ChromeService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(anime_tv, tmp_path_factory):
    model = tr.TripletRecommender(epochs=2, random_state=0).fit(anime_tv.positives(7))
    path = model.save(tmp_path_factory.mktemp("explorer") / "model")
    with serve_process(str(path), start_timeout=60) as (_, base):
        yield base


def _wait(driver) -> WebDriverWait:
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))


def _texts(driver, css: str) -> list[str]:
    """The text of every element matching ``css``, read at one instant (the page replaces
    its lists wholesale: element by element, one could go stale between two reads)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), n => n.innerText.trim())",
        css,
    )


def _pick(driver, text: str) -> str:
    """Type ``text`` into the item search, wait for the suggestions, click the first."""
    box = driver.find_element(By.ID, "item-search")
    box.click()
    box.send_keys(text)
    wait = _wait(driver)
    wait.until(
        lambda d: (
            (names := _texts(d, "#item-results li .name"))
            and all(text.lower() in name.lower() for name in names)
        )
    )
    first = driver.find_element(By.CSS_SELECTOR, "#item-results li .name")
    name = first.text
    first.click()
    wait.until(lambda d: name in _texts(d, "#history li .name"))
    return name


def test_search_pick_and_recommend_shows_named_items(browser, server):
    driver = browser
    driver.get(f"{server}/")
    wait = _wait(driver)
    wait.until(lambda d: "items" in d.find_element(By.ID, "model-info").text)

    picked = [_pick(driver, query) for query in QUERIES]
    assert picked[0] == "Death Note" and picked[1].startswith("Fullmetal")
    assert _texts(driver, "#history li .name") == picked

    driver.find_element(By.ID, "recommend").click()
    wait.until(lambda d: len(_texts(d, "#recommendations li .name")) == 10)
    shown = _texts(driver, "#recommendations li .name")
    # The page shows what the service answers for that history, by name.
    history = [_get(server, f"/items?query={quote(q)}&limit=1")["items"][0] for q in QUERIES]
    history = [row["item_id"] for row in history]
    status, expected = _post(server, "/recommend", {"history": history, "k": 10})
    assert status == 200
    assert shown == [row["name"] for row in expected["items"]]
    assert all(shown) and not set(shown) & set(picked)

    # "because you liked ...": the history items /explain names for each recommendation.
    wait.until(lambda d: len(_texts(d, "#recommendations .why")) == 10)
    wait.until(lambda d: "…" not in "".join(_texts(d, "#recommendations .why")))
    whys = _texts(driver, "#recommendations .why")
    for why, row in zip(whys, expected["items"]):
        status, reasons = _post(server, "/explain", {"history": history, "item": row["item_id"]})
        assert status == 200
        # As the page words it: shares as whole percents (JavaScript's rounding).
        named = [
            f"{r['name']} ({math.floor(100 * r['share'] + 0.5)} %)"
            for r in reasons["items"]
            if r["share"] >= 0.005
        ][:3]
        assert named and why.replace("\xa0", " ") == f"because you liked {', '.join(named)}"

    target = os.environ.get("TRIPLETREC_EXPLORER_SCREENSHOT")
    if target:
        driver.set_window_size(1280, 1180)  # all ten recommendations in view
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(target))

    # Nothing the page loaded came from another origin, and no script error happened.
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(url.startswith(server) for url in urls), urls
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors

    # Where /explain fails, the recommendations still show, without the line.
    driver.execute_script(BROKEN_EXPLAIN)
    driver.find_element(By.ID, "recommend").click()
    wait.until(
        lambda d: (
            not d.find_elements(By.CSS_SELECTOR, "#recommendations .why")
            and _texts(d, "#recommendations li .name") == shown
        )
    )
    assert driver.find_element(By.ID, "status").text.startswith("Top 10")


def test_known_user_history_recommendations_and_similar(browser, server):
    driver = browser
    driver.get(f"{server}/")
    wait = _wait(driver)
    user = _get(server, "/users?limit=1")["users"][0]["user"]
    box = driver.find_element(By.ID, "user-search")
    box.send_keys(str(user))
    driver.find_element(By.ID, "show-user").click()

    history = _get(server, f"/history?user={user}")
    names = [row["name"] for row in history["items"]]
    wait.until(lambda d: _texts(d, "#user-history li .name") == names[:50])
    recs = _get(server, f"/recommend?user={user}&k=10")["items"]
    wait.until(lambda d: _texts(d, "#recommendations li .name") == [r["name"] for r in recs])
    wait.until(lambda d: "…" not in "".join(_texts(d, "#recommendations .why")))
    whys = _texts(driver, "#recommendations .why")  # from GET /explain?user=..
    assert whys and all(why.startswith("because you liked ") for why in whys), whys
    assert any(name in why for why in whys for name in names)

    # Similar items of the first recommendation, by name.
    driver.find_element(By.CSS_SELECTOR, "#recommendations li .actions button").click()
    similar = _get(server, f"/similar?item={recs[0]['item_id']}&k=10")["items"]
    wait.until(lambda d: _texts(d, "#similar li .name") == [r["name"] for r in similar])
    assert recs[0]["name"] in driver.find_element(By.ID, "similar-title").text

    # An unknown user: a message on the page, no stale recommendations.
    box.clear()
    box.send_keys("123456789")
    driver.find_element(By.ID, "show-user").click()
    wait.until(lambda d: "unknown user" in d.find_element(By.ID, "status").text)
    assert not _texts(driver, "#recommendations li")
