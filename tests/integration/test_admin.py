"""The operator's console under /admin/ (issue 16): accounts made by
`paygatectl admin add`, sign-in with session cookies, throttling, CSRF,
roles, audit, the pages and the actions (refund and close through the API's
use cases, webhook retry), escaping of hostile values, and the mounted path
(/pay/admin/) behind every stack."""

import datetime
import html
import json
import re
import subprocess
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import API_KEY, BUILD, TIMEOUT

PASSWORD = "correct horse battery staple"
AUTH = {"Authorization": "Bearer " + API_KEY}


def add_account(harness, user, role, password=PASSWORD, check=True):
    r = subprocess.run([str(BUILD / "paygatectl"), "-c", str(harness.cli_config), "admin", "add", "--user", user,
                        "--role", role], input=password + "\n", env=harness.env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def new_user(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def clear_failures(harness):
    harness.query("DELETE FROM admin_login_failures")


class Console:
    """A browser without JavaScript: a cookie jar and forms."""

    def __init__(self, st, lang=None):
        self.st = st
        self.root = st.base_url + "/admin"
        self.s = requests.Session()
        if lang:
            self.s.headers["Accept-Language"] = lang

    def get(self, path, **kw):
        return self.s.get(self.root + path, timeout=TIMEOUT, allow_redirects=False, **kw)

    def post(self, path, data, **kw):
        return self.s.post(self.root + path, data=data, timeout=TIMEOUT, allow_redirects=False, **kw)

    def login(self, user, password=PASSWORD, next_=None):
        data = {"username": user, "password": password}
        if next_ is not None:
            data["next"] = next_
        return self.post("/login", data)

    def csrf(self, path="/"):
        r = self.get(path)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return csrf_of(r.text)


def csrf_of(text):
    m = re.search(r'name="csrf" value="([A-Za-z0-9]+)"', text)
    assert m, text[:2000]
    return m.group(1)


def signed_in(harness, st, role, lang=None):
    user = new_user(role)
    add_account(harness, user, role)
    c = Console(st, lang)
    r = c.login(user)
    assert r.status_code == 303, (r.status_code, r.text[:500])
    return c, user


def paid_order(harness, st, product="course-c"):
    r = harness.checkout(st, product=product, channel="alipay", method="qr", user=new_user("buyer"))
    assert r.status_code == 201, r.text
    c = r.json()
    r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text
    harness.wait_order_status(st, c["order_no"], "PAID")
    return c


def refunds_of(harness, order_no):
    return harness.query("SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.order_no=%s",
                         order_no)


def audit(harness, action, target=None):
    if target is None:
        return harness.query("SELECT * FROM admin_audit WHERE action=%s ORDER BY id", action)
    return harness.query("SELECT * FROM admin_audit WHERE action=%s AND target=%s ORDER BY id", action, target)


# ------------------------------------------------------------ accounts

def test_admin_add_stores_an_argon2id_hash_and_refuses_bad_input(harness):
    user = new_user("owner")
    add_account(harness, user, "owner")
    row = harness.query("SELECT * FROM admin_users WHERE username=%s", user)[0]
    assert row["role"] == "owner" and row["active"] == 1
    assert row["password_hash"].startswith("$argon2id$"), row["password_hash"]
    assert PASSWORD not in row["password_hash"]
    assert add_account(harness, user, "viewer", check=False).returncode == 1          # taken
    assert add_account(harness, new_user("x"), "root", check=False).returncode == 2   # no such role
    assert add_account(harness, new_user("x"), "viewer", "short", check=False).returncode == 2
    assert add_account(harness, "bad name!", "viewer", check=False).returncode == 2
    listed = json.loads(harness.ctl("--json", "admin", "list").stdout)
    assert any(a["username"] == user for a in listed)
    assert "password_hash" not in listed[0]


# ------------------------------------------------- sign-in and sessions

def test_console_mounted_on_every_stack_signs_in_and_serves_every_page(harness, stack):
    st = stack
    c = Console(st)
    r = c.get("/")
    assert r.status_code == 303
    assert r.headers["Location"] == st.base_url + "/admin/login?next=%2F"
    assert urllib.parse.urlsplit(st.base_url).path == "/pay"
    user = new_user("viewer")
    add_account(harness, user, "viewer")
    r = c.login(user)
    assert r.status_code == 303 and r.headers["Location"] == st.base_url + "/admin/", r.text[:300]
    cookie = r.headers["Set-Cookie"]
    assert re.match(r"pg_admin=[A-Za-z0-9]{43}; Path=/pay/admin; HttpOnly; SameSite=Strict$", cookie), cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    # only the token's SHA-256 is stored
    rows = harness.query("SELECT s.* FROM admin_sessions s JOIN admin_users u ON u.id=s.user_id "
                         "WHERE u.username=%s", user)
    assert len(rows) == 1 and rows[0]["token_hash"] != token and token not in json.dumps(rows, default=str)
    import hashlib
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    for path in ("/", "/orders", "/orders?status=PAID&channel=alipay", "/reconciliation", "/settlement",
                 "/catalogue", "/webhooks", "/webhooks?status=DEAD", "/audit", "/refunds?status=FAILED"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert r.headers["Content-Type"].startswith("text/html")
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Cache-Control"] == "no-store"
        assert "<script" not in r.text.lower()
        assert 'id="signed-in-as"' in r.text
    assert c.get("/style.css").headers["Content-Type"].startswith("text/css")
    # a viewer is not an owner
    assert c.get("/accounts").status_code == 403


def test_wrong_password_and_unknown_account_get_the_same_answer(harness, lighttpd_stack):
    clear_failures(harness)
    user = new_user("op")
    add_account(harness, user, "operator")
    c = Console(lighttpd_stack, "en")
    wrong = c.login(user, "not the password at all")
    unknown = c.login(new_user("nobody"), "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "Set-Cookie" not in wrong.headers and "Set-Cookie" not in unknown.headers
    assert "Wrong user name or password." in wrong.text and "Wrong user name or password." in unknown.text
    assert c.get("/").status_code == 303
    rows = audit(harness, "login")
    assert any(a["username"] == user and a["outcome"] == "wrong_password" and a["address"] == "127.0.0.1"
               for a in rows)
    clear_failures(harness)


def test_login_throttled_per_account_then_per_address(harness, lighttpd_stack):
    st = lighttpd_stack
    clear_failures(harness)
    user = new_user("op")
    add_account(harness, user, "operator")
    c = Console(st)
    for _ in range(5):
        assert c.login(user, "wrong password 123").status_code == 401
    r = c.login(user)      # the right password, too late
    assert r.status_code == 429 and "Set-Cookie" not in r.headers
    assert r.headers.get("Retry-After") == "900"
    assert audit(harness, "login")[-1]["outcome"] == "throttled"
    # another account from the same address still signs in, until the
    # address has failed 20 times
    other = new_user("op")
    add_account(harness, other, "operator")
    assert Console(st).login(other).status_code == 303
    for i in range(15):
        assert c.login(new_user("guess%d" % i), "wrong password 123").status_code == 401
    assert Console(st).login(other).status_code == 429
    clear_failures(harness)
    assert Console(st).login(other).status_code == 303


def test_planted_cookie_is_never_promoted_and_logout_ends_the_session(harness, lighttpd_stack):
    st = lighttpd_stack
    user = new_user("viewer")
    add_account(harness, user, "viewer")
    planted = "A" * 43
    c = Console(st)
    c.s.cookies.set("pg_admin", planted, domain="127.0.0.1", path="/pay/admin")
    assert c.get("/").status_code == 303              # not a session
    r = c.login(user)
    assert r.status_code == 303
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert token != planted
    assert c.s.cookies.get("pg_admin") == token
    # a second cookie of that name beside the real one (planted for another
    # path or domain): neither is trusted
    r = requests.get(st.base_url + "/admin/", headers={"Cookie": "pg_admin=%s; pg_admin=%s" % (planted, token)},
                     timeout=TIMEOUT, allow_redirects=False)
    assert r.status_code == 303
    other = Console(st)
    other.s.cookies.set("pg_admin", planted, path="/pay/admin")
    assert other.get("/").status_code == 303          # still nothing
    # sign out: the token is dead even if kept
    csrf = c.csrf("/")
    r = c.post("/logout", {"csrf": csrf})
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/login?bye=1")
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    again = Console(st)
    again.s.cookies.set("pg_admin", token, path="/pay/admin")
    assert again.get("/").status_code == 303
    assert audit(harness, "logout")[-1]["username"] == user


def test_expired_sessions_are_refused(harness, lighttpd_stack):
    c, user = signed_in(harness, lighttpd_stack, "viewer")
    assert c.get("/").status_code == 200
    harness.query("UPDATE admin_sessions s JOIN admin_users u ON u.id=s.user_id "
                  "SET s.last_seen_at = s.last_seen_at - INTERVAL 31 MINUTE WHERE u.username=%s", user)
    assert c.get("/").status_code == 303              # idle
    c, user = signed_in(harness, lighttpd_stack, "viewer")
    harness.query("UPDATE admin_sessions s JOIN admin_users u ON u.id=s.user_id "
                  "SET s.created_at = s.created_at - INTERVAL 13 HOUR WHERE u.username=%s", user)
    assert c.get("/").status_code == 303              # absolute


def test_login_next_is_never_an_open_redirect(harness, lighttpd_stack):
    st = lighttpd_stack
    user = new_user("viewer")
    add_account(harness, user, "viewer")
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
                 "/ok//evil.example"):
        r = Console(st).login(user, next_=evil)
        assert r.status_code == 303
        assert r.headers["Location"] == st.base_url + "/admin/", (evil, r.headers["Location"])
    # a sign-in posted by another site's form (login CSRF) is refused
    r = Console(st).post("/login", {"username": user, "password": PASSWORD},
                         headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "Set-Cookie" not in r.headers
    r = Console(st).post("/login", {"username": user, "password": PASSWORD},
                         headers={"Origin": urllib.parse.urlsplit(st.base_url)._replace(path="").geturl()})
    assert r.status_code == 303
    r = Console(st).login(user, next_="/orders?status=PAID")
    assert r.headers["Location"] == st.base_url + "/admin/orders?status=PAID"
    # the page asked for before signing in comes back after
    r = Console(st).get("/orders?q=abc")
    assert r.headers["Location"] == st.base_url + "/admin/login?next=%2Forders%3Fq%3Dabc"


# ----------------------------------------------------- attacks on actions

def test_actions_need_a_session_a_csrf_token_of_that_session_and_a_role(harness, lighttpd_stack):
    st = lighttpd_stack
    o = paid_order(harness, st, "ebook-sql")
    path = "/orders/%s/refund" % o["order_no"]
    form = {"amount_fen": "100", "reason": "test", "confirm": "1", "request_id": "adm-attack-" + uuid.uuid4().hex[:8]}
    # no session: 401
    r = Console(st).post(path, form)
    assert r.status_code == 401
    op, op_user = signed_in(harness, st, "operator")
    other, _ = signed_in(harness, st, "operator")
    # no token, a wrong one, another session's: 403
    assert op.post(path, form).status_code == 403
    assert op.post(path, dict(form, csrf="x" * 43)).status_code == 403
    assert op.post(path, dict(form, csrf=other.csrf("/"))).status_code == 403
    assert op.post(path, dict(form, csrf=[op.csrf("/"), "x"])).status_code == 403   # two tokens
    # the right token from another site's page
    assert op.post(path, dict(form, csrf=op.csrf("/")), headers={"Origin": "null"}).status_code == 403
    # a viewer with its own good token: 403
    viewer, viewer_user = signed_in(harness, st, "viewer")
    assert viewer.post(path, dict(form, csrf=viewer.csrf("/"))).status_code == 403
    assert viewer.post("/webhooks/retry", {"all": "1", "csrf": viewer.csrf("/")}).status_code == 403
    assert refunds_of(harness, o["order_no"]) == []
    rows = audit(harness, "refund", o["order_no"])
    assert [a["outcome"] for a in rows].count("csrf_refused") == 4
    assert any(a["outcome"] == "forbidden" and a["username"] == viewer_user for a in rows)
    # the viewer's page has no action forms at all
    page = viewer.get("/orders/%s" % o["order_no"]).text
    assert 'id="refund-form"' not in page
    assert 'id="refund-form"' in op.get("/orders/%s" % o["order_no"]).text


# -------------------------------------------------- actions end to end

def test_refund_from_the_console_with_confirmation(harness, lighttpd_stack):
    st = lighttpd_stack
    o = paid_order(harness, st, "course-c")
    c, user = signed_in(harness, st, "operator", lang="en")
    page = c.get("/orders/%s" % o["order_no"])
    assert page.status_code == 200 and 'id="refund-form"' in page.text
    csrf = csrf_of(page.text)
    path = "/orders/%s/refund" % o["order_no"]
    # step 1: review only -- nothing happens yet
    r = c.post(path, {"csrf": csrf, "amount_fen": "2500", "reason": "partial <b>refund</b>"})
    assert r.status_code == 200 and 'id="confirm-question"' in r.text
    assert "Refund ¥25.00 to the buyer?" in r.text
    assert "partial &lt;b&gt;refund&lt;/b&gt;" in r.text
    assert refunds_of(harness, o["order_no"]) == []
    confirm = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', r.text))
    assert confirm["confirm"] == "1" and confirm["request_id"].startswith("adm-")
    confirm["reason"] = html.unescape(confirm["reason"])
    # step 2: confirmed, through refund_create
    r = c.post(path, confirm)
    assert r.status_code == 200, r.text[:1000]
    assert 'id="action-result"' in r.text
    rows = refunds_of(harness, o["order_no"])
    assert len(rows) == 1 and rows[0]["amount_fen"] == 2500 and rows[0]["reason"] == "partial <b>refund</b>"
    assert rows[0]["request_id"] == confirm["request_id"]
    # pressing Confirm twice refunds once (the request_id)
    r = c.post(path, confirm)
    assert r.status_code == 200
    assert len(refunds_of(harness, o["order_no"])) == 1
    deadline = time.time() + TIMEOUT
    while harness.order(o["order_no"])["status"] != "PARTIALLY_REFUNDED" and time.time() < deadline:
        time.sleep(0.2)
    assert harness.order(o["order_no"])["refunded_fen"] == 2500
    page = c.get("/orders/%s" % o["order_no"]).text
    assert rows[0]["refund_no"] in page
    assert ("refund:%s" % rows[0]["refund_no"]) in page   # the ledger moved
    assert 'id="refunded" data-fen="2500"' in page
    assert [a["outcome"] for a in audit(harness, "refund", o["order_no"])].count("ok") == 2
    assert audit(harness, "refund", o["order_no"])[-1]["username"] == user
    # more than what is left: refused with the API's code
    confirm2 = dict(confirm, amount_fen="999999", request_id="adm-" + uuid.uuid4().hex[:20])
    r = c.post(path, confirm2)
    assert r.status_code == 409 and "refund_exceeds_paid" in r.text, r.text[:800]


def test_close_from_the_console_with_confirmation(harness, lighttpd_stack):
    st = lighttpd_stack
    r = harness.checkout(st, product="ebook-sql", channel="wechat", method="native", user=new_user("buyer"))
    assert r.status_code == 201, r.text
    o = r.json()
    harness.age_payment(o["payment_no"], 300, "wechat")
    c, _ = signed_in(harness, st, "operator")
    page = c.get("/orders/%s" % o["order_no"]).text
    assert 'id="close-form"' in page
    path = "/orders/%s/close" % o["order_no"]
    r = c.post(path, {"csrf": csrf_of(page)})
    assert r.status_code == 200 and 'id="confirm-question"' in r.text
    assert harness.order(o["order_no"])["status"] == "CREATED"
    r = c.post(path, {"csrf": csrf_of(page), "confirm": "1"})
    assert r.status_code == 200, r.text[:800]
    assert harness.order(o["order_no"])["status"] == "CLOSED"
    assert harness.wx_trade(o["payment_no"])["trade_state"] == "CLOSED"
    assert audit(harness, "close", o["order_no"])[-1]["outcome"] == "ok"


def test_webhook_retry_one_and_all_dead(harness, lighttpd_stack):
    st = lighttpd_stack
    ids = []
    for _ in range(2):
        ev = "evt_adm_" + uuid.uuid4().hex[:16]
        harness.query("INSERT INTO webhook_events (event_id, type, payload, status, attempts) "
                      "VALUES (%s, 'order.paid', '{}', 'DEAD', 12)", ev)
        ids.append(harness.query("SELECT id FROM webhook_events WHERE event_id=%s", ev)[0]["id"])
    c, _ = signed_in(harness, st, "operator")
    page = c.get("/webhooks?status=DEAD").text
    assert 'name="id" value="%d"' % ids[0] in page
    r = c.post("/webhooks/retry", {"csrf": csrf_of(page), "id": str(ids[0])})
    assert r.status_code == 200
    assert harness.query("SELECT status FROM webhook_events WHERE id=%s", ids[0])[0]["status"] == "PENDING"
    assert harness.query("SELECT status FROM webhook_events WHERE id=%s", ids[1])[0]["status"] == "DEAD"
    r = c.post("/webhooks/retry", {"csrf": csrf_of(page), "all": "1"})
    assert r.status_code == 200
    assert harness.query("SELECT status FROM webhook_events WHERE id=%s", ids[1])[0]["status"] == "PENDING"
    assert audit(harness, "webhook_retry", str(ids[0]))[-1]["outcome"] == "ok"
    assert audit(harness, "webhook_retry", "all_dead")


# --------------------------------------------------------------- escaping

def test_hostile_values_come_out_escaped(harness, lighttpd_stack):
    st = lighttpd_stack
    xss = "<script>alert(1)</script>"
    sku = "xss-" + uuid.uuid4().hex[:8]
    harness.ctl("product", "add", "--sku", sku, "--title", "Course " + xss, "--price-fen", "500")
    r = harness.checkout(st, product=sku, channel="alipay", method="qr", user=new_user("buyer"))
    assert r.status_code == 201, r.text
    o = r.json()
    # an accepted notification whose raw body carries the payload as it is
    # (signatures cover the decoded values: "<" need not be percent-encoded)
    form = harness.notification(o["payment_no"], 500, subject=xss, body='"><img/src=x/onerror=alert(1)>')
    raw = "&".join("%s=%s" % (k, v if k in ("subject", "body") else urllib.parse.quote(v, safe=""))
                   for k, v in form.items())
    r = requests.post(st.base_url + "/notify/alipay", data=raw.encode(), timeout=TIMEOUT,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.text == "success"
    assert xss.encode() in harness.notifications_for(o["payment_no"])[-1]["raw_body"]
    c, _ = signed_in(harness, st, "owner")
    pages = [c.get("/orders/%s" % o["order_no"]).text, c.get("/orders?q=%s" % sku).text, c.get("/catalogue").text]
    for page in pages:
        assert "<script>alert" not in page and "<img/src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "subject=&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]          # the raw body, escaped
    assert "body=&quot;&gt;&lt;img/src=x/onerror=alert(1)&gt;" in pages[0]
    # a hostile name typed at the sign-in comes back escaped
    r = Console(st).login('"><script>x</script>', "wrong password 123")
    assert "<script>x" not in r.text
    clear_failures(harness)


# ------------------------------------------------------------- figures

def beijing_today():
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)).strftime("%Y-%m-%d")


def test_today_figures_equal_paygatectl_report(harness, lighttpd_stack):
    st = lighttpd_stack
    paid_order(harness, st, "ebook-sql")
    day = beijing_today()
    c, _ = signed_in(harness, st, "viewer")
    page = c.get("/").text
    report = harness.ctl_json("report", "--from", day, "--to", day)
    expected = {}
    for row in report:
        if row["day"] == day:
            g, rf, f = int(row["gross_fen"]), int(row["refunds_fen"]), int(row["fees_fen"])
            # the CLI names the day's ROLLUP row's channel "all"
            expected["TOTAL" if row["channel"] in (None, "all") else row["channel"]] = [g, rf, f, g - rf - f]
    seen = {}
    for ch, cells in re.findall(r'<tr data-channel="([^"]+)">(.*?)</tr>', page):
        seen[ch] = [int(x) for x in re.findall(r'data-fen="(-?\d+)"', cells)]
    assert expected and seen == expected, (seen, expected)
    assert 'id="chart"' in page and page.count("<rect ") == 30
    bar = re.search(r'<rect data-day="%s" data-fen="(\d+)"' % day, page)
    assert bar and int(bar.group(1)) == expected["TOTAL"][0]
    for item in ("payments_waiting", "refunds_pending", "refunds_failed", "webhooks_dead", "recon_unexplained"):
        assert 'id="att-%s"' % item in page


def test_orders_search_filters_and_keyset_pages(harness, lighttpd_stack):
    st = lighttpd_stack
    o = paid_order(harness, st, "ebook-sql")
    c, _ = signed_in(harness, st, "viewer")
    pay = harness.payment(o["payment_no"])
    order = harness.order(o["order_no"])
    for q in (o["order_no"], o["payment_no"], pay["provider_trade_no"], order["user_ref"]):
        page = c.get("/orders?q=" + urllib.parse.quote(q)).text
        assert ">%s</a>" % o["order_no"] in page, q
    assert ">%s</a>" % o["order_no"] not in c.get("/orders?q=%s&status=CLOSED" % o["order_no"]).text
    assert ">%s</a>" % o["order_no"] in c.get("/orders?q=%s&channel=alipay" % o["order_no"]).text
    assert ">%s</a>" % o["order_no"] not in c.get("/orders?q=%s&channel=wechat" % o["order_no"]).text
    # keyset: the next page starts below the last id shown, without OFFSET
    page = c.get("/orders").text
    if 'id="next-page"' in page:
        m = re.search(r'/orders\?before=(\d+)', page)
        nxt = c.get("/orders?before=" + m.group(1)).text
        first = set(re.findall(r'/admin/orders/([A-Za-z0-9]+)"', page))
        second = set(re.findall(r'/admin/orders/([A-Za-z0-9]+)"', nxt))
        assert first and second and not (first & second)


def test_payout_csv_is_what_settle_writes(harness, lighttpd_stack, tmp_path):
    st = lighttpd_stack
    day = beijing_today()
    out = tmp_path / "payouts.csv"
    harness.ctl("settle", "--date", day, "--out", str(out))
    c, _ = signed_in(harness, st, "viewer")
    r = c.get("/settlement/payouts.csv?date=" + day)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    assert r.content == out.read_bytes()
    assert c.get("/settlement/payouts.csv?date=../../etc").status_code == 400
    assert c.get("/settlement").status_code == 200


def test_console_speaks_chinese_by_default_and_english_on_request(harness, lighttpd_stack):
    st = lighttpd_stack
    zh = Console(st).get("/login")
    assert '<html lang="zh-CN">' in zh.text and "登录控制台" in zh.text
    en = Console(st, "en-GB,en;q=0.9").get("/login")
    assert '<html lang="en">' in en.text and "Sign in to the console" in en.text


def test_owner_sees_accounts_and_the_audit_log(harness, lighttpd_stack):
    c, user = signed_in(harness, lighttpd_stack, "owner")
    page = c.get("/accounts")
    assert page.status_code == 200 and user in page.text
    audit_page = c.get("/audit").text
    assert user in audit_page and "login" in audit_page


def test_owner_adds_disables_and_enables_accounts_from_the_console(harness, lighttpd_stack):
    st = lighttpd_stack
    owner, owner_user = signed_in(harness, st, "owner")
    page = owner.get("/accounts").text
    csrf = csrf_of(page)
    new = new_user("web")
    r = owner.post("/accounts", {"csrf": csrf, "op": "add", "username": new, "role": "viewer",
                                 "password": "another long password"})
    assert r.status_code == 200 and 'id="action-result"' in r.text
    row = harness.query("SELECT * FROM admin_users WHERE username=%s", new)[0]
    assert row["role"] == "viewer" and row["password_hash"].startswith("$argon2id$")
    assert owner.post("/accounts", {"csrf": csrf, "op": "add", "username": new, "role": "viewer",
                                    "password": "another long password"}).status_code == 409
    assert owner.post("/accounts", {"csrf": csrf, "op": "add", "username": new_user("w"), "role": "viewer",
                                    "password": "short"}).status_code == 400
    viewer = Console(st)
    assert viewer.login(new, "another long password").status_code == 303
    assert viewer.get("/").status_code == 200
    # a viewer may not manage accounts, even with its own token
    assert viewer.post("/accounts", {"csrf": viewer.csrf("/"), "op": "disable",
                                     "username": owner_user}).status_code == 403
    # disabling ends the sessions and the sign-ins
    assert owner.post("/accounts", {"csrf": csrf, "op": "disable", "username": new}).status_code == 200
    assert viewer.get("/").status_code == 303
    assert Console(st).login(new, "another long password").status_code == 401
    assert owner.post("/accounts", {"csrf": csrf, "op": "disable", "username": owner_user}).status_code == 409
    assert owner.post("/accounts", {"csrf": csrf, "op": "enable", "username": new}).status_code == 200
    assert Console(st).login(new, "another long password").status_code == 303
    outcomes = [(a["action"], a["outcome"], a["username"]) for a in harness.query(
        "SELECT * FROM admin_audit WHERE target=%s ORDER BY id", new)]
    assert ("account_add", "ok", owner_user) in outcomes and ("account_disable", "ok", owner_user) in outcomes
    clear_failures(harness)


# ------------------------------------------- payouts, masking, CSV (issue 16)

@pytest.fixture(scope="module")
def payout_stack(harness):
    """(stack, cli config) in Alipay certificate mode with [payouts] on, as
    test_payouts.py's `cert` fixture makes it, under a name of its own."""
    from test_payouts import _cert_lines, _to_cert_mode
    dest = harness.run / "certadmin"
    dest.mkdir(exist_ok=True)
    _info, lines = _cert_lines(harness, dest)
    st = harness.new_stack("lighttpd", name="certadmin", fcgi_children=2)
    writer = st.config_writer

    def write(s):
        writer(s)
        _, stack_lines = _cert_lines(harness, s.dir)
        _to_cert_mode(s.config, stack_lines)
    st.config_writer = write
    st.start()
    cli = harness.run / "cli-certadmin.ini"
    harness.write_config(cli, st.base_url, harness.run / "paygatectl-certadmin.log", harness.keys["pkcs8"])
    _to_cert_mode(cli, lines)
    yield st, cli
    st.stop()


def payout_rows(harness, batch_no):
    return harness.query("SELECT status, reason, attempts FROM payouts WHERE payout_no = %s", batch_no)


def test_payouts_page_lists_and_retries_a_failed_payout_end_to_end(harness, payout_stack):
    from test_payouts import _creator, _paid_and_settled, _payout, _transfer
    st, cli = payout_stack
    cid = _creator(harness, cli, account="nobody@example.com")
    day, batch_no = _paid_and_settled(harness, st, cli, cid)
    assert _payout(harness, cli, day)["failed"] == 1
    assert payout_rows(harness, batch_no)[0]["status"] == "FAILED"
    op, op_user = signed_in(harness, st, "operator", lang="en")
    # Today links its payout counts to the page, filtered by state
    today = op.get("/").text
    assert 'href="%s/settlement?status=FAILED#payouts"' % urllib.parse.urlparse(op.root).path in today
    # the page: FAILED by default, with the reason, the attempts and a retry form
    page = op.get("/settlement?status=FAILED")
    assert page.status_code == 200
    row = re.search(r'<tr data-payout="%s">(.*?)</tr>' % batch_no, page.text, re.S)
    assert row, page.text[:3000]
    assert "PAYEE_NOT_EXIST" in row.group(1) and ">1<" in row.group(1) and "Payout " + cid in row.group(1)
    assert 'name="payout_no" value="%s"' % batch_no in row.group(1)
    assert "nobody@example.com" not in page.text
    assert 'data-payout="%s"' % batch_no not in op.get("/settlement?status=PAID").text
    # a viewer sees it without a form and is refused the action
    viewer, viewer_user = signed_in(harness, st, "viewer")
    vpage = viewer.get("/settlement?status=FAILED").text
    assert 'data-payout="%s"' % batch_no in vpage and 'name="payout_no"' not in vpage
    form = {"payout_no": batch_no, "confirm": "1"}
    assert viewer.post("/settlement/retry", dict(form, csrf=csrf_of(vpage))).status_code == 403
    # no CSRF token, a wrong one: refused
    assert op.post("/settlement/retry", form).status_code == 403
    assert op.post("/settlement/retry", dict(form, csrf="x" * 43)).status_code == 403
    assert payout_rows(harness, batch_no)[0]["status"] == "FAILED"
    rows = audit(harness, "payout_retry")
    assert any(a["outcome"] == "forbidden" and a["username"] == viewer_user for a in rows)
    assert [a["outcome"] for a in rows if a["username"] == op_user].count("csrf_refused") == 2
    # step 1 asks; nothing changes
    csrf = csrf_of(page.text)
    r = op.post("/settlement/retry", {"csrf": csrf, "payout_no": batch_no})
    assert r.status_code == 200 and 'id="confirm-question"' in r.text and batch_no in r.text
    assert payout_rows(harness, batch_no)[0]["status"] == "FAILED"
    confirm = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', r.text))
    assert confirm["confirm"] == "1" and confirm["payout_no"] == batch_no
    # the operator fixes the account, then confirms: payout_retry makes it PENDING
    harness.ctl("creator", "update", "--id", cid, "--alipay-account", "fixed@example.com",
                "--real-name", "Zhang San", config=cli)
    r = op.post("/settlement/retry", confirm)
    assert r.status_code == 200 and 'id="action-result"' in r.text, r.text[:1000]
    assert payout_rows(harness, batch_no)[0]["status"] == "PENDING"
    assert [a["outcome"] for a in audit(harness, "payout_retry", batch_no)] == ["ok"]
    assert audit(harness, "payout_retry", batch_no)[0]["username"] == op_user
    # again: it is not FAILED any more
    r = op.post("/settlement/retry", confirm)
    assert r.status_code == 409 and 'id="action-result"' in r.text
    assert audit(harness, "payout_retry", batch_no)[-1]["outcome"] == "not_failed"
    # the next payout run sends it to the fixed account, once
    assert _payout(harness, cli, day)["paid"] == 1
    assert payout_rows(harness, batch_no)[0]["status"] == "PAID"
    transfers, _calls = _transfer(harness, batch_no + "R1")      # a retry is a new transfer number
    assert len(transfers) == 1 and transfers[0]["identity"] == "fixed@example.com"
    assert 'data-payout="%s"' % batch_no in op.get("/settlement?status=PAID").text


def test_catalogue_shows_payout_accounts_masked_as_creator_list(harness, lighttpd_stack):
    cid = "mask" + uuid.uuid4().hex[:8]
    account, openid = "secretpayee%s@example.com" % cid, "oWx" + uuid.uuid4().hex
    harness.ctl("creator", "add", "--id", cid, "--name", "Masked " + cid, "--alipay-account", account,
                "--real-name", "Zhang Sanfeng", "--wechat-openid", openid)
    listed_ = [r for r in harness.ctl_json("creator", "list") if r["id"] == cid]
    assert len(listed_) == 1, listed_
    c, _ = signed_in(harness, lighttpd_stack, "viewer", lang="en")
    page = c.get("/catalogue").text
    row = re.search(r"<tr>(<td>%s</td>.*?)</tr>" % cid, page, re.S)
    assert row, page[:3000]
    cells = [html.unescape(x) for x in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    for key in ("alipay_account", "real_name", "wechat_openid"):
        assert listed_[0][key] in cells, (key, listed_[0][key], cells)
    assert "s*****om" in cells and "*hang Sanfeng" in cells
    assert account not in page and "secretpayee" not in page and "Zhang Sanfeng" not in page
    assert openid not in page


def test_catalogue_shows_the_app_store_ids_of_products(harness, lighttpd_stack):
    sku = "iapcat-" + uuid.uuid4().hex[:8]
    harness.ctl("product", "add", "--sku", sku, "--title", "Store-mapped course", "--price-fen", "9900",
                "--appstore-id", "com.example.shop." + sku, "--googleplay-id", "play_" + sku.replace("-", "_"))
    c, _ = signed_in(harness, lighttpd_stack, "viewer", lang="en")
    page = c.get("/catalogue").text
    row = re.search(r"<tr>(<td>%s</td>.*?)</tr>" % sku, page, re.S)
    assert row, page[:3000]
    cells = [html.unescape(x) for x in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    assert "com.example.shop." + sku in cells and "play_" + sku.replace("-", "_") in cells, cells


def test_payout_csv_neutralises_spreadsheet_formulas(harness, lighttpd_stack, tmp_path):
    st = lighttpd_stack
    cid = "csv" + uuid.uuid4().hex[:8]
    name = '=HYPERLINK("http://evil.example/?x","click")'
    harness.ctl("creator", "add", "--id", cid, "--name", name)
    harness.ctl("product", "add", "--sku", "csv-" + cid, "--title", "CSV course", "--price-fen", "9900",
                "--creator", cid)
    paid_order(harness, st, "csv-" + cid)
    day = "2003-%02d-%02d" % (1 + int(cid[-4:], 16) % 12, 1 + int(cid[-2:], 16) % 28)
    harness.query("UPDATE ledger_entries SET available_on = %s WHERE creator_id = %s", day, cid)
    out = tmp_path / "payouts.csv"
    harness.ctl("settle", "--date", day, "--out", str(out))
    c, _ = signed_in(harness, st, "viewer")
    r = c.get("/settlement/payouts.csv?date=" + day)
    assert r.status_code == 200
    assert r.content == out.read_bytes()          # the console and the CLI write the same bytes
    line = [x for x in r.text.splitlines() if "," + cid + "," in x]
    assert len(line) == 1, r.text
    assert ',"\'=HYPERLINK(""http://evil.example/?x"",""click"")",' in line[0]
    import csv
    import io
    rows = [x for x in csv.DictReader(io.StringIO(r.text)) if x["creator_id"] == cid]
    assert rows[0]["creator_name"] == "'" + name
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for x in csv.DictReader(io.StringIO(r.text))
                   for v in x.values())
