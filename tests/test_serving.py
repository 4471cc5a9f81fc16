"""The decision service: a real uvicorn server on 127.0.0.1 answering real HTTP requests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest
import uvicorn

from offerpilot.deployment.bundle import Bundle, Exploration
from offerpilot.deployment.manifest import BundleError
from offerpilot.deployment.serving import create_app

EPSILON = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, method: str = "GET", body: Any = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def bundle_dir(small_bundle):
    return small_bundle


@pytest.fixture(scope="module")
def server(bundle_dir):
    """uvicorn serving the app in a thread, on a free loopback port."""
    app = create_app(bundle_dir, Exploration(epsilon=EPSILON), seed=0)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert uv.started
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


def customers(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    offers = ["pct5", "pct10", "pct20", "free_shipping", "points", "content"]
    return [{"user_id": f"u{i}", "features": rng.random(13).round(4).tolist(), "allowed_offers": [o for o in offers if rng.random() < 0.6]} for i in range(n)]


def test_health_and_metadata(server, bundle_dir):
    status, health = call(server + "/health")
    assert status == 200 and health["status"] == "ok"
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    status, meta = call(server + "/metadata")
    assert status == 200 and health["policy_id"] == meta["policy_id"] == manifest["policy_id"]
    assert meta["features"]["names"] == manifest["features"]["names"] and meta["files"] == manifest["files"]
    assert meta["serving"]["exploration"] == "eps0.1+T1"


def test_decide_answers_one_and_many_customers_with_the_logged_distribution(server, bundle_dir):
    bundle = Bundle(bundle_dir)
    status, one = call(server + "/decide", "POST", {"customers": customers(1)})
    assert status == 200 and len(one["decisions"]) == 1
    batch = customers(200, seed=1)
    status, many = call(server + "/decide", "POST", {"customers": batch})
    assert status == 200 and [d["user_id"] for d in many["decisions"]] == [c["user_id"] for c in batch]
    features = np.array([c["features"] for c in batch], np.float32)
    mask = np.array([[o == "none" or o in c["allowed_offers"] for o in bundle.action_ids] for c in batch])
    policy = bundle.action_probs(features, mask)
    expected = (1 - EPSILON) * policy + EPSILON * mask / mask.sum(axis=1, keepdims=True)
    for decision, want, allowed in zip(many["decisions"], expected, mask):
        probs = np.array([decision["probabilities"][o] for o in bundle.action_ids])
        np.testing.assert_allclose(probs, want, atol=1e-12)
        assert allowed[bundle.action_ids.index(decision["offer_id"])]
        assert decision["propensity"] == decision["probabilities"][decision["offer_id"]]
        assert (probs[allowed] >= EPSILON / allowed.sum() - 1e-12).all()
    values = bundle.run(features, mask)[1]
    np.testing.assert_allclose([d["expected_value"] for d in many["decisions"]], values, rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"customers": [{"user_id": "a", "features": [0.1, ', 400, "malformed JSON"),
        ({"customers": [{"user_id": "a", "features": [0.1] * 12, "allowed_offers": []}]}, 422, "customers[0].features: List should have at least 13 items"),
        ({"customers": [{"user_id": "a", "features": [0.1] * 14, "allowed_offers": []}]}, 422, "customers[0].features: List should have at most 13 items"),
        ({"customers": [{"user_id": "a", "features": [0.1] * 13, "allowed_offers": [], "segment": "vip"}]}, 422, "customers[0].segment: Extra inputs are not permitted"),
        ({"customers": [{"user_id": "a", "features": [0.1] * 13, "allowed_offers": ["pct99"]}]}, 422, "customers[0].allowed_offers[0]: Input should be 'none'"),
        ({"customers": [{"user_id": "a", "features": ["x"] + [0.1] * 12, "allowed_offers": []}]}, 422, "customers[0].features[0]"),
        (b'{"customers": [{"user_id": "a", "features": [NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "allowed_offers": []}]}', 422, "finite number"),
        ({"customers": []}, 422, "customers: List should have at least 1 item"),
        ({"user_id": "a", "features": [0.1] * 13, "allowed_offers": []}, 422, "customers: Field required"),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(server, body, status, message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    got, answer = call(server + "/decide", "POST", raw=raw)
    assert got == status and message in answer["error"], answer
    got, good = call(server + "/decide", "POST", {"customers": customers(3)})
    assert got == 200 and len(good["decisions"]) == 3


def test_a_tampered_bundle_is_refused_at_load(bundle_dir, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(bundle_dir, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["objective"]["lam"] = 0.9
    (edited / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"manifest\.json: its content does not match its manifest_sha256"):
        create_app(edited)

    tampered = tmp_path / "tampered"
    shutil.copytree(bundle_dir, tampered)
    card = tampered / "MODEL_CARD.md"
    card.write_text(card.read_text() + "\nedited after export\n")
    result = subprocess.run([sys.executable, "-m", "offerpilot", "serve", "--bundle", str(tampered), "--port", str(free_port())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "MODEL_CARD.md: sha256" in result.stderr and "refusing to load it" in result.stderr


def test_the_serve_command_runs_a_real_server(bundle_dir):
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "offerpilot", "serve", "--bundle", str(bundle_dir), "--port", str(port), "--log-level", "warning",
                              "--epsilon", "0.2", "--seed", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = call(url + "/health")
                break
            except urllib.error.URLError:
                assert child.poll() is None and time.monotonic() < deadline, child.stderr.read().decode() if child.poll() is not None else "timeout"
                time.sleep(0.1)
        assert status == 200
        status, answer = call(url + "/decide", "POST", {"customers": customers(5)})
        assert status == 200 and answer["exploration"] == "eps0.2+T1" and len(answer["decisions"]) == 5
    finally:
        child.terminate()
        child.wait(timeout=30)
