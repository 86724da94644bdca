"""The web chat page in headless Chromium (Debian's chromium + chromium-driver, installed by .ci/run):
send a message, see the streamed answer, the recommended titles, posters and explanations, and a
screenshot that is not blank. Fails (never skips) when the browser is missing."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import pytest

from agent.core.config import Settings
from agent.server.app import create_app
from agent.server.io import BackgroundServer
from tests.fakes.server import FakeChatAgent, FakeRecommender
from tests.integration.test_server import TOKEN, real_agent, server_url  # noqa: F401 - fixtures for the real test

WAIT_S = 30


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("headless Chromium not found: install Debian's packages with "
                    "`apt-get install chromium chromium-driver` (.ci/run does)")
    options = Options()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1100,1400", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", f"--user-data-dir={tempfile.mkdtemp(prefix='recsage-chromium-')}"):
        options.add_argument(flag)
    # An explicit driver path: selenium never tries to download a browser or driver.
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield chrome
    chrome.quit()


def send_message(browser, text: str, image: Path | None = None) -> None:
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.ID, "message")
    box.clear()
    box.send_keys(text)
    if image is not None:
        browser.find_element(By.ID, "image").send_keys(str(image))
    browser.find_element(By.ID, "send").click()


def wait_for_answer(browser, turns: int, timeout_s: float = WAIT_S) -> list:
    """Wait until the page shows ``turns`` finished assistant turns; return the last turn's element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def finished(driver):
        done = driver.find_elements(By.CSS_SELECTOR, ".turn.assistant")
        return len(done) >= turns and driver.find_element(By.ID, "send").is_enabled() and done[-1]

    return WebDriverWait(browser, timeout_s).until(finished)


def page_titles(turn) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in turn.find_elements(By.CSS_SELECTOR, ".item .title")]


def assert_not_blank(png: bytes, path: Path) -> None:
    """A rendered page has many colours and contrast; a blank or failed one does not."""
    from PIL import Image, ImageStat

    path.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, f"screenshot {path} looks blank ({len(colours)} colours)"
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 10, f"screenshot {path} has no contrast"


def test_chat_page_shows_titles_posters_and_explanations(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    recommender = FakeRecommender(tmp_path)
    app = create_app(recommender, FakeChatAgent(recommender), Settings())
    with BackgroundServer(app) as url:
        browser.get(url + "/")
        send_message(browser, "something fun for the kids")
        turn = wait_for_answer(browser, 1)
        expected = recommender.recommend(query="x", k=3)["items"]
        assert page_titles(turn) == [f"{i['title']} ({i['year']})" for i in expected]
        answer = turn.find_element(By.CSS_SELECTOR, ".answer").text
        assert all(i["title"] in answer for i in expected)
        explanations = [e.text for e in turn.find_elements(By.CSS_SELECTOR, ".item .explanation")]
        assert explanations and all(e.endswith("matches your request.") for e in explanations)
        # item 1 has a poster (fetched with the token header into a blob URL), item 2 has none
        WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(
            "const img = document.querySelector('.item[data-id=\"1\"] img');"
            "return img !== null && img.complete && img.naturalWidth > 0;"))
        assert turn.find_element(By.CSS_SELECTOR, '.item[data-id="2"] .noposter').text == "no poster"
        assert_not_blank(browser.get_screenshot_as_png(), tmp_path / "chat.png")

        photo = tmp_path / "photo.png"
        photo.write_bytes(b"JUMANJI")  # the fake reads an image's text from its bytes
        send_message(browser, "like this", image=photo)
        second = wait_for_answer(browser, 2)
        assert page_titles(second)
        assert recommender.calls[-1]["image"] is not None and recommender.calls[-1]["query"] == "like this"
        assert "[image photo.png]" in browser.find_elements(By.CSS_SELECTOR, ".turn.user")[-1].text


def test_chat_page_shows_errors(browser, tmp_path):
    from selenium.webdriver.common.by import By

    recommender = FakeRecommender(tmp_path)
    app = create_app(recommender, FakeChatAgent(recommender), Settings())
    with BackgroundServer(app) as url:
        browser.get(url + "/")
        photo = tmp_path / "blank.png"
        photo.write_bytes(b"silence")
        send_message(browser, "like this", image=photo)
        turn = wait_for_answer(browser, 1)
        assert "error" in turn.get_attribute("class")
        assert "no text found" in turn.find_element(By.CSS_SELECTOR, ".answer").text


def test_voice_note_recorded_in_the_page_reaches_the_server(browser, tmp_path):
    """Chromium's fake microphone (a beep) -> MediaRecorder -> a voice-note upload with the message."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    recommender = FakeRecommender(tmp_path)
    app = create_app(recommender, FakeChatAgent(recommender), Settings())
    with BackgroundServer(app) as url:
        browser.get(url + "/")
        record = browser.find_element(By.ID, "record")
        assert record.is_displayed()
        record.click()
        WebDriverWait(browser, WAIT_S).until(lambda d: record.text == "Stop")
        time.sleep(1.0)
        record.click()
        WebDriverWait(browser, WAIT_S).until(lambda d: "voice-note." in d.find_element(By.ID, "attached").text)
        send_message(browser, "")
        turn = wait_for_answer(browser, 1)
        assert page_titles(turn)
        call = recommender.calls[-1]
        assert call["audio"].suffix in (".webm", ".ogg", ".m4a") and call["audio_bytes"] > 100


@pytest.mark.integration
def test_real_chat_in_the_page(browser, server_url, tmp_path):  # noqa: F811 - the imported fixture
    """The page on the real stack (token typed into the page): the titles it shows are the catalog's
    facts of the items the agent recommended, with the streamed answer beside them."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server_url + "/")
    token = browser.find_element(By.ID, "token")
    WebDriverWait(browser, WAIT_S).until(lambda d: token.is_displayed())  # /healthz says auth is on
    token.send_keys(TOKEN)
    send_message(browser, "recommend a funny animated movie about toys")
    turn = wait_for_answer(browser, 1, timeout_s=600)
    assert "error" not in turn.get_attribute("class"), turn.text
    assert turn.find_element(By.CSS_SELECTOR, ".answer").text.strip()
    cards = turn.find_elements(By.CSS_SELECTOR, ".item")
    assert cards
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for card in cards:
        facts = httpx.get(f"{server_url}/v1/items/{card.get_attribute('data-id')}", headers=headers).json()
        assert card.find_element(By.CSS_SELECTOR, ".title").text == f"{facts['title']} ({facts['year']})"
    assert_not_blank(browser.get_screenshot_as_png(), tmp_path / "real_chat.png")
