"""In-app purchases from Google Play (SPEC 12.5, issue 14) through a real
web stack and MariaDB, with the sandbox's Google (sandbox/play_gw.py: JWKS,
OAuth token endpoint checking the service-account JWT, purchases API with
acknowledge, signed Pub/Sub pushes) in place of Google.

Buy "on Android" (a push, or the shop's backend posting the token), see the
order, the ledger (Google's commission as the channel fee), the entitlement
on the web and the acknowledgement at Google; a voided purchase revokes;
an acknowledgement that failed is done by cron; forged pushes and a token
of another package are refused and change nothing."""

import os
import sys

import pytest
import requests

from conftest import interop_node_modules, ALL_STACKS, API_KEY, REPO, unique_user

sys.path.insert(0, str(REPO / "sandbox"))
import play_gw  # noqa: E402

AUTH = {"Authorization": "Bearer " + API_KEY}
PACKAGE = "com.example.shop"
AUDIENCE = "https://shop.example.com/pay/notify/googleplay"
PUSHER = "play-rtdn@example-project.iam.gserviceaccount.com"
FEE_BP = 1500
SKU = "ebook-sql"
PLAY_PRODUCT = "ebook_sql"
PRICE = 1990


@pytest.fixture(scope="module")
def google():
    state = play_gw.PlayState(PACKAGE, AUDIENCE, PUSHER)
    srv = play_gw.serve(state)
    yield state
    srv.shutdown()


@pytest.fixture(scope="module", params=ALL_STACKS)
def android(request, harness, google):
    h = harness
    h.ctl("product", "update", "--sku", SKU, "--googleplay-id", PLAY_PRODUCT)
    d = h.run / "googleplay"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    sa = google.service_account_json(str(d / "service_account.json"))
    # a private copy in the stack folder: as root, Apache's children
    # (www-data) may not reach the run folder (a checkout under /root)
    ini = ("\n[googleplay]\nenabled = true\npackage_name = %s\nservice_account = @STACK_DIR@/%s\n"
           "api_base = %s\npush_audience = %s\npush_email = %s\npush_certs_url = %s/oauth2/v3/certs\n"
           "store_fee_bp = %d\n"
           % (PACKAGE, os.path.basename(sa), google.base, AUDIENCE, PUSHER, google.base, FEE_BP))
    st = h.new_stack(request.param, name="gp-" + request.param, extra_ini=ini, extra_files=(sa,))
    try:
        st.start()
    except Exception as e:  # noqa: BLE001
        pytest.fail("stack %s did not start: %s" % (request.param, e))
    yield st
    st.stop()


