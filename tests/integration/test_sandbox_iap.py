"""The app stores on the standalone sandbox (sandbox/sandbox.py, the one the
demo runs; sandbox/iap_gw.py): Apple's Server API, notifications and
"phone", Google's OAuth, purchases API, Pub/Sub pushes and "phone", their
keys in the sandbox's state dir. paygate is configured from the sandbox's
/_sandbox/{appstore,googleplay}/config, as scripts/demo.sh does.

The demo shop's "In the app" links ([demo] appstore_phone /
googleplay_phone) lead to the phone; buying there makes the store notify
paygate, and the shop then shows the course as owned."""

import html
import re
import sys

import pytest
import requests

from conftest import ALL_STACKS, API_KEY, REPO, S, unique_user

sys.path.insert(0, str(REPO / "sandbox"))
import appstore_gw  # noqa: E402
import play_gw  # noqa: E402

AUTH = {"Authorization": "Bearer " + API_KEY}
AS_SKU, AS_PRODUCT = "course-c", "com.example.shop.course_c"
GP_SKU, GP_PRODUCT = "ebook-sql", "ebook_sql"


@pytest.fixture(scope="module", params=ALL_STACKS)
def shop(request, harness):
    h = harness
    h.ctl("product", "update", "--sku", AS_SKU, "--appstore-id", AS_PRODUCT)
    h.ctl("product", "update", "--sku", GP_SKU, "--googleplay-id", GP_PRODUCT)
    ac = h.sandbox_get("/_sandbox/appstore/config").json()
    gc = h.sandbox_get("/_sandbox/googleplay/config").json()
    port = S.free_port()
    base = "http://127.0.0.1:%d/pay" % port
    ini = ("\n[appstore]\nenabled = true\nbundle_id = %s\napp_apple_id = %d\nenvironment = %s\n"
           "root_cert = @STACK_DIR@/appstore_root.pem\nissuer_id = %s\nkey_id = %s\n"
           "private_key = @STACK_DIR@/SubscriptionKey.p8\napi_base = %s\n"
           "\n[googleplay]\nenabled = true\npackage_name = %s\nservice_account = @STACK_DIR@/service_account.json\n"
           "api_base = %s\npush_audience = %s\npush_email = %s\npush_certs_url = %s\n"
           "\n[demo]\nappstore_phone = %s/appstore/phone\ngoogleplay_phone = %s/googleplay/phone\n"
           % (ac["bundle_id"], ac["app_apple_id"], ac["environment"], ac["issuer_id"], ac["key_id"], h.sandbox_url,
              gc["package_name"], gc["api_base"], base + "/notify/googleplay", gc["push_email"],
              gc["push_certs_url"], h.sandbox_url, h.sandbox_url))
    st = h.new_stack(request.param, name="sbiap-" + request.param, port=port, extra_ini=ini,
                     extra_files=(ac["root_cert"], ac["private_key"], gc["service_account"]))
    try:
        st.start()
    except Exception as e:  # noqa: BLE001
        pytest.fail("stack %s did not start: %s" % (request.param, e))
    yield st
    st.stop()


def point_stores_at(h, st):
    r = h.sandbox_post("/_sandbox/appstore/endpoint", {"url": st.base_url + "/notify/appstore"})
    assert r.status_code == 200, r.text
    url = st.base_url + "/notify/googleplay"
    r = h.sandbox_post("/_sandbox/googleplay/endpoint", {"url": url, "audience": url})
    assert r.status_code == 200, r.text


