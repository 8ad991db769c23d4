"""In-app purchases from the App Store (SPEC 12.5, issue 14) through a real
web stack and MariaDB, with the sandbox's Apple (sandbox/appstore_gw.py: its
own test PKI, ES256 JWS with x5c, as Apple signs) in place of Apple.

A stack of each kind gets an [appstore] section trusting the sandbox's root;
course-c is mapped to an App Store product id. The tests buy "on the
iPhone" (a notification, or the shop's backend posting the StoreKit 2
transaction), look at the order, the ledger (Apple's commission as the
channel fee), the entitlement on the web, refund through the store, reverse
the refund; then the attacks: each forged or foreign notification is refused
and changes nothing."""

import json
import os
import sys
import threading
import time

import pymysql
import pytest
import requests

from conftest import interop_node_modules, ALL_STACKS, API_KEY, PRICES, REPO, unique_user

sys.path.insert(0, str(REPO / "sandbox"))
import appstore_gw  # noqa: E402

AUTH = {"Authorization": "Bearer " + API_KEY}
BUNDLE = "com.example.shop"
APP_ID = 1234567890
FEE_BP = 3000
SKU = "course-c"
STORE_PRODUCT = "com.example.shop.course_c"
SIGNER = appstore_gw.AppleSigner(BUNDLE, APP_ID, "Production")


@pytest.fixture(scope="module")
def mapped(harness):
    harness.ctl("product", "update", "--sku", SKU, "--appstore-id", STORE_PRODUCT)
    return harness


@pytest.fixture(scope="module")
def apple_api():
    api = appstore_gw.AppStoreServerApi(SIGNER)
    srv = appstore_gw.serve_api(api)
    yield api
    srv.shutdown()


@pytest.fixture(scope="module", params=ALL_STACKS)
def ios(request, mapped, apple_api):
    h = mapped
    root = SIGNER.write(str(h.run / "appstore"))
    os.chmod(root, 0o644)
    os.chmod(os.path.dirname(root), 0o755)
    p8 = apple_api.write_p8(str(h.run / "appstore" / "SubscriptionKey.p8"))
    # the stack gets private copies: as root, Apache's children (www-data)
    # may not reach the run folder (a checkout under /root)
    ini = ("\n[appstore]\nenabled = true\nbundle_id = %s\napp_apple_id = %d\nenvironment = Production\n"
           "root_cert = @STACK_DIR@/%s\nstore_fee_bp = %d\nissuer_id = %s\nkey_id = %s\n"
           "private_key = @STACK_DIR@/%s\napi_base = %s\n"
           % (BUNDLE, APP_ID, os.path.basename(root), FEE_BP, apple_api.issuer_id, apple_api.key_id,
              os.path.basename(p8), apple_api.base))
    st = h.new_stack(request.param, name="iap-" + request.param, extra_ini=ini, extra_files=(root, p8))
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


def notify(st, body):
    return requests.post(st.base_url + "/notify/appstore", data=body,
                         headers={"Content-Type": "application/json"}, timeout=20)


def purchases(h, txn):
    return h.query("SELECT * FROM iap_purchases WHERE channel='appstore' AND store_txn_id=%s", txn)


def entitled(st, user):
    r = requests.get(st.base_url + "/entitlements", params={"user": user}, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return [e["product"] for e in r.json()["entitlements"]]


def order_json(st, order_no):
    r = requests.get(st.base_url + "/orders/" + order_no, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def waiting_on_iap(h, own_thread_id):
    """Another session blocked on iap_purchases: a transaction in LOCK WAIT,
    or a statement on iap_purchases running for a second or more (only a
    blocked one does). Root through the private server's socket: the
    application account lacks PROCESS."""
    conn = pymysql.connect(unix_socket=str(h.db_dir / "mysqld.sock"), user="root", password="",
                           database="paygate", autocommit=True, cursorclass=pymysql.cursors.DictCursor)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT trx_id FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
                        " AND trx_mysql_thread_id <> %s", (own_thread_id,))
            if cur.fetchall():
                return True
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND ID <> %s"
                        " AND INFO LIKE %s AND TIME >= 1", (own_thread_id, "%iap_purchases%"))
            return bool(cur.fetchall())
    finally:
        conn.close()


def fee_of(amount):
    return (amount * FEE_BP + 5000) // 10000


def test_account_token_is_stable_uuid_not_the_user(ios):
    user = unique_user("tok")
    t1, t2 = token_of(ios, user), token_of(ios, user)
    assert t1 == t2 and len(t1) == 36 and t1[14] == "4" and user not in t1
    assert token_of(ios, user + "x") != t1
    r = requests.get(ios.base_url + "/iap/account-token", params={"user": user}, timeout=10)
    assert r.status_code == 401


