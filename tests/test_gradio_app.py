"""The demo, for real: the app served on 127.0.0.1, called through gradio_client and driven in Chromium."""

import io
import os
import shutil
import socket
import threading

import numpy as np
import PIL.Image
import pytest
from conftest import REPO_ROOT
from test_model import make_model

from rfr_pipeline import RFRInpaintPipeline

gradio_app = pytest.importorskip("gradio_app", reason="gradio is not installed")
from gradio_client import Client, handle_file

EXAMPLES = REPO_ROOT / "examples"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    RFRInpaintPipeline(rfrnet=make_model(sample_size=64)).save_pretrained(folder)
    demo = gradio_app.build_demo(gradio_app.Inpainter(str(folder)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gradio_app.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def editor_value(photo, layer=None):
    return {"background": handle_file(str(photo)), "layers": [handle_file(str(layer))] if layer else [],
            "composite": None}


def painted(layer_path):
    return np.asarray(PIL.Image.open(layer_path).convert("RGBA"))[..., 3] > 0


def test_api_returns_an_inpainted_png_with_the_rest_untouched(app_url):
    client = Client(app_url, verbose=False)
    path, status = client.predict(editor_value(EXAMPLES / "ball_photo.png", EXAMPLES / "ball_mask.png"), "auto", 0,
                                  api_name="/inpaint")
    result = PIL.Image.open(path)
    source = np.asarray(PIL.Image.open(EXAMPLES / "ball_photo.png").convert("RGB"))
    hole = painted(EXAMPLES / "ball_mask.png")
    assert result.format == "PNG" and result.size == (source.shape[1], source.shape[0])
    out = np.asarray(result.convert("RGB"))
    assert np.array_equal(out[~hole], source[~hole]) and (out[hole] != source[hole]).any()
    assert status.startswith("Done in")


def test_api_explains_what_is_wrong(app_url, tmp_path):
    client = Client(app_url, verbose=False)
    photo = EXAMPLES / "ball_photo.png"
    with pytest.raises(Exception, match="Paint over the part"):
        client.predict(editor_value(photo), "auto", 0, api_name="/inpaint")
    full = tmp_path / "full.png"
    PIL.Image.new("RGBA", PIL.Image.open(photo).size, (0, 0, 0, 255)).save(full)
    with pytest.raises(Exception, match="covers the whole photo"):
        client.predict(editor_value(photo, full), "auto", 0, api_name="/inpaint")
    with pytest.raises(Exception, match="Upload a photo first"):
        client.predict({"background": None, "layers": [], "composite": None}, "auto", 0, api_name="/inpaint")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    with pytest.raises(Exception, match="cannot identify image file|not an image the demo can read"):
        client.predict(editor_value(not_an_image), "auto", 0, api_name="/inpaint")


def test_too_large_photos_get_a_message(tmp_path):
    folder = tmp_path / "tiny"
    RFRInpaintPipeline(rfrnet=make_model(sample_size=64)).save_pretrained(folder)
    inpainter = gradio_app.Inpainter(str(folder), max_pixels=1000)
    with pytest.raises(gradio_app.gr.Error, match="up to 0 megapixels|smaller one"):
        inpainter({"background": str(EXAMPLES / "ball_photo.png"), "layers": [str(EXAMPLES / "ball_mask.png")]})


def test_four_concurrent_requests_get_their_own_answers(app_url, tmp_path):
    rng = np.random.default_rng(0)
    cases = []
    client = Client(app_url, verbose=False)
    for n in range(4):
        photo = rng.integers(0, 256, (80 + 16 * n, 96, 3), dtype=np.uint8)
        layer = np.zeros((*photo.shape[:2], 4), np.uint8)
        layer[10 + 5 * n : 30 + 5 * n, 20:50] = (0, 0, 0, 255)
        PIL.Image.fromarray(photo).save(tmp_path / f"p{n}.png")
        PIL.Image.fromarray(layer, "RGBA").save(tmp_path / f"m{n}.png")
        cases.append((photo, layer[..., 3] > 0))
    results = [None] * 4

    def call(n):
        results[n] = client.predict(editor_value(tmp_path / f"p{n}.png", tmp_path / f"m{n}.png"), "auto", 0,
                                    api_name="/inpaint")

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for (photo, hole), result in zip(cases, results):
        assert result is not None
        out = np.asarray(PIL.Image.open(result[0]).convert("RGB"))
        assert out.shape == photo.shape  # each answer has its own request's size...
        assert np.array_equal(out[~hole], photo[~hole])  # ...and its own pixels


def upload(page, url, photo_path):
    from playwright.sync_api import expect

    page.goto(url)
    page.wait_for_load_state("networkidle")  # the app has loaded and hydrated: its upload handler is live
    page.locator("#editor input[type=file]").first.set_input_files(str(photo_path))
    expect(page.locator("#editor").get_by_text("Upload an image")).to_be_hidden(timeout=30_000)  # photo shown
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)


@pytest.mark.skipif(not os.path.exists(CHROMIUM) or shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (.ci/run installs it)")
def test_in_a_real_browser(app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    photo_path = EXAMPLES / "post_photo.png"
    source = np.asarray(PIL.Image.open(photo_path).convert("RGB"))
    height, width = source.shape[:2]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            # The error path: a photo but no paint.
            upload(page, app_url, photo_path)
            page.locator("#run").click()
            expect(page.get_by_text("Paint over the part of the photo to remove")).to_be_visible(timeout=30_000)

            # The happy path: upload, paint a horizontal stroke through the middle, run.
            upload(page, app_url, photo_path)
            box = page.locator("#editor canvas").first.bounding_box()
            zoom = float(page.locator("#editor").get_by_text("%").first.inner_text().strip().rstrip("%")) / 100
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx - 60, cy)
            page.mouse.down()
            for dx in range(-60, 61, 10):
                page.mouse.move(cx + dx, cy, steps=2)
            page.mouse.up()
            page.locator("#run").click()
            result_img = page.locator("#result img")
            expect(result_img).to_be_visible(timeout=120_000)
            expect(page.locator("#status")).to_contain_text("Done in", timeout=120_000)
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            body = page.request.get(result_img.get_attribute("src")).body()
        finally:
            browser.close()
    assert (tmp_path / "demo.png").stat().st_size > 0
    out = np.asarray(PIL.Image.open(io.BytesIO(body)).convert("RGB"))
    assert out.shape == source.shape
    changed = np.argwhere((out != source).any(-1))
    assert len(changed) > 0, "nothing was repainted"
    # The stroke, in image pixels: a horizontal line through the centre, 120 screen px long; the brush reaches
    # 24 px from it, the app grows the mask by 4, and 4 more for antialiased edges.
    half_length, reach = 60 / zoom, 24 + 4 + 4
    rows, cols = changed[:, 0], changed[:, 1]
    assert rows.min() >= height / 2 - reach and rows.max() <= height / 2 + reach, (rows.min(), rows.max())
    assert cols.min() >= width / 2 - half_length - reach and cols.max() <= width / 2 + half_length + reach


def test_examples_are_complete_and_licensed():
    rows = gradio_app.examples()
    assert len(rows) == 4
    assert rows[0][0]["background"].endswith("astronaut_photo.png")  # a face first: the default model's domain
    for (value,) in rows:
        hole = painted(value["layers"][0])
        assert 0 < hole.mean() < 0.5 and PIL.Image.open(value["background"]).size == hole.shape[::-1]
    licence = (EXAMPLES / "LICENSE.md").read_text()
    assert all(name in licence for name in ("coffee_photo.png", "astronaut_photo.png"))