def token_of(st, user):
    r = requests.get(st.base_url + "/iap/account-token", params={"user": user}, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["account_token"]


def entitled(st, user):
    r = requests.get(st.base_url + "/entitlements", params={"user": user}, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return [e["product"] for e in r.json()["entitlements"]]


def shop_row(st, user, sku):
    r = requests.get(st.base_url + "/shop", params={"user": user}, timeout=10)
    assert r.status_code == 200, r.text
    m = re.search(r'<tr data-sku="%s">(.*?)</tr>' % re.escape(sku), r.text, re.S)
    assert m, r.text
    return m.group(1)


def buy_on_phone(row, link_id):
    """Follow the shop's link to the sandbox's phone and press Buy."""
    m = re.search(r'<a class="button" id="%s" href="([^"]+)"' % link_id, row)
    assert m, row
    page = requests.get(html.unescape(m.group(1)), timeout=10)
    assert page.status_code == 200 and 'id="buy"' in page.text, page.text
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    form = {k: html.unescape(v) for k, v in form.items()}
    action = re.search(r'<form method="post" action="([^"]+)">', page.text).group(1)
    done = requests.post(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + action, data=form,
                         timeout=20)
    assert done.status_code == 200, done.text
    return form, done.text


def test_app_store_purchase_on_the_demo_shop(shop, harness):
    """The shop offers the course "in the app"; the phone buys it, Apple's
    signed notification reaches paygate (answered 200), the shop shows it
    owned."""
    point_stores_at(harness, shop)
    user = unique_user("demo-iphone")
    row = shop_row(shop, user, AS_SKU)
    assert "Owned" not in row and 'id="googleplay-buy"' not in row
    form, page = buy_on_phone(row, "appstore-buy")
    assert form["app_account_token"] == token_of(shop, user)
    assert form["product_id"] == AS_PRODUCT and form["price_milli"] == "99000"
    assert '<b id="notify-status">200</b>' in page, page
    assert AS_SKU in entitled(shop, user)
    assert "Owned" in shop_row(shop, user, AS_SKU)
    [p] = harness.query("SELECT * FROM iap_purchases WHERE channel='appstore' AND user_ref=%s", user)
    assert p["status"] == "PAID" and p["store_product_id"] == AS_PRODUCT


def test_google_play_purchase_on_the_demo_shop(shop, harness):
    point_stores_at(harness, shop)
    user = unique_user("demo-android")
    row = shop_row(shop, user, GP_SKU)
    form, page = buy_on_phone(row, "googleplay-buy")
    assert form["account_id"] == token_of(shop, user)
    assert '<b id="notify-status">200</b>' in page, page
    assert GP_SKU in entitled(shop, user)
    assert "Owned" in shop_row(shop, user, GP_SKU)
    [p] = harness.query("SELECT * FROM iap_purchases WHERE channel='googleplay' AND user_ref=%s", user)
    assert p["status"] == "PAID"


def test_app_store_refund_and_server_api_lookup(shop, harness):
    """Control API: a purchase whose notification is lost is found through
    the sandbox's App Store Server API (paygate's ES256 token accepted); a
    refund from the sandbox revokes the entitlement."""
    h = harness
    user = unique_user("sb-lookup")
    h.sandbox_post("/_sandbox/appstore/endpoint", {"url": "http://127.0.0.1:9/lost"})
    r = h.sandbox_post("/_sandbox/appstore/purchase", {"product_id": AS_PRODUCT,
                                                      "app_account_token": token_of(shop, user)})
    assert r.status_code == 200 and r.json()["notify_status"] is None, r.text
    tid = r.json()["transaction_id"]
    assert AS_SKU not in entitled(shop, user)
    r = requests.post(shop.base_url + "/iap/appstore", headers=AUTH, timeout=20,
                      json={"user": user, "transaction_id": tid})
    assert r.status_code == 201, r.text
    assert AS_SKU in entitled(shop, user)
    point_stores_at(h, shop)
    r = h.sandbox_post("/_sandbox/appstore/refund", {"transaction_id": tid})
    assert r.status_code == 200 and r.json()["notify_status"] == 200, r.text
    assert AS_SKU not in entitled(shop, user)
    kinds = [n["type"] for n in h.sandbox_get("/_sandbox/appstore/notifications").json()]
    assert kinds[-2:] == ["ONE_TIME_CHARGE", "REFUND"], kinds


def test_google_play_push_ack_and_void(shop, harness):
    h = harness
    point_stores_at(h, shop)
    user = unique_user("sb-play")
    r = h.sandbox_post("/_sandbox/googleplay/purchase", {"product_id": GP_PRODUCT,
                                                        "account_id": token_of(shop, user)})
    assert r.status_code == 200 and r.json()["push_status"] == 200, r.text
    token = r.json()["purchase_token"]
    assert GP_SKU in entitled(shop, user)
    p = h.sandbox_get("/_sandbox/googleplay/purchase?token=" + requests.utils.quote(token, safe="")).json()
    assert p["acknowledgementState"] == 1, p     # paygate acknowledged at the sandbox's Google
    r = h.sandbox_post("/_sandbox/googleplay/void", {"purchase_token": token})
    assert r.status_code == 200 and r.json()["push_status"] == 200, r.text
    assert GP_SKU not in entitled(shop, user)


def test_store_keys_survive_a_restart(tmp_path):
    """The PKI is kept in the state dir: a restarted sandbox signs under the
    root and keys paygate was configured with."""
    a = appstore_gw.AppleSigner(state_dir=str(tmp_path / "as"))
    b = appstore_gw.AppleSigner(state_dir=str(tmp_path / "as"))
    assert a.root.fingerprint(appstore_gw.hashes.SHA256()) == b.root.fingerprint(appstore_gw.hashes.SHA256())
    assert a.good.x5c() == b.good.x5c()
    k1 = appstore_gw.AppStoreServerApi(a, p8_path=str(tmp_path / "as" / "k.p8")).public_pem()
    assert appstore_gw.AppStoreServerApi(b, p8_path=str(tmp_path / "as" / "k.p8")).public_pem() == k1
    g1 = play_gw.PlayState("p", "a", "e", state_dir=str(tmp_path / "gp"))
    g2 = play_gw.PlayState("p", "a", "e", state_dir=str(tmp_path / "gp"))
    assert g1.jwks() == g2.jwks() and g1.sa_public_pem() == g2.sa_public_pem()