def test_iphone_purchase_refund_and_reversal(ios, harness):
    h = harness
    user = unique_user("iphone")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user), price_milli=98000)
    r = notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx))
    assert r.status_code == 200, r.text
    [row] = purchases(h, tx["transactionId"])
    assert row["status"] == "PAID" and row["user_ref"] == user and row["anomaly"] is None
    order = h.query("SELECT * FROM orders WHERE id=%s", row["order_id"])[0]
    o = order_json(ios, order["order_no"])
    assert (o["status"], o["channel"], o["amount_fen"]) == ("PAID", "appstore", 9800), o
    assert SKU in entitled(ios, user)
    pay = h.query("SELECT * FROM payments WHERE order_id=%s", row["order_id"])[0]
    assert pay["fee_fen"] == fee_of(9800) == 2940
    led = h.query("SELECT account, amount_fen FROM ledger_entries WHERE txn_id=%s",
                  "pay:" + pay["payment_no"])
    assert sum(e["amount_fen"] for e in led) == 0
    assert {e["account"]: e["amount_fen"] for e in led}["fees:appstore"] == -2940, led

    # Apple sends it again (and the app posts it too): nothing more
    assert notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx)).status_code == 200
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": user, "signed_transaction": SIGNER.sign(tx)})
    assert r.status_code == 200 and r.json()["order_no"] == order["order_no"], r.text
    assert len(h.query("SELECT id FROM orders WHERE user_ref=%s", user)) == 1

    # refund through the store: REFUNDED, revoked, ledger reversed
    rtx = dict(tx, revocationDate=int(time.time() * 1000), revocationReason=0)
    assert notify(ios, SIGNER.notification("REFUND", rtx)).status_code == 200
    o = order_json(ios, order["order_no"])
    assert (o["status"], o["refunded_fen"]) == ("REFUNDED", 9800), o
    assert SKU not in entitled(ios, user)
    assert notify(ios, SIGNER.notification("REFUND", rtx)).status_code == 200   # again: once
    assert len(h.query("SELECT id FROM refunds WHERE order_id=%s", row["order_id"])) == 1

    # Apple reverses the refund: PAID again, owned again, the ledger nets the payment
    assert notify(ios, SIGNER.notification("REFUND_REVERSED", tx)).status_code == 200
    o = order_json(ios, order["order_no"])
    assert (o["status"], o["refunded_fen"]) == ("PAID", 0), o
    assert SKU in entitled(ios, user)
    net = h.query("SELECT SUM(amount_fen) AS s FROM ledger_entries WHERE account='fees:appstore'"
                  " AND payment_id=%s", pay["id"])[0]["s"]
    assert net == -2940


def test_refund_before_purchase_notification(ios, harness):
    """Reordered: Apple's REFUND arrives before its ONE_TIME_CHARGE. The
    purchase is recorded from the refund's signed transaction and refunded
    at once; the late ONE_TIME_CHARGE is a duplicate: no entitlement."""
    user = unique_user("reorder")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    rtx = dict(tx, revocationDate=int(time.time() * 1000), revocationReason=1)
    assert notify(ios, SIGNER.notification("REFUND", rtx)).status_code == 200
    assert notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx)).status_code == 200
    [row] = purchases(harness, tx["transactionId"])
    assert row["status"] == "REFUNDED"
    o = harness.query("SELECT status, refunded_fen, amount_fen FROM orders WHERE id=%s", row["order_id"])[0]
    assert (o["status"], o["refunded_fen"]) == ("REFUNDED", o["amount_fen"])
    assert SKU not in entitled(ios, user)


def test_backend_posts_storekit_transaction(ios, harness):
    user = unique_user("sk2")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    body = {"user": user, "signed_transaction": SIGNER.sign(tx)}
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, json=body, timeout=20)
    assert r.status_code == 201, r.text
    order_no = r.json()["order_no"]
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, json=body, timeout=20)
    assert r.status_code == 200 and r.json()["order_no"] == order_no
    assert SKU in entitled(ios, user)
    # the token belongs to user: another user may not claim the purchase
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": unique_user("thief"), "signed_transaction": SIGNER.sign(tx)})
    assert r.status_code == 409, r.text
    tx2 = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": unique_user("thief"), "signed_transaction": SIGNER.sign(tx2)})
    assert r.status_code == 409, r.text
    assert purchases(harness, tx2["transactionId"]) == []
    r = requests.post(ios.base_url + "/iap/appstore", json=body, timeout=20)
    assert r.status_code == 401


