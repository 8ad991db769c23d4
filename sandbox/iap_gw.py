"""The app stores on the sandbox server: Apple (appstore_gw) and Google
Play (play_gw) as providers of sandbox.py, beside Alipay, WeChat and Stripe.

Apple:
  GET  /inApps/v1/transactions/{id}        App Store Server API (ES256 bearer JWT)
  GET  /appstore/phone?product_id=&app_account_token=&price_milli=&title=&return_url=
  POST /appstore/phone                     "the iPhone": buying signs a StoreKit 2
                                           transaction and sends the App Store
                                           Server Notification (ONE_TIME_CHARGE)
  control: GET /_sandbox/appstore/config, POST /_sandbox/appstore/endpoint {url},
           POST /_sandbox/appstore/purchase {product_id, app_account_token,
           price_milli, currency}, POST /_sandbox/appstore/refund {transaction_id},
           GET /_sandbox/appstore/notifications
Google:
  GET  /oauth2/v3/certs, POST /token, GET|POST /androidpublisher/v3/...
  GET|POST /googleplay/phone               "the Android phone"
  control: GET /_sandbox/googleplay/config, POST /_sandbox/googleplay/endpoint {url},
           POST /_sandbox/googleplay/purchase {product_id, account_id},
           GET /_sandbox/googleplay/purchase?token= (the purchase as Google keeps it),
           POST /_sandbox/googleplay/void {purchase_token},
           POST /_sandbox/googleplay/ack_fails {on}, GET /_sandbox/googleplay/notifications

The keys live in the state dir (appstore/, googleplay/): appstore_root.pem
is what paygate's [appstore] root_cert names, SubscriptionKey.p8 its
private_key, googleplay/service_account.json [googleplay] service_account.
Notifications go to the URL given with --appstore-notify-url /
--googleplay-push-url or POST .../endpoint; a delivery that is not
answered 2xx is retried as the store does (Apple: 1, 12, 24, 48, 72 hours;
Pub/Sub: backoff from 10 s to 600 s), multiplied by --time-scale.
"""

import html
import os
import threading
import time
import urllib.parse

import core
from appstore_gw import AppleSigner, AppStoreServerApi
from play_gw import PlayState

APPLE_RETRY_S = (3600, 12 * 3600, 24 * 3600, 48 * 3600, 72 * 3600)
PUBSUB_RETRY_S = (10, 20, 40, 80, 160, 320, 600)


def _back_link(return_url):
    if not return_url.startswith(("http://", "https://")):
        return ""
    return '<p><a id="back" href="%s">Back to the shop</a></p>' % html.escape(return_url)


class _Deliveries:
    """Outbound notifications and their retries (shared by both stores)."""

    def __init__(self, app, name, schedule, time_scale):
        self.app = app
        self.name = name
        self.schedule = schedule
        self.time_scale = time_scale
        self.url = ""
        self.sent = []
        self.lock = threading.Lock()

    def send(self, kind, body, headers_fn=None):
        """First attempt now (synchronously: its status is returned), the
        retries later. headers_fn() gives fresh headers per attempt."""
        record = {"type": kind, "url": self.url, "attempts": [], "delivered": False}
        with self.lock:
            self.sent.append(record)
        if not self.url:
            record["attempts"].append("no endpoint configured")
            return None
        return self._attempt(record, body, headers_fn, 0)

    def _attempt(self, record, body, headers_fn, n):
        status, _data, err = core.post(record["url"], body.encode(), "application/json",
                                       headers=headers_fn() if headers_fn else None)
        record["attempts"].append(status if status is not None else err)
        core.log("%s notification %s -> %s" % (self.name, record["type"], status if status else err))
        if status is not None and 200 <= status < 300:
            record["delivered"] = True
        elif n < len(self.schedule):
            self.app.scheduler.later(self.schedule[n] * self.time_scale, self._attempt, record, body,
                                     headers_fn, n + 1)
        return status

    def listing(self):
        with self.lock:
            return [dict(r) for r in self.sent]

    def reset(self):
        with self.lock:
            self.sent = []


