"""Both web front ends in a real browser: Debian's Chromium driven by Playwright.

Each app is served on 127.0.0.1; the test uploads ../shared/clips/syncnet_example.avi, waits for the
results, checks the offset shown for every engine against what the library itself reports for the
clip, and checks that the plots rendered. Screenshots go to a temporary folder (printed; run with
``-s`` to see where) for a person to look at.

Skipped only when /usr/bin/chromium (or the playwright package) is absent: CI installs both.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path(os.environ.get("SYNCNET_FCN_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the "
                "browser tests", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright to run the browser tests")

from conftest import REPO, clip_path  # noqa: E402
from syncnet_fcn.service import runnable_engines  # noqa: E402

sys.path.insert(0, str(REPO))  # app.py and app_gradio.py live at the repository root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIP = "syncnet_example.avi"
RESULT_TIMEOUT_MS = 420_000  # a 12.7 s clip on a slow two-core CI machine, every engine


@pytest.fixture(scope="module")
def video() -> Path:
    return clip_path(CLIP)


@pytest.fixture(scope="module")
def library_reports(video) -> dict[str, dict]:
    """What the library says, engine by engine, for the clip the browser uploads."""
    from syncnet_fcn.pipeline import SyncPipeline

    engines = runnable_engines() or ["auto"]
    return {name: report.to_dict() for name, report in SyncPipeline(engines=engines).analyze(video).items()}


@pytest.fixture(scope="module")
def expected_offsets(library_reports) -> dict[str, int]:
    return {name: report["offset_frames"] for name, report in library_reports.items()}


@pytest.fixture(scope="module")
def expected_reliable(library_reports) -> dict[str, bool]:
    return {name: report["reliable"] for name, report in library_reports.items()}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nbrowser screenshots: {folder}")
    return folder


def shown(offset: int) -> str:
    """How both pages write an offset: signed, except zero."""
    return f"{offset:+d} frames" if offset else "0 frames"


# -- Flask ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flask_url(tmp_path_factory):
    from werkzeug.serving import make_server

    from app import create_app

    app = create_app({"SYNC_UPLOAD_DIR": str(tmp_path_factory.mktemp("uploads"))})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_flask_page_shows_every_engine_and_the_plots(page, flask_url, video, expected_offsets, expected_reliable,
                                                     screenshots):
    page.goto(flask_url + "/")
    page.wait_for_selector(".engine-choice input")
    page.screenshot(path=screenshots / "flask_start.png", full_page=True)
    assert page.is_hidden("#progress") and page.is_hidden("#results") and page.is_hidden("#error")
    page.set_input_files("#video", str(video))
    page.click("#analyze-button")
    page.wait_for_selector("#progress:not([hidden])")
    page.wait_for_selector("#results:not([hidden])", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_function("() => [...document.querySelectorAll('.plot img')].every(i => i.complete)")
    page.screenshot(path=screenshots / "flask_results.png", full_page=True)

    assert page.inner_text("#result-video") == CLIP
    for name, offset in expected_offsets.items():
        card = page.locator(f"#engine-{name}")
        assert card.locator(".offset").get_attribute("data-offset") == str(offset)
        assert card.locator(".offset").inner_text() == shown(offset)
        words = card.locator(".words").inner_text()
        assert ("early" in words) if offset > 0 else ("late" in words) if offset < 0 else ("in sync" in words)
        # an unreliable reading reads as a best guess, not as a verdict
        assert words.startswith("no reliable sync (best guess") == (not expected_reliable[name])
    rows = page.locator("#result-table tbody tr")
    assert rows.count() >= len(expected_offsets)
    for plot in ("plot-confidence", "plot-offset-curves", "plot-speaking", "plot-preview"):
        width = page.eval_on_selector(f"#{plot}", "img => img.naturalWidth")
        assert width > 300, f"{plot} did not render"
    assert page.get_attribute("#download-json", "href").startswith("blob:")
    assert not page.js_errors


def test_flask_page_explains_a_bad_upload(page, flask_url, tmp_path, screenshots):
    junk = tmp_path / "not_a_video.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(20_000))
    page.goto(flask_url + "/")
    page.wait_for_selector(".engine-choice input")
    page.set_input_files("#video", str(junk))
    page.click("#analyze-button")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    message = page.inner_text("#error")
    page.screenshot(path=screenshots / "flask_error.png")
    assert "not_a_video.mp4" in message and "Traceback" not in message
    assert page.is_hidden("#results") and page.is_hidden("#progress")
    assert page.is_enabled("#analyze-button")


# -- Gradio -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gradio_url():
    import app_gradio

    demo = app_gradio.demo
    _, url, _ = demo.queue().launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True,
                                    quiet=True, ssr_mode=False)
    yield url.rstrip("/")
    demo.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _upload_to_gradio(page, path: Path) -> None:
    page.set_input_files("#input-video input[type=file]", str(path))
    # the upload is done when the file box lists the file instead of the drop zone
    page.wait_for_selector(f"#input-video .file-preview [aria-label='{path.name}']", timeout=60_000)


def test_gradio_demo_compares_engines_with_plots(page, gradio_url, video, expected_offsets, screenshots):
    page.goto(gradio_url + "/")
    page.wait_for_selector("#analyze")
    _upload_to_gradio(page, video)
    page.click("#analyze")
    page.wait_for_selector("#sync-summary .sync-card", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_selector("#confidence-plot img")
    page.screenshot(path=screenshots / "gradio_results.png", full_page=True)

    for name, offset in expected_offsets.items():
        card = page.locator(f"#sync-summary .sync-card[data-engine='{name}']")
        assert card.get_attribute("data-offset") == str(offset)
        assert card.locator(".sync-offset").inner_text().startswith(shown(offset))
    assert page.eval_on_selector("#confidence-plot img", "img => img.naturalWidth") > 300

    page.get_by_role("tab", name="Offset curves").click()
    page.wait_for_selector("#offset-plot img")
    assert page.eval_on_selector("#offset-plot img", "img => img.naturalWidth") > 300
    page.screenshot(path=screenshots / "gradio_offset_curves.png", full_page=True)

    page.get_by_role("tab", name="Annotated video").click()
    page.wait_for_selector("#annotated-video video")
    page.wait_for_function("() => document.querySelector('#annotated-video video').readyState >= 1",
                           timeout=30_000)
    duration = page.eval_on_selector("#annotated-video video", "v => v.duration")
    assert abs(duration - 12.68) < 0.5
    page.screenshot(path=screenshots / "gradio_annotated_video.png", full_page=True)

    page.get_by_role("tab", name="Faces (stills)").click()
    page.wait_for_selector("#stills-plot img")
    assert page.eval_on_selector("#stills-plot img", "img => img.naturalWidth") > 300
    assert page.locator("#result-json [aria-label='syncnet_example_sync.json']").count() == 1
    assert not page.js_errors


def test_gradio_demo_explains_a_bad_upload(page, gradio_url, tmp_path, screenshots):
    junk = tmp_path / "not_a_video.mp4"
    junk.write_bytes(np.random.default_rng(1).bytes(20_000))
    page.goto(gradio_url + "/")
    page.wait_for_selector("#analyze")
    _upload_to_gradio(page, junk)
    page.click("#analyze")
    toast = page.wait_for_selector("[data-testid='toast-body']", timeout=60_000)
    page.screenshot(path=screenshots / "gradio_error.png")
    message = toast.inner_text()
    assert "not_a_video.mp4" in message and "Traceback" not in message
