"""Drives the `/ui` dashboard in headless Chromium (Debian's package) with Playwright.

Usage: dashboard.py BASE_URL ADMIN_KEY READ_KEY SCREENSHOT_DIR DATASET_DIR

The server holds `digits` (two MNIST versions), `smol` (a chat model) and `minilm` (an
embedding model), and asks for API keys. DATASET_DIR holds IDX files uploaded as a dataset for
a job submitted through the page. Exits non-zero on the first failed check or any console error.
"""

import json
import os
import pathlib
import sys
import time
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE, KEY, READ_KEY = sys.argv[1:4]
SHOTS, DATASET = pathlib.Path(sys.argv[4]), pathlib.Path(sys.argv[5])
CHROMIUM = os.environ.get("LATHE_CHROMIUM", "/usr/bin/chromium")
SHOTS.mkdir(parents=True, exist_ok=True)
expect.set_options(timeout=60_000)


def api(method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    print(f"screenshot {SHOTS / name}.png", flush=True)


def go(page, hash_):
    page.goto(f"{BASE}/ui/#/{hash_}")
    expect(page.locator("#page")).to_have_attribute("data-ready", "true")


def chart_points(page, selector):
    """Points per dataset of the Chart.js chart drawn on the canvas under `selector`."""
    return page.evaluate(
        "s => { const c = Chart.getChart(document.querySelector(s)); "
        "return c ? c.data.datasets.map(d => d.data.filter(v => v !== null).length) : null; }",
        selector,
    )


def stroke(page, points):
    box = page.locator("#draw-canvas").bounding_box()
    scale = box["width"] / 280
    at = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for p in at[1:]:
        page.mouse.move(*p, steps=8)
    page.mouse.up()


SEVEN = [(60, 55), (215, 55), (175, 120), (140, 185), (120, 240)]
THREE = [(75, 70), (120, 40), (185, 50), (200, 95), (170, 130), (125, 140), (175, 150),
         (205, 190), (185, 235), (130, 250), (75, 230)]


def draw_and_predict(page, points, digit):
    page.click("#draw-clear")
    stroke(page, points)
    expect(page.locator("#draw-prediction")).to_have_attribute("data-digit", digit)
    expect(page.locator("#draw-detail")).to_contain_text("attributions of class")
    print(f"drawn {digit}: {page.locator('#draw-detail').inner_text()}", flush=True)


# Console errors a check provokes on purpose (the browser logs every failed request).
EXPECTED_CONSOLE_ERRORS = []


def check_models(page):
    page.goto(f"{BASE}/ui")
    expect(page.locator("#key-needed")).to_be_visible()
    page.fill("#key", KEY)
    page.click("#key-form button")
    expect(page.locator("#model-list")).to_contain_text("digits")
    expect(page.locator("#model-list")).to_contain_text("causal-lm")
    shot(page, "models")
    page.click("#model-list a.model-link:text-is('digits')")
    expect(page.locator("#confusion-matrix tbody tr")).to_have_count(10)
    expect(page.locator("#lineage")).to_contain_text("idx")
    points = chart_points(page, "#training-curves canvas")
    assert points == [5, 5], f"training curves: {points}"


def check_traffic(page):
    go(page, "model/digits")
    page.select_option("#traffic-routes .route >> nth=0 >> select", "1")
    page.fill("#traffic-routes .route >> nth=0 >> input", "30")
    page.click("text=+ route")
    page.select_option("#traffic-routes .route >> nth=1 >> select", "2")
    page.fill("#traffic-routes .route >> nth=1 >> input", "70")
    page.click("#traffic-save")
    expect(page.locator("#traffic-now")).to_contain_text("1: 30 %, 2: 70 %")
    traffic = api("GET", "/v1/models/digits/traffic")["traffic"]
    assert traffic["routes"] == [{"target": "1", "weight": 30}, {"target": "2", "weight": 70}], traffic
    print(f"traffic through the API: {traffic}", flush=True)
    # Another admin changes the split meanwhile: saving this stale page is refused (409, shown
    # with the current value) and changes nothing.
    api("PUT", "/v1/models/digits/traffic", {"routes": [{"target": "2", "weight": 100}]})
    page.fill("#traffic-routes .route >> nth=0 >> input", "50")
    page.click("#traffic-save")
    expect(page.locator("#error")).to_contain_text("409: the traffic policy of model \"digits\" is")
    assert api("GET", "/v1/models/digits/traffic")["traffic"]["routes"] == [{"target": "2", "weight": 100}]
    EXPECTED_CONSOLE_ERRORS.append("status of 409")
    page.reload()
    expect(page.locator("#traffic-now")).to_contain_text("2: 100 %")


def check_draw(page):
    go(page, "draw")
    draw_and_predict(page, SEVEN, "7")
    shot(page, "draw-7")
    draw_and_predict(page, THREE, "3")
    shot(page, "draw-3")


def check_drift_and_metrics(page):
    go(page, "model/digits/2")
    expect(page.locator("#drift")).to_contain_text("rows in the window")
    shot(page, "model")
    go(page, "metrics")
    for _ in range(3):
        api("POST", "/v1/models/digits:predict", {"instances": [[[0] * 28] * 28]})
    expect(page.locator("#live-table")).to_contain_text("digits")
    page.wait_for_function("() => Chart.getChart(document.querySelector('#rate-chart canvas')).data.labels.length >= 4")
    shot(page, "metrics")


def check_job(page):
    for f in sorted(DATASET.iterdir()):
        api("PUT", f"/v1/datasets/digits-small/files/{f.name}", raw=f.read_bytes())
    go(page, "jobs")
    page.fill("#job-name", "digits")
    page.select_option("#job-dataset", "digits-small")
    page.click("#job-form button[type=submit]")
    expect(page.locator("#job-status")).to_contain_text("published version 3")
    assert chart_points(page, "#job-watch canvas")[0] == 5
    expect(page.locator("#jobs")).to_contain_text("succeeded")
    shot(page, "jobs")


def check_chat(page):
    go(page, "chat")
    page.evaluate(
        "() => { window.changes = []; new MutationObserver(() => window.changes.push(performance.now()))"
        ".observe(document.querySelector('#chat-log'), {subtree: true, characterData: true, childList: true}); }"
    )
    page.fill("#chat-temperature", "0")
    page.fill("#chat-max-tokens", "48")
    page.fill("#chat-input", "What is the capital of Germany?")
    page.click("#chat-send")
    expect(page.locator("#chat-log .msg.assistant")).not_to_have_class("msg assistant streaming")
    reply = page.locator("#chat-log .msg.assistant")
    chunks = int(reply.get_attribute("data-chunks"))
    changes = page.evaluate("window.changes")
    assert "Berlin" in reply.inner_text(), reply.inner_text()
    assert chunks >= 3 and len(changes) >= chunks and changes[-1] > changes[1], (chunks, changes[:3])
    print(f"chat: {chunks} streamed pieces over {changes[-1] - changes[1]:.0f} ms: {reply.inner_text()!r}")
    shot(page, "chat")


def check_embeddings(page):
    go(page, "embeddings")
    page.click("#embed-form button")
    expect(page.locator("#embed-result")).to_contain_text("cosine similarity")
    similarity = float(page.locator("#embed-result").get_attribute("data-similarity"))
    assert 0.3 < similarity < 1.0, similarity
    print(f"embeddings: similarity {similarity:.4f}")
    shot(page, "embeddings")


def check_read_key(page):
    """A key with the read scope only: the pages it may see render, the others say what is missing."""
    page.goto(f"{BASE}/ui/#/models")
    page.fill("#key", "not-a-key")
    page.click("#key-form button")
    expect(page.locator("#key-needed")).to_contain_text("not accepted")
    page.fill("#key", READ_KEY)
    page.click("#key-form button")
    expect(page.locator("#key-state")).to_have_text("dash: read")
    expect(page.locator("#model-list")).to_contain_text("digits")
    expect(page.locator("#page .note")).to_contain_text("admin key")
    go(page, "model/digits")
    expect(page.locator("#confusion-matrix tbody tr")).to_have_count(10)
    assert chart_points(page, "#training-curves canvas") == [5, 5]
    go(page, "jobs")
    expect(page.locator("#scope-needed")).to_contain_text("admin scope")
    go(page, "draw")
    expect(page.locator("#scope-needed")).to_contain_text("infer scope")


UNITS = """async () => {
  const ops = await import("./operations.js");
  const digits = await import("./digits.js");
  const buckets = [{le: 0.1, count: 50}, {le: 0.2, count: 100}, {le: Infinity, count: 100}];
  const text = '# HELP x\\nlathe_inference_requests_total{model="m",code="200"} 3\\nup 1\\n';
  const rgba = new Uint8ClampedArray(280 * 280 * 4);
  for (let y = 100; y < 150; y++) for (let x = 30; x < 130; x++) rgba[4 * (y * 280 + x)] = 255;
  const digit = digits.prepareDigit(rgba, 280, 280);
  const ink = [];
  digit.forEach((v, i) => { if (v > 0) ink.push([Math.floor(i / 28), i % 28, v]); });
  return {
    p50: ops.histogramQuantile(0.5, buckets),
    p75: ops.histogramQuantile(0.75, buckets),
    p100: ops.histogramQuantile(1, buckets),
    samples: ops.parseMetrics(text),
    rows: [Math.min(...ink.map(p => p[0])), Math.max(...ink.map(p => p[0]))],
    cols: [Math.min(...ink.map(p => p[1])), Math.max(...ink.map(p => p[1]))],
    values: [...new Set(ink.map(p => p[2]))],
    blank: digits.prepareDigit(new Uint8ClampedArray(280 * 280 * 4), 280, 280),
  };
}"""


def check_units(page):
    """The page's own arithmetic against known values: percentiles, the exposition parser, and
    the MNIST preparation of a 100 x 50 bar (scaled to 20 x 10, its centre of mass at 14, 14)."""
    go(page, "models")
    u = page.evaluate(UNITS)
    assert abs(u["p50"] - 0.1) < 1e-12 and abs(u["p75"] - 0.15) < 1e-12 and abs(u["p100"] - 0.2) < 1e-12, u
    assert u["samples"] == [
        {"name": "lathe_inference_requests_total", "labels": {"model": "m", "code": "200"}, "value": 3},
        {"name": "up", "labels": {}, "value": 1},
    ], u["samples"]
    assert (u["rows"], u["cols"], u["values"]) == ([9, 18], [4, 23], [255]), u
    assert u["blank"] is None, u["blank"]


def main():
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        for check in (check_models, check_units, check_traffic, check_draw, check_drift_and_metrics, check_job, check_chat,
                      check_embeddings):
            t = time.time()
            check(page)
            expect(page.locator("#error")).to_be_hidden()
            print(f"{check.__name__}: ok in {time.time() - t:.1f} s", flush=True)
            errors[:] = [e for e in errors if not any(x in e for x in EXPECTED_CONSOLE_ERRORS)]
            EXPECTED_CONSOLE_ERRORS.clear()
            assert not errors, errors
        reader = browser.new_context().new_page()
        reader.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        reader.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        check_read_key(reader)
        expect(reader.locator("#error")).to_be_hidden()
        print("check_read_key: ok", flush=True)
        assert not errors, errors
        browser.close()
    print("dashboard: every check passed")


main()