def token_of(st, user):
    r = requests.get(st.base_url + "/iap/account-token", params={"user": user}, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["account_token"]


def push(st, body, bearer):
    headers = {"Content-Type": "application/json"}
    if bearer is not None:
        headers["Authorization"] = "Bearer " + bearer
    return requests.post(st.base_url + "/notify/googleplay", data=body, headers=headers, timeout=20)


def row_of(h, token):
    import hashlib
    rows = h.query("SELECT * FROM iap_purchases WHERE channel='googleplay' AND store_txn_id=%s",
                   hashlib.sha256(token.encode()).hexdigest())
    return rows[0] if rows else None


def entitled(st, user):
    r = requests.get(st.base_url + "/entitlements", params={"user": user}, headers=AUTH, timeout=10)
    return [e["product"] for e in r.json()["entitlements"]]


def test_android_purchase_acknowledged_and_voided(android, harness, google):
    h = harness
    user = unique_user("android")
    token = google.buy(PLAY_PRODUCT, token_of(android, user))
    r = push(android, google.rtdn("purchased", token, PLAY_PRODUCT), google.push_token())
    assert r.status_code == 200, r.text
    row = row_of(h, token)
    assert row and row["status"] == "PAID" and row["user_ref"] == user and row["acknowledged"] == 1
    assert google.acknowledged(token)
    order = h.query("SELECT * FROM orders WHERE id=%s", row["order_id"])[0]
    assert (order["status"], order["amount_fen"]) == ("PAID", PRICE)
    pay = h.query("SELECT * FROM payments WHERE order_id=%s", row["order_id"])[0]
    assert (pay["channel"], pay["fee_fen"]) == ("googleplay", (PRICE * FEE_BP + 5000) // 10000)
    assert SKU in entitled(android, user)
    # the push again: nothing more
    assert push(android, google.rtdn("purchased", token, PLAY_PRODUCT), google.push_token()).status_code == 200
    assert len(h.query("SELECT id FROM orders WHERE user_ref=%s", user)) == 1
    # Google voids it (refund, chargeback): REFUNDED and revoked
    google.void(token)
    assert push(android, google.rtdn("voided", token), google.push_token()).status_code == 200
    order = h.query("SELECT * FROM orders WHERE id=%s", row["order_id"])[0]
    assert (order["status"], order["refunded_fen"]) == ("REFUNDED", PRICE)
    assert SKU not in entitled(android, user)


def test_backend_posts_purchase_token(android, harness, google):
    user = unique_user("gpost")
    token = google.buy(PLAY_PRODUCT, token_of(android, user))
    body = {"user": user, "product": PLAY_PRODUCT, "purchase_token": token}
    r = requests.post(android.base_url + "/iap/googleplay", headers=AUTH, json=body, timeout=20)
    assert r.status_code == 201, r.text
    assert r.json()["channel"] == "googleplay"
    r2 = requests.post(android.base_url + "/iap/googleplay", headers=AUTH, json=body, timeout=20)
    assert r2.status_code == 200 and r2.json()["order_no"] == r.json()["order_no"]
    assert google.acknowledged(token)
    r = requests.post(android.base_url + "/iap/googleplay", headers=AUTH, timeout=20,
                      json=dict(body, user=unique_user("thief")))
    assert r.status_code == 409, r.text
    pending = google.buy(PLAY_PRODUCT, token_of(android, user), state=2)
    r = requests.post(android.base_url + "/iap/googleplay", headers=AUTH, timeout=20,
                      json={"user": user, "product": PLAY_PRODUCT, "purchase_token": pending})
    assert r.status_code == 409, r.text
    assert row_of(harness, pending) is None


def test_failed_acknowledge_is_done_by_cron(android, harness, google):
    user = unique_user("ack")
    token = google.buy(PLAY_PRODUCT, token_of(android, user))
    google.ack_fails = True
    try:
        assert push(android, google.rtdn("purchased", token, PLAY_PRODUCT), google.push_token()).status_code == 200
    finally:
        google.ack_fails = False
    assert row_of(harness, token)["acknowledged"] == 0 and not google.acknowledged(token)
    harness.ctl("cron", config=android.config)
    assert row_of(harness, token)["acknowledged"] == 1 and google.acknowledged(token)


def test_test_notification_acknowledged(android, google):
    assert push(android, google.rtdn("test"), google.push_token()).status_code == 200


@pytest.mark.parametrize("fault", [None, "other_key", "audience", "email", "expired", "alg_none", "unknown_kid"])
def test_attack_forged_push_refused(android, harness, google, fault):
    user = unique_user("gatk")
    token = google.buy(PLAY_PRODUCT, token_of(android, user))
    bearer = None if fault is None else google.push_token(fault)
    r = push(android, google.rtdn("purchased", token, PLAY_PRODUCT), bearer)
    assert r.status_code == 401, r.text
    assert row_of(harness, token) is None and not google.acknowledged(token)


def test_attack_other_package_refused(android, harness, google):
    user = unique_user("gpkg")
    token = google.buy(PLAY_PRODUCT, token_of(android, user), package_name="com.attacker.app")
    r = push(android, google.rtdn("purchased", token, PLAY_PRODUCT, package_name="com.attacker.app"),
             google.push_token())
    assert r.status_code == 400, r.text
    # our package in the push, but the token is another package's: Google knows no such purchase
    r = push(android, google.rtdn("purchased", token, PLAY_PRODUCT), google.push_token())
    assert r.status_code == 200, r.text
    r = requests.post(android.base_url + "/iap/googleplay", headers=AUTH, timeout=20,
                      json={"user": user, "product": PLAY_PRODUCT, "purchase_token": token})
    assert r.status_code == 400, r.text
    assert row_of(harness, token) is None


def test_jose_verifies_paygates_service_account_jwt(android, google):
    """Interop: the assertions paygate posted to the token endpoint verify
    with `jose` (RS256, iss = client_email, aud = token_uri, at most an hour)."""
    import json
    import shutil
    import subprocess
    interop = interop_node_modules("jose")
    if not google.assertions:
        user = unique_user("jose")
        token = google.buy(PLAY_PRODUCT, token_of(android, user))
        requests.post(android.base_url + "/iap/googleplay", headers=AUTH, timeout=20,
                      json={"user": user, "product": PLAY_PRODUCT, "purchase_token": token})
    assert google.assertions, "paygate never asked for a token"
    items = [{"jwt": google.assertions[-1], "spki": google.sa_public_pem(), "alg": "RS256",
              "issuer": google.sa_email, "audience": google.base + "/token"}]
    out = subprocess.run(["node", str(interop / "jwt_check.js")], input=json.dumps(items), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    res = json.loads(out.splitlines()[0])
    assert res["ok"], out
    assert res["claims"]["scope"] == "https://www.googleapis.com/auth/androidpublisher"
    assert res["claims"]["exp"] - res["claims"]["iat"] <= 3600