def test_web_then_app_purchase_gives_one_entitlement(ios, harness):
    h = harness
    user = unique_user("both")
    r = h.checkout(ios, product=SKU, channel="wechat", method="native", user=user)
    assert r.status_code == 201, r.text
    c = r.json()
    assert h.sandbox_post("/_sandbox/wechat/pay", {"out_trade_no": c["payment_no"]}).status_code == 200
    h.wait_order_status(ios, c["order_no"], "PAID")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    assert notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx)).status_code == 200
    [row] = purchases(h, tx["transactionId"])
    assert row["anomaly"] == "double_purchase" and row["order_id"]
    assert entitled(ios, user) == [SKU]
    pay = h.query("SELECT anomaly FROM payments WHERE order_id=%s", row["order_id"])[0]
    assert pay["anomaly"] == "double_purchase"


def test_lookup_through_app_store_server_api(ios, harness, apple_api):
    """A purchase whose notification never came: the backend passes the
    transaction id (or the operator runs paygatectl appstore lookup), paygate
    asks Apple with its ES256 token and records what Apple signed."""
    user = unique_user("lookup")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    apple_api.add(tx)
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": user, "transaction_id": tx["transactionId"]})
    assert r.status_code == 201, r.text
    assert ("GET", "/inApps/v1/transactions/" + tx["transactionId"]) in apple_api.calls
    assert SKU in entitled(ios, user)
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": user, "transaction_id": "2000000999999999"})
    assert r.status_code == 400, r.text
    # the CLI, on the stack's config, for a purchase made by another user
    other = unique_user("lookup2")
    tx2 = SIGNER.transaction(STORE_PRODUCT, token_of(ios, other))
    apple_api.add(tx2)
    out = harness.ctl("appstore", "lookup", tx2["transactionId"], config=ios.config).stdout
    assert "accepted" in out and "order" in out, out
    assert SKU in entitled(ios, other)


def test_jose_verifies_paygates_app_store_api_token(ios, apple_api):
    """Interop: the bearer token paygate sent to the App Store Server API
    verifies with `jose` (ES256, kid, iss = issuer_id, aud appstoreconnect-v1, bid)."""
    import shutil
    import subprocess
    interop = interop_node_modules("jose")
    if not apple_api.tokens:
        tx = SIGNER.transaction(STORE_PRODUCT, None)
        apple_api.add(tx)
        requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": unique_user("jose"), "transaction_id": tx["transactionId"]})
    items = [{"jwt": apple_api.tokens[-1], "spki": apple_api.public_pem(), "alg": "ES256",
              "issuer": apple_api.issuer_id, "audience": "appstoreconnect-v1"}]
    out = subprocess.run(["node", str(interop / "jwt_check.js")], input=json.dumps(items), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    res = json.loads(out.splitlines()[0])
    assert res["ok"], out
    assert res["header"]["kid"] == apple_api.key_id and res["claims"]["bid"] == BUNDLE


def test_unknown_product_and_buyer_kept_as_anomalies(ios, harness):
    tx = SIGNER.transaction("com.example.shop.not_mapped", token_of(ios, unique_user("np")))
    assert notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx)).status_code == 200
    [row] = purchases(harness, tx["transactionId"])
    assert (row["status"], row["anomaly"], row["order_id"]) == ("ANOMALY", "unknown_product", None)
    tx = SIGNER.transaction(STORE_PRODUCT, None)
    assert notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx)).status_code == 200
    [row] = purchases(harness, tx["transactionId"])
    assert (row["status"], row["anomaly"], row["order_id"]) == ("ANOMALY", "unknown_buyer", None)


def test_test_and_unknown_notifications_acknowledged_and_stored(ios, harness):
    for kind in ("TEST", "CONSUMPTION_REQUEST"):
        body = SIGNER.notification(kind, None if kind == "TEST" else SIGNER.transaction(STORE_PRODUCT))
        uuid_ = json.loads(body)["signedPayload"]
        assert notify(ios, body).status_code == 200
        rows = harness.query("SELECT outcome, detail FROM notifications WHERE channel='appstore' AND raw_body=%s",
                             body)
        assert rows and rows[0]["detail"] == kind, (kind, rows, uuid_[:10])