class AppStoreProvider:
    channel = "appstore"

    def __init__(self, app, state_dir, bundle_id, app_apple_id, environment, notify_url, time_scale):
        self.app = app
        self.dir = os.path.join(state_dir, "appstore")
        self.signer = AppleSigner(bundle_id, app_apple_id, environment, state_dir=self.dir)
        self.p8 = os.path.join(self.dir, "SubscriptionKey.p8")
        self.api = AppStoreServerApi(self.signer, p8_path=self.p8)
        self.out = _Deliveries(app, "appstore", APPLE_RETRY_S, time_scale)
        self.out.url = notify_url

    @staticmethod
    def knows(_out_trade_no):
        return False

    def reset(self):
        self.out.reset()

    def routes(self):
        base = "/_sandbox/appstore"
        return [
            ("GET", r"/inApps/v1/transactions/[^/]+", self.api_route),
            ("GET|POST", r"/appstore/phone", self.phone),
            ("GET", base + r"/config", self.ctl_config),
            ("POST", base + r"/endpoint", self.ctl_endpoint),
            ("POST", base + r"/purchase", self.ctl_purchase),
            ("POST", base + r"/refund", self.ctl_refund),
            ("GET", base + r"/notifications", lambda _r: core.json_response(self.out.listing())),
        ]

    def api_route(self, req):
        status, obj = self.api.handle("GET", req.path, req.headers)
        return core.json_response(obj, status)

    def ctl_config(self, _req):
        return core.json_response({
            "bundle_id": self.signer.bundle_id, "app_apple_id": self.signer.app_apple_id,
            "environment": self.signer.environment, "root_cert": os.path.join(self.dir, "appstore_root.pem"),
            "issuer_id": self.api.issuer_id, "key_id": self.api.key_id, "private_key": self.p8,
            "notify_url": self.out.url})

    def ctl_endpoint(self, req):
        url = req.json().get("url", "")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise core.BadRequest("url must be http(s)")
        self.out.url = url
        return core.json_response({"ok": True, "url": url})

    def purchase(self, product_id, token, price_milli=None, currency="CNY"):
        """A purchase on the phone: the signed transaction (StoreKit 2 hands
        it to the app), known to the Server API, and its notification."""
        kw = {"currency": currency}
        if price_milli is not None:
            kw["price_milli"] = price_milli
        tx = self.signer.transaction(product_id, token or None, **kw)
        self.api.add(tx)
        status = self.out.send("ONE_TIME_CHARGE", self.signer.notification("ONE_TIME_CHARGE", tx))
        return tx, status

    def ctl_purchase(self, req):
        body = req.json()
        product_id, token = body.get("product_id"), body.get("app_account_token") or None
        price = body.get("price_milli")
        if not isinstance(product_id, str) or not product_id:
            raise core.BadRequest("product_id is required")
        if token is not None and (not isinstance(token, str) or len(token) != 36):
            raise core.BadRequest("app_account_token must be a UUID")
        if price is not None and (not isinstance(price, int) or isinstance(price, bool) or price < 0):
            raise core.BadRequest("price_milli must be a non-negative integer")
        tx, status = self.purchase(product_id, token, price, body.get("currency") or "CNY")
        return core.json_response({"transaction_id": tx["transactionId"], "notify_status": status,
                                   "signed_transaction": self.signer.sign(tx)})

    def ctl_refund(self, req):
        tid = req.json().get("transaction_id")
        tx = self.api.transactions.get(tid) if isinstance(tid, str) else None
        if tx is None:
            return core.json_response({"error": "unknown transaction_id"}, 404)
        rtx = dict(tx, revocationDate=int(time.time() * 1000), revocationReason=0)
        self.api.add(rtx)
        status = self.out.send("REFUND", self.signer.notification("REFUND", rtx))
        return core.json_response({"transaction_id": tid, "notify_status": status})

    def phone(self, req):
        q = dict(req.query_pairs() + req.form_pairs())
        product_id, token = q.get("product_id", ""), q.get("app_account_token", "")
        title, back = q.get("title") or product_id, q.get("return_url", "")
        price = q.get("price_milli", "")
        price_milli = int(price) if price.isdigit() and len(price) < 12 else None
        if not product_id:
            raise core.BadRequest("product_id is required")
        if req.method == "GET":
            amount = "" if price_milli is None else " for %d.%02d" % (price_milli // 1000, price_milli % 1000 // 10)
            hidden = "".join('<input type="hidden" name="%s" value="%s">' % (k, html.escape(v))
                             for k, v in (("product_id", product_id), ("app_account_token", token),
                                          ("price_milli", price), ("title", title), ("return_url", back)))
            inner = ('<p>The App Store on a phone: buy <b>%s</b>%s in the app (product <code>%s</code>, '
                     'appAccountToken <code>%s</code>).</p><form method="post" action="/appstore/phone">%s'
                     '<button id="buy" type="submit">Buy</button></form>%s'
                     % (html.escape(title), amount, html.escape(product_id), html.escape(token or "none"),
                        hidden, _back_link(back)))
            return core.html_response(core.page("App Store (sandbox)", inner))
        if token and len(token) != 36:
            raise core.BadRequest("app_account_token must be a UUID")
        tx, status = self.purchase(product_id, token, price_milli)
        inner = ('<p id="bought">Purchased: transaction <code>%s</code>. Apple signed it and sent the '
                 'App Store Server Notification (ONE_TIME_CHARGE) to <code>%s</code>: answered '
                 '<b id="notify-status">%s</b>.</p>%s'
                 % (html.escape(tx["transactionId"]), html.escape(self.out.url or "(no endpoint)"),
                    html.escape(str(status)), _back_link(back)))
        return core.html_response(core.page("App Store (sandbox)", inner))


class GooglePlayProvider:
    channel = "googleplay"

    def __init__(self, app, state_dir, base, package_name, push_url, push_audience, push_email, time_scale):
        self.app = app
        self.dir = os.path.join(state_dir, "googleplay")
        os.makedirs(self.dir, exist_ok=True)
        self.state = PlayState(package_name, push_audience or push_url, push_email, state_dir=self.dir)
        self.state.base = base
        self.sa_file = self.state.service_account_json(os.path.join(self.dir, "service_account.json"))
        os.chmod(self.sa_file, 0o600)
        self.out = _Deliveries(app, "googleplay", PUBSUB_RETRY_S, time_scale)
        self.out.url = push_url

    @staticmethod
    def knows(_out_trade_no):
        return False

    def reset(self):
        self.out.reset()
        self.state.ack_fails = False

    def routes(self):
        base = "/_sandbox/googleplay"
        return [
            ("GET", r"/oauth2/v3/certs", self.google),
            ("POST", r"/token", self.google),
            ("GET|POST", r"/androidpublisher/v3/applications/.+", self.google),
            ("GET|POST", r"/googleplay/phone", self.phone),
            ("GET", base + r"/config", self.ctl_config),
            ("POST", base + r"/endpoint", self.ctl_endpoint),
            ("POST", base + r"/purchase", self.ctl_purchase),
            ("POST", base + r"/void", self.ctl_void),
            ("POST", base + r"/ack_fails", self.ctl_ack_fails),
            ("GET", base + r"/purchase", self.ctl_purchase_get),
            ("GET", base + r"/notifications", lambda _r: core.json_response(self.out.listing())),
        ]

    def google(self, req):
        status, obj = self.state.handle(req.method, req.path, req.headers, req.body)
        if obj is None:
            return core.Response(status, b"", "application/json")
        return core.json_response(obj, status)

    def ctl_config(self, _req):
        s = self.state
        return core.json_response({"package_name": s.package_name, "service_account": self.sa_file,
                                   "api_base": s.base, "push_audience": s.push_audience,
                                   "push_email": s.push_email, "push_certs_url": s.base + "/oauth2/v3/certs",
                                   "push_url": self.out.url})

    def ctl_endpoint(self, req):
        body = req.json()
        url = body.get("url", "")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise core.BadRequest("url must be http(s)")
        self.out.url = url
        if isinstance(body.get("audience"), str) and body["audience"]:
            self.state.push_audience = body["audience"]
        return core.json_response({"ok": True, "url": url, "audience": self.state.push_audience})

    def _push(self, kind, token, product_id=None):
        body = self.state.rtdn(kind, token, product_id)
        return self.out.send(kind, body, lambda: [("Authorization", "Bearer " + self.state.push_token())])

    def purchase(self, product_id, account_id):
        token = self.state.buy(product_id, account_id or None)
        return token, self._push("purchased", token, product_id)

    def ctl_purchase(self, req):
        body = req.json()
        product_id, account = body.get("product_id"), body.get("account_id")
        if not isinstance(product_id, str) or not product_id:
            raise core.BadRequest("product_id is required")
        if account is not None and not isinstance(account, str):
            raise core.BadRequest("account_id must be a string")
        token, status = self.purchase(product_id, account)
        return core.json_response({"purchase_token": token, "order_id": self.state.purchases[token]["orderId"],
                                   "push_status": status})

    def ctl_void(self, req):
        token = req.json().get("purchase_token")
        if not isinstance(token, str) or token not in self.state.purchases:
            return core.json_response({"error": "unknown purchase_token"}, 404)
        self.state.void(token)
        return core.json_response({"purchase_token": token, "push_status": self._push("voided", token)})

    def ctl_purchase_get(self, req):
        token = dict(req.query_pairs()).get("token", "")
        p = self.state.purchases.get(token)
        if p is None:
            return core.json_response({"error": "unknown token"}, 404)
        return core.json_response(p)

    def ctl_ack_fails(self, req):
        self.state.ack_fails = bool(req.json().get("on", True))
        return core.json_response({"ack_fails": self.state.ack_fails})

    def phone(self, req):
        q = dict(req.query_pairs() + req.form_pairs())
        product_id, account = q.get("product_id", ""), q.get("account_id", "")
        title, back = q.get("title") or product_id, q.get("return_url", "")
        if not product_id:
            raise core.BadRequest("product_id is required")
        if req.method == "GET":
            hidden = "".join('<input type="hidden" name="%s" value="%s">' % (k, html.escape(v))
                             for k, v in (("product_id", product_id), ("account_id", account),
                                          ("title", title), ("return_url", back)))
            inner = ('<p>Google Play on a phone: buy <b>%s</b> in the app (product <code>%s</code>, '
                     'obfuscatedAccountId <code>%s</code>).</p><form method="post" action="/googleplay/phone">%s'
                     '<button id="buy" type="submit">Buy</button></form>%s'
                     % (html.escape(title), html.escape(product_id), html.escape(account or "none"), hidden,
                        _back_link(back)))
            return core.html_response(core.page("Google Play (sandbox)", inner))
        token, status = self.purchase(product_id, account)
        inner = ('<p id="bought">Purchased: order <code>%s</code>. Google Play pushed the real-time developer '
                 'notification (signed by Pub/Sub) to <code>%s</code>: answered <b id="notify-status">%s</b>.'
                 '</p>%s' % (html.escape(self.state.purchases[token]["orderId"]),
                             html.escape(self.out.url or "(no endpoint)"), html.escape(str(status)),
                             _back_link(back)))
        return core.html_response(core.page("Google Play (sandbox)", inner))


def public_base(host, http_port):
    return "http://%s:%d" % ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, http_port)


def url_ok(url):
    return url == "" or urllib.parse.urlsplit(url).scheme in ("http", "https")