def test_concurrent_duplicate_records_one_order(ios, harness):
    """Another paygate process is inside its transaction for the same Apple
    transaction (its row inserted, not committed): this notification waits
    on the unique key, then finds it recorded — one purchase, no second order."""
    h = harness
    user = unique_user("twin")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    conn = h.db()
    conn.autocommit(False)
    result = {}
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO iap_purchases (channel, store_txn_id, store_product_id, user_ref, status)"
                        " VALUES ('appstore', %s, %s, %s, 'PAID')", (tx["transactionId"], STORE_PRODUCT, user))
        t = threading.Thread(target=lambda: result.update(r=notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx))))
        t.start()
        # the paygate transaction is now waiting on our row lock
        deadline = time.time() + 20
        while time.time() < deadline:
            waits = waiting_on_iap(h, conn.thread_id())
            if waits:
                break
            time.sleep(0.05)
        assert waits, "paygate never waited on the twin's row"
        conn.commit()
        t.join(30)
    finally:
        conn.close()
    assert result["r"].status_code == 200, result["r"].text
    assert len(purchases(h, tx["transactionId"])) == 1
    assert h.query("SELECT id FROM orders WHERE user_ref=%s", user) == []


@pytest.mark.parametrize("fault", ["other_root", "leaf_without_oid", "expired", "tampered", "alg_none", "hs256"])
def test_attack_forged_notification_refused(ios, harness, fault):
    user = unique_user("atk")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    r = notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx, fault=fault))
    assert r.status_code == 400, r.text
    r = notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx, inner_fault=fault))
    assert r.status_code == 400, r.text
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": user, "signed_transaction": SIGNER.sign(tx, fault)})
    assert r.status_code in (403, 400), r.text
    assert purchases(harness, tx["transactionId"]) == []
    assert entitled(ios, user) == []


def test_attack_other_bundle_and_replay_refused(ios, harness):
    user = unique_user("atk2")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    r = notify(ios, SIGNER.notification("ONE_TIME_CHARGE", tx, bundle_id="com.attacker.app"))
    assert r.status_code == 400, r.text
    other = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user), bundleId="com.attacker.app")
    r = notify(ios, SIGNER.notification("ONE_TIME_CHARGE", other))
    assert r.status_code == 400, r.text
    assert purchases(harness, tx["transactionId"]) == [] and purchases(harness, other["transactionId"]) == []
    # a replayed genuine notification is a duplicate: one order
    body = SIGNER.notification("ONE_TIME_CHARGE", tx)
    assert notify(ios, body).status_code == 200
    assert notify(ios, body).status_code == 200
    assert len(harness.query("SELECT id FROM orders WHERE user_ref=%s", user)) == 1


def test_sandbox_apple_is_accepted_by_apples_library():
    """Interop: @apple/app-store-server-library, trusting the sandbox's root,
    accepts the sandbox's notifications and transactions and refuses its
    forgeries, as paygate does."""
    import shutil
    import subprocess
    from cryptography.hazmat.primitives import serialization
    interop = interop_node_modules("@apple/app-store-server-library")
    tx = SIGNER.transaction(STORE_PRODUCT, "7f1c2a52-2c8e-4a4e-9d55-0f3c6f0b9a11")
    good = [SIGNER.notification("ONE_TIME_CHARGE", tx), SIGNER.notification("TEST")]
    bad = [SIGNER.notification("ONE_TIME_CHARGE", tx, fault=f)
           for f in ("other_root", "leaf_without_oid", "tampered", "alg_none", "hs256")]
    bad.append(SIGNER.notification("ONE_TIME_CHARGE", tx, bundle_id="com.attacker.app"))
    data = {"root": SIGNER.root.public_bytes(serialization.Encoding.PEM).decode(), "bundle_id": BUNDLE,
            "app_apple_id": APP_ID, "environment": "Production", "notifications": good + bad,
            "transactions": [SIGNER.sign(tx), SIGNER.sign(tx, "expired")]}
    out = subprocess.run(["node", str(interop / "appstore_sandbox_check.js")], input=json.dumps(data),
                         capture_output=True, text=True, timeout=60, check=True).stdout
    verdicts = [json.loads(line)["ok"] for line in out.splitlines()]
    assert verdicts == [True, True] + [False] * len(bad) + [True, False], out


def test_shop_cannot_refund_an_app_purchase_itself(ios, harness):
    """Apple refunds in-app purchases (its REFUND notification records it):
    a refund through paygate would reserve money no channel can send."""
    user = unique_user("norefund")
    tx = SIGNER.transaction(STORE_PRODUCT, token_of(ios, user))
    r = requests.post(ios.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": user, "signed_transaction": SIGNER.sign(tx)})
    assert r.status_code == 201, r.text
    order_no = r.json()["order_no"]
    r = requests.post(ios.base_url + "/orders/%s/refund" % order_no, headers=AUTH, json={}, timeout=20)
    assert r.status_code == 409 and "refund_by_store" in r.text, r.text
    assert harness.query("SELECT r.id FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.order_no=%s",
                         order_no) == []
