"""Stripe, simulated: the parts of the API a Checkout integration uses.

Written from Stripe's API reference, independently of paygate's src/:
  POST /v1/checkout/sessions, GET /v1/checkout/sessions/{id},
  POST /v1/checkout/sessions/{id}/expire, GET /v1/payment_intents/{id},
  POST /v1/refunds, GET /v1/refunds, GET /v1/refunds/{id},
  GET /v1/balance_transactions, POST /v1/webhook_endpoints.
Requests are form-encoded with bracket keys, authenticated with
"Authorization: Bearer sk_...", idempotent by Idempotency-Key (same key and
same parameters: the first reply again; other parameters: 400
idempotency_error). Events go to every registered endpoint, signed
"Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(whsec, t + '.' + body)>",
retried until a 2xx. The hosted page (GET /stripe/pay/{id}) has "Pay",
"Pay later (bank debit)" and "Decline" buttons.

The shared fault switches apply: drop_notify, duplicate, wrong_amount,
bad_signature, delay_ms, no_notify (events), http_5xx, timeout,
server_delay_ms (API calls); refund_timeout (refund executed, reply late).
POST /_sandbox/stripe/dashboard_refund makes a refund as the Dashboard does
(no metadata), with the events Stripe sends for it.
"""

import hashlib
import hmac
import html
import json
import random
import string
import threading
import time
import urllib.error
import urllib.request

from core import _OPENER, BadRequest, Response, html_response, json_response, log, page

RETRY_DELAYS = [1, 2, 4, 8, 15, 30]
ATTEMPT_TIMEOUT = 10.0
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}
MINIMUM = {"usd": 50, "eur": 50, "gbp": 30, "cny": 400, "jpy": 50, "hkd": 400, "sgd": 50,
           "aud": 50, "cad": 50, "chf": 50}
API_VERSION = "2024-06-20"


def _rand(n):
    alphabet = string.ascii_letters + string.digits
    rng = random.SystemRandom()
    return "".join(rng.choice(alphabet) for _ in range(n))


def sign_header(secret, body, t=None):
    """The Stripe-Signature header for body (bytes) at time t."""
    t = int(time.time()) if t is None else int(t)
    mac = hmac.new(secret.encode("utf-8"), b"%d." % t + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


def parse_brackets(pairs):
    """Stripe's form keys a[b][0][c]=v into nested dicts/lists."""
    root = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        path = [head] + ([p for p in rest[:-1].split("][")] if rest else [])
        if rest and not rest.endswith("]"):
            raise StripeError(400, "invalid_request_error", "parameter_unknown",
                              "Invalid array parameter %r" % key, key)
        if path[-1] == "" and len(path) > 1 and all(path[:-1]):   # a[]=x: a list
            node = root
            for part in path[:-2]:
                node = node.setdefault(part, {})
            node.setdefault(path[-2], []).append(value)
            continue
        if any(p == "" for p in path):
            raise StripeError(400, "invalid_request_error", "parameter_unknown",
                              "Invalid array parameter %r" % key, key)
        node = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if last:
                if part in node:
                    raise StripeError(400, "invalid_request_error", "parameter_duplicated",
                                      "Received duplicate parameter %r" % key, key)
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise StripeError(400, "invalid_request_error", "parameter_invalid",
                                      "Invalid parameter %r" % key, key)
    return root


def _list_of(node, key):
    """A dict with keys "0","1",... as a list (Stripe's indexed arrays)."""
    value = node.get(key)
    if value is None:
        return []
    if not isinstance(value, dict) or sorted(value) != [str(i) for i in range(len(value))]:
        raise StripeError(400, "invalid_request_error", "parameter_invalid",
                          "Invalid array for %s" % key, key)
    return [value[str(i)] for i in range(len(value))]


def _int(value, param, minimum=0):
    if not isinstance(value, str) or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
        raise StripeError(400, "invalid_request_error", "parameter_invalid_integer",
                          "Invalid integer: %s" % value, param)
    number = int(value)
    if number < minimum:
        raise StripeError(400, "invalid_request_error", "parameter_invalid_integer",
                          "This value must be greater than or equal to %d." % minimum, param)
    return number


class StripeError(Exception):
    def __init__(self, status, type_, code, message, param=None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "code": code, "message": message}}
        if param:
            self.body["error"]["param"] = param


class StripeProvider:
    channel = "stripe"

    def __init__(self, app, secret_key, webhook_secret, time_scale, public_http_base):
        self.app = app
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.time_scale = time_scale
        self.http_base = public_http_base
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.RLock()):
            self.sessions = {}
            self.intents = {}
            self.charges = {}
            self.refunds = {}
            self.balance = []          # balance transactions, oldest first
            self.events = []
            self.endpoints = []        # {"id", "url"}
            self.idempotency = {}      # key -> (fingerprint, status, body)
            self.requests = []         # what came in: method, path, headers, form
            self.clock_offset = 0
            self.fee_fixed = 0
            self.fee_rate_override = None

    def knows(self, payment_no):
        with self.lock:
            return any(s["client_reference_id"] == payment_no for s in self.sessions.values())

    @property
    def fee_rate_bp(self):
        if self.fee_rate_override is not None:
            return self.fee_rate_override
        return int(self.app.config.get("stripe_fee_rate_bp", 340))

    def now(self):
        return int(time.time()) + self.clock_offset

    def routes(self):
        base = "/_sandbox/stripe"
        return [
            ("POST", r"/v1/checkout/sessions", self.api(self.session_create)),
            ("GET", r"/v1/checkout/sessions/([A-Za-z0-9_]+)", self.api(self.session_get)),
            ("POST", r"/v1/checkout/sessions/([A-Za-z0-9_]+)/expire", self.api(self.session_expire)),
            ("GET", r"/v1/payment_intents/([A-Za-z0-9_]+)", self.api(self.intent_get)),
            ("POST", r"/v1/refunds", self.api(self.refund_create)),
            ("GET", r"/v1/refunds", self.api(self.refund_list)),
            ("GET", r"/v1/refunds/([A-Za-z0-9_]+)", self.api(self.refund_get)),
            ("GET", r"/v1/balance_transactions", self.api(self.balance_list)),
            ("POST", r"/v1/webhook_endpoints", self.api(self.endpoint_create)),
            ("GET", r"/stripe/pay/([A-Za-z0-9_]+)", self.hosted_page),
            ("POST", r"/stripe/pay/([A-Za-z0-9_]+)", self.hosted_submit),
            ("GET", base + r"/config", self.ctl_config),
            ("POST", base + r"/endpoint", self.ctl_endpoint),
            ("GET", base + r"/sessions/([A-Za-z0-9_]+)", self.ctl_session),
            ("GET", base + r"/by_payment/([A-Za-z0-9]+)", self.ctl_by_payment),
            ("POST", base + r"/pay", self.ctl_pay),
            ("POST", base + r"/async", self.ctl_async),
            ("POST", base + r"/refund_resolve", self.ctl_refund_resolve),
            ("POST", base + r"/dashboard_refund", self.ctl_dashboard_refund),
            ("POST", base + r"/resend", self.ctl_resend),
            ("POST", base + r"/sign", self.ctl_sign),
            ("POST", base + r"/age", self.ctl_age),
            ("GET", base + r"/events", self.ctl_events),
            ("POST", base + r"/fees", self.ctl_fees),
            ("POST", base + r"/balance_fault", self.ctl_balance_fault),
            ("GET", base + r"/requests", self.ctl_requests),
        ]

    # ------------------------------------------------------------------
    # API plumbing

    def api(self, handler):
        def serve(req):
            faults = self.app.faults.snapshot()
            if faults["timeout"]:
                time.sleep(30)
            if faults["server_delay_ms"]:
                time.sleep(faults["server_delay_ms"] / 1000.0)
            pairs = req.form_pairs() if req.method == "POST" else req.query_pairs()
            with self.lock:
                self.requests.append({
                    "method": req.method, "path": req.path,
                    "content_type": req.headers.get("Content-Type"),
                    "idempotency_key": req.headers.get("Idempotency-Key"),
                    "stripe_version": req.headers.get("Stripe-Version"),
                    "form": pairs, "raw": req.body.decode("utf-8", "replace") if req.body else req.raw_query})
            if faults["http_5xx"]:
                return json_response({"error": {"type": "api_error", "message": "sandbox fault"}}, 502)
            auth = req.headers.get("Authorization") or ""
            if not hmac.compare_digest(auth.encode(), ("Bearer " + self.secret_key).encode()):
                return json_response({"error": {"type": "invalid_request_error",
                                                 "message": "Invalid API Key provided"}}, 401)
            try:
                params = parse_brackets(pairs)
                return self._idempotent(req, params, handler, faults)
            except StripeError as exc:
                return json_response(exc.body, exc.status)
        return serve

    def _idempotent(self, req, params, handler, faults):
        key = req.headers.get("Idempotency-Key") if req.method == "POST" else None
        fingerprint = json.dumps([req.path, params], sort_keys=True)
        if key:
            with self.lock:
                seen = self.idempotency.get(key)
            if seen:
                if seen[0] != fingerprint:
                    raise StripeError(400, "idempotency_error", None,
                                      "Keys for idempotent requests can only be used with the same "
                                      "parameters they were first used with.")
                return Response(seen[1], seen[2], "application/json",
                                [("Idempotent-Replayed", "true")])
        status, value = 200, handler(req, params)
        body = json.dumps(value, indent=1)
        if key:
            with self.lock:
                self.idempotency[key] = (fingerprint, status, body)
        if faults["refund_timeout"] and req.path == "/v1/refunds" and req.method == "POST":
            time.sleep(30)
        return Response(status, body, "application/json")

    @staticmethod
    def _missing(kind, ident):
        raise StripeError(404, "invalid_request_error", "resource_missing",
                          "No such %s: '%s'" % (kind, ident), "id")

    # ------------------------------------------------------------------
    # checkout sessions

    def session_create(self, _req, p):
        if p.get("mode") != "payment":
            raise StripeError(400, "invalid_request_error", "parameter_invalid",
                              "mode must be payment in this sandbox", "mode")
        items = _list_of(p, "line_items")
        if len(items) != 1:
            raise StripeError(400, "invalid_request_error", "parameter_missing",
                              "Exactly one line item is supported here", "line_items")
        item = items[0]
        price = item.get("price_data") or {}
        currency = price.get("currency", "")
        if len(currency) != 3 or not currency.islower():
            raise StripeError(400, "invalid_request_error", "parameter_invalid",
                              "Invalid currency: %s" % currency, "line_items[0][price_data][currency]")
        unit = _int(price.get("unit_amount"), "line_items[0][price_data][unit_amount]")
        quantity = _int(item.get("quantity"), "line_items[0][quantity]", 1)
        name = (price.get("product_data") or {}).get("name")
        if not name:
            raise StripeError(400, "invalid_request_error", "parameter_missing",
                              "Missing required param: line_items[0][price_data][product_data][name].",
                              "line_items[0][price_data][product_data][name]")
        total = unit * quantity
        if total < MINIMUM.get(currency, 50):
            raise StripeError(400, "invalid_request_error", "amount_too_small",
                              "The Checkout Session's total amount due must add up to at least "
                              "%d %s" % (MINIMUM.get(currency, 50), currency))
        for url in ("success_url", "cancel_url"):
            if url in p and not p[url].startswith(("http://", "https://")):
                raise StripeError(400, "invalid_request_error", "url_invalid", "Not a valid URL", url)
        if "success_url" not in p:
            raise StripeError(400, "invalid_request_error", "parameter_missing",
                              "Missing required param: success_url.", "success_url")
        now = self.now()
        expires = _int(p.get("expires_at", str(now + 86400)), "expires_at")
        if expires < now + 1800 or expires > now + 86400:
            raise StripeError(400, "invalid_request_error", "parameter_invalid",
                              "The `expires_at` timestamp must be between 30 minutes and 24 hours "
                              "from Checkout Session creation.", "expires_at")
        sid = "cs_test_" + _rand(58)   # longer than 64 characters, as live ids are
        session = {
            "id": sid, "object": "checkout.session", "mode": "payment", "livemode": False,
            "status": "open", "payment_status": "unpaid", "payment_intent": None,
            "amount_subtotal": total, "amount_total": total, "currency": currency,
            "client_reference_id": p.get("client_reference_id"),
            "metadata": dict(p.get("metadata") or {}),
            "created": now, "expires_at": expires,
            "success_url": p.get("success_url"), "cancel_url": p.get("cancel_url"),
            "url": "%s/stripe/pay/%s" % (self.http_base, sid),
            "_intent_metadata": dict((p.get("payment_intent_data") or {}).get("metadata") or {}),
            "_product": name, "_declines": 0,
        }
        with self.lock:
            self.sessions[sid] = session
        return self._public(session)

    @staticmethod
    def _public(obj):
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _session(self, sid):
        with self.lock:
            session = self.sessions.get(sid)
        if not session:
            self._missing("checkout.session", sid)
        self._expire_if_due(session)
        return session

    def _expire_if_due(self, session):
        with self.lock:
            due = session["status"] == "open" and self.now() >= session["expires_at"]
            if due:
                session["status"] = "expired"
        if due:
            self.emit("checkout.session.expired", self._public(session))

    def session_get(self, req, _p):
        return self._public(self._session(req.match.group(1)))

    def session_expire(self, req, _p):
        session = self._session(req.match.group(1))
        with self.lock:
            if session["status"] != "open":
                raise StripeError(400, "invalid_request_error", None,
                                  "Only Checkout Sessions with a status in [\"open\"] can be expired.")
            session["status"] = "expired"
        self.emit("checkout.session.expired", self._public(session))
        return self._public(session)

    def intent_get(self, req, _p):
        with self.lock:
            intent = self.intents.get(req.match.group(1))
        if not intent:
            self._missing("payment_intent", req.match.group(1))
        return intent

    # ------------------------------------------------------------------
    # paying

    def _fee(self, amount):
        """Stripe's pricing: a percentage plus a fixed amount per charge."""
        return (amount * self.fee_rate_bp + 5000) // 10000 + self.fee_fixed

    def _complete(self, session, delayed):
        """The buyer confirmed: a payment intent; paid at once or later (bank debit)."""
        with self.lock:
            if session["status"] != "open":
                raise BadRequest("session is %s" % session["status"])
            pid = "pi_" + _rand(24)
            intent = {"id": pid, "object": "payment_intent", "amount": session["amount_total"],
                      "currency": session["currency"], "metadata": session["_intent_metadata"],
                      "status": "processing" if delayed else "succeeded", "latest_charge": None,
                      "created": self.now(), "livemode": False}
            self.intents[pid] = intent
            session["payment_intent"] = pid
            session["status"] = "complete"
            session["payment_status"] = "unpaid" if delayed else "paid"
            if not delayed:
                self._charge(intent)
        self.emit("checkout.session.completed", self._public(session))

    def _charge(self, intent):
        cid = "ch_" + _rand(24)
        fee = self._fee(intent["amount"])
        txn = {"id": "txn_" + _rand(24), "object": "balance_transaction", "type": "charge",
               "amount": intent["amount"], "fee": fee, "net": intent["amount"] - fee,
               "currency": intent["currency"], "source": cid, "created": self.now(),
               "reporting_category": "charge"}
        self.charges[cid] = {"id": cid, "object": "charge", "amount": intent["amount"],
                             "amount_refunded": 0, "currency": intent["currency"],
                             "payment_intent": intent["id"], "balance_transaction": txn["id"],
                             "paid": True, "refunded": False, "created": self.now(),
                             "livemode": False, "metadata": {}}
        intent["latest_charge"] = cid
        self.balance.append(txn)

    def _async(self, session, succeeded):
        with self.lock:
            intent = self.intents.get(session["payment_intent"] or "")
            if not intent or intent["status"] != "processing":
                raise BadRequest("no delayed payment under way for %s" % session["id"])
            if succeeded:
                intent["status"] = "succeeded"
                session["payment_status"] = "paid"
                self._charge(intent)
            else:
                intent["status"] = "requires_payment_method"
        self.emit("checkout.session.async_payment_succeeded" if succeeded
                  else "checkout.session.async_payment_failed", self._public(session))

    def hosted_page(self, req):
        with self.lock:
            session = self.sessions.get(req.match.group(1))
        if not session:
            return html_response(page("Stripe Checkout", "<p>No such session.</p>"), 404)
        self._expire_if_due(session)
        state = session["status"]
        note = ""
        if session["_declines"]:
            note = "<p id=\"declined\">Your card was declined.</p>"
        if state != "open":
            inner = "<p id=\"state\">This Checkout Session is %s.</p>" % html.escape(state)
            return html_response(page("Stripe Checkout", inner))
        amount = session["amount_total"]
        shown = str(amount) if session["currency"] in ZERO_DECIMAL else "%d.%02d" % divmod(amount, 100)
        buttons = "".join(
            "<button type=\"submit\" name=\"action\" value=\"%s\" id=\"%s\">%s</button>" % (v, v, t)
            for v, t in (("pay", "Pay"), ("delayed", "Pay later (bank debit)"), ("decline", "Decline")))
        inner = ("<p id=\"product\">%s</p><p id=\"amount\">%s %s</p>%s"
                 "<p>Card, Apple Pay or Google Pay</p>"
                 "<form method=\"post\" action=\"/stripe/pay/%s\">%s</form>"
                 "<p><a id=\"cancel\" href=\"%s\">Back</a></p>") % (
            html.escape(session["_product"]), html.escape(shown), html.escape(session["currency"].upper()),
            note, html.escape(session["id"]), buttons, html.escape(session["cancel_url"] or "#"))
        return html_response(page("Stripe Checkout", inner))

    def hosted_submit(self, req):
        session = self._session_or_bad(req.match.group(1))
        action = dict(req.form_pairs()).get("action")
        if action == "decline":
            with self.lock:
                session["_declines"] += 1
            return Response(303, "", headers=[("Location", "/stripe/pay/%s" % session["id"])])
        if action not in ("pay", "delayed"):
            raise BadRequest("action must be pay, delayed or decline")
        self._complete(session, action == "delayed")
        return Response(303, "", headers=[("Location", session["success_url"])])

    def _session_or_bad(self, sid):
        with self.lock:
            session = self.sessions.get(sid)
        if not session:
            raise BadRequest("no such session %s" % sid)
        self._expire_if_due(session)
        return session

    # ------------------------------------------------------------------
    # refunds

    def refund_create(self, _req, p):
        amount = _int(p.get("amount"), "amount", 1) if "amount" in p else None
        pending = self.app.faults.snapshot().get("stripe_refund_pending", False)
        return dict(self._refund(p.get("payment_intent"), amount, dict(p.get("metadata") or {}), pending)[0])

    def _refund(self, pid, amount, metadata, pending, deliver=True):
        """A refund of the intent's charge, by the API or in the Dashboard
        (no metadata): refund.created, and charge.refunded once it succeeded."""
        with self.lock:
            intent = self.intents.get(pid or "")
            if not intent:
                self._missing("payment_intent", pid)
            charge = self.charges.get(intent["latest_charge"] or "")
            if intent["status"] != "succeeded" or not charge:
                raise StripeError(400, "invalid_request_error", "charge_not_refundable",
                                  "This PaymentIntent does not have a successful charge to refund.")
            left = charge["amount"] - charge["amount_refunded"] - sum(
                r["amount"] for r in self.refunds.values()
                if r["charge"] == charge["id"] and r["status"] == "pending")
            amount = left if amount is None else amount
            if left <= 0:
                raise StripeError(400, "invalid_request_error", "charge_already_refunded",
                                  "Charge %s has already been refunded." % charge["id"])
            if amount > left:
                raise StripeError(400, "invalid_request_error", "amount_too_large",
                                  "Refund amount (%d) is greater than unrefunded amount on charge (%d)"
                                  % (amount, left), "amount")
            rid = "re_" + _rand(24)
            refund = {"id": rid, "object": "refund", "amount": amount, "currency": charge["currency"],
                      "charge": charge["id"], "payment_intent": pid, "metadata": metadata,
                      "status": "pending" if pending else "succeeded", "created": self.now(),
                      "balance_transaction": None}
            self.refunds[rid] = refund
            if not pending:
                self._refund_done(refund)
        emit = self.emit if deliver else self.record_event
        sent = [emit("refund.created", dict(refund))["id"]]
        if refund["status"] == "succeeded":
            sent.append(emit("charge.refunded", dict(self.charges[charge["id"]]))["id"])
        return refund, sent

    def _refund_done(self, refund):
        charge = self.charges[refund["charge"]]
        charge["amount_refunded"] += refund["amount"]
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        txn = {"id": "txn_" + _rand(24), "object": "balance_transaction", "type": "refund",
               "amount": -refund["amount"], "fee": 0, "net": -refund["amount"],
               "currency": refund["currency"], "source": refund["id"], "created": self.now(),
               "reporting_category": "refund"}
        refund["balance_transaction"] = txn["id"]
        self.balance.append(txn)

    def refund_get(self, req, _p):
        with self.lock:
            refund = self.refunds.get(req.match.group(1))
        if not refund:
            self._missing("refund", req.match.group(1))
        return dict(refund)

    @staticmethod
    def _page(items, p, url):
        limit = _int(p.get("limit", "10"), "limit", 1)
        if limit > 100:
            raise StripeError(400, "invalid_request_error", "parameter_invalid_integer",
                              "limit must be at most 100", "limit")
        after = p.get("starting_after")
        if after:
            ids = [i["id"] for i in items]
            if after not in ids:
                raise StripeError(400, "invalid_request_error", "resource_missing",
                                  "No such object: '%s'" % after, "starting_after")
            items = items[ids.index(after) + 1:]
        return {"object": "list", "url": url, "data": items[:limit], "has_more": len(items) > limit}

    def refund_list(self, _req, p):
        with self.lock:
            items = [dict(r) for r in self.refunds.values()
                     if not p.get("payment_intent") or r["payment_intent"] == p["payment_intent"]]
        items.sort(key=lambda r: r["created"], reverse=True)
        return self._page(items, p, "/v1/refunds")

    def balance_list(self, _req, p):
        created = p.get("created") or {}
        gte = _int(created["gte"], "created[gte]") if "gte" in created else None
        lt = _int(created["lt"], "created[lt]") if "lt" in created else None
        expand = p.get("expand") or []
        if not isinstance(expand, list) or any(e not in ("data.source", "data.source.payment_intent")
                                               for e in expand):
            raise StripeError(400, "invalid_request_error", "parameter_invalid",
                              "This property cannot be expanded (%s)." % expand, "expand")
        with self.lock:
            items = [self._expanded(t, expand) for t in self.balance
                     if (gte is None or t["created"] >= gte) and (lt is None or t["created"] < lt)]
        items.reverse()
        return self._page(items, p, "/v1/balance_transactions")

    def _expanded(self, txn, expand):
        out = {k: v for k, v in txn.items() if not k.startswith("_")}
        if not expand:
            return out
        source = self.charges.get(txn["source"]) or self.refunds.get(txn["source"])
        if source is None:
            return out
        source = dict(source)
        if "data.source.payment_intent" in expand and source.get("payment_intent") in self.intents:
            source["payment_intent"] = dict(self.intents[source["payment_intent"]])
        out["source"] = source
        return out

    def endpoint_create(self, _req, p):
        url = p.get("url", "")
        if not url.startswith(("http://", "https://")):
            raise StripeError(400, "invalid_request_error", "url_invalid", "Invalid URL", "url")
        endpoint = {"id": "we_" + _rand(24), "object": "webhook_endpoint", "url": url,
                    "enabled_events": _list_of(p, "enabled_events") or ["*"],
                    "secret": self.webhook_secret, "status": "enabled", "api_version": API_VERSION}
        with self.lock:
            self.endpoints.append(endpoint)
        return endpoint

    # ------------------------------------------------------------------
    # events and their delivery

    def record_event(self, type_, obj):
        """An event stored but not sent (tests deliver it with resend, in their order)."""
        event = {"id": "evt_" + _rand(24), "object": "event", "api_version": API_VERSION,
                 "created": self.now(), "type": type_, "livemode": False,
                 "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
                 "data": {"object": json.loads(json.dumps(obj))}, "_deliveries": []}
        with self.lock:
            self.events.append(event)
        return event

    def emit(self, type_, obj):
        event = self.record_event(type_, obj)
        with self.lock:
            endpoints = [e["url"] for e in self.endpoints
                         if "*" in e["enabled_events"] or type_ in e["enabled_events"]]
        faults = self.app.faults.snapshot()
        if faults["no_notify"]:
            log("stripe event %s %s not sent (no_notify fault)" % (event["id"], type_))
            return event
        for url in endpoints:
            self.app.scheduler.now(self.deliver, event, url, 0)
        return event

    def event_body(self, event, wrong_amount=False):
        public = {k: v for k, v in event.items() if not k.startswith("_")}
        if wrong_amount:
            public = json.loads(json.dumps(public))
            obj = public["data"]["object"]
            for key in ("amount_total", "amount"):
                if isinstance(obj.get(key), int):
                    obj[key] += 1
        return json.dumps(public, indent=2).encode("utf-8")

    def _send(self, event, url, body, header, copy):
        status, data, error = post_signed(url, body, header)
        acked = status is not None and 200 <= status < 300
        with self.lock:
            event["_deliveries"].append({"url": url, "status": status, "acked": acked, "copy": copy,
                                         "at": time.time(), "body": data[:200].decode("utf-8", "replace"),
                                         "error": error})
        log("stripe event %s %s copy=%d -> %s%s" % (event["id"], event["type"], copy, status,
                                                    " (acked)" if acked else ""))
        return acked

    def deliver(self, event, url, index):
        faults = self.app.faults.snapshot()
        if faults["delay_ms"]:
            time.sleep(faults["delay_ms"] / 1000.0)
        acked = False
        if faults["drop_notify"]:
            with self.lock:
                event["_deliveries"].append({"url": url, "status": None, "acked": False,
                                             "dropped": True, "at": time.time()})
        else:
            body = self.event_body(event, faults["wrong_amount"])
            secret = ("x" + self.webhook_secret) if faults["bad_signature"] else self.webhook_secret
            header = sign_header(secret, body, self.now())
            results = [False] * max(1, faults["duplicate"])
            threads = [threading.Thread(target=lambda i=i: results.__setitem__(
                i, self._send(event, url, body, header, i)), daemon=True) for i in range(len(results))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            acked = any(results)
        if not acked and index < len(RETRY_DELAYS):
            self.app.scheduler.later(RETRY_DELAYS[index] * self.time_scale, self.deliver, event, url,
                                     index + 1)

    # ------------------------------------------------------------------
    # control API (tests)

    def ctl_config(self, _req):
        return json_response({"secret_key": self.secret_key, "webhook_secret": self.webhook_secret,
                              "api_version": API_VERSION, "fee_rate_bp": self.fee_rate_bp})

    def ctl_endpoint(self, req):
        body = req.json()
        url = body.get("url", "")
        if not url.startswith(("http://", "https://")):
            raise BadRequest("url must be http(s)")
        with self.lock:
            if body.get("replace", True):
                self.endpoints = []
            self.endpoints.append({"id": "we_" + _rand(24), "url": url, "enabled_events": ["*"]})
        return json_response({"ok": True, "url": url})

    def _ctl_session(self, body):
        sid = body.get("session_id")
        if not sid and body.get("payment_no"):
            with self.lock:
                found = [s for s in self.sessions.values()
                         if s["client_reference_id"] == body["payment_no"]]
            sid = found[-1]["id"] if found else None
        return self._session_or_bad(sid or "")

    def ctl_session(self, req):
        with self.lock:
            session = self.sessions.get(req.match.group(1))
            if not session:
                return json_response({"error": "no such session"}, 404)
            return json_response(dict(self._public(session), declines=session["_declines"]))

    def ctl_by_payment(self, req):
        with self.lock:
            found = [self._public(s) for s in self.sessions.values()
                     if s["client_reference_id"] == req.match.group(1)]
        if not found:
            return json_response({"error": "no such session"}, 404)
        return json_response(found[-1])

    def ctl_pay(self, req):
        body = req.json()
        session = self._ctl_session(body)
        self._complete(session, bool(body.get("delayed")))
        return json_response(self._public(session))

    def ctl_async(self, req):
        body = req.json()
        session = self._ctl_session(body)
        self._async(session, bool(body.get("succeeded", True)))
        return json_response(self._public(session))

    def ctl_refund_resolve(self, req):
        body = req.json()
        status = body.get("status", "succeeded")
        if status not in ("succeeded", "failed", "canceled"):
            raise BadRequest("status must be succeeded, failed or canceled")
        with self.lock:
            refund = self.refunds.get(body.get("refund_id", ""))
            if not refund or refund["status"] != "pending":
                raise BadRequest("no pending refund %r" % body.get("refund_id"))
            refund["status"] = status
            if status == "succeeded":
                self._refund_done(refund)
            charge = dict(self.charges[refund["charge"]])
        self.emit("refund.updated", dict(refund))
        if status == "succeeded":
            self.emit("charge.refunded", charge)
        return json_response(dict(refund))

    def ctl_dashboard_refund(self, req):
        """A refund made in the Stripe Dashboard: no metadata of paygate's;
        refund.created (and charge.refunded once succeeded), then refund.updated
        as Stripe sends when the refund's details settle. {"payment_no",
        "amount" (default what is left), "pending": bool, "deliver": false to
        only store the events (sent later with resend, in any order)}."""
        body = req.json()
        session = self._ctl_session(body)
        amount = body.get("amount")
        if amount is not None and (not isinstance(amount, int) or amount < 1):
            raise BadRequest("amount must be a positive integer")
        deliver = body.get("deliver", True) is not False
        try:
            refund, ids = self._refund(session["payment_intent"], amount, {}, bool(body.get("pending")), deliver)
        except StripeError as e:
            return json_response(e.body, e.status)
        if refund["status"] == "succeeded":
            ids.append((self.emit if deliver else self.record_event)("refund.updated", dict(refund))["id"])
        return json_response(dict(refund, event_ids=ids))

    def ctl_resend(self, req):
        """Delivers a stored event again, as Stripe's retries and 'resend' do."""
        body = req.json()
        with self.lock:
            found = [e for e in self.events if e["id"] == body.get("event_id")]
            urls = [e["url"] for e in self.endpoints]
        if not found:
            raise BadRequest("no such event")
        event = found[0]
        payload = self.event_body(event)
        results = []
        for url in urls:
            header = sign_header(self.webhook_secret, payload, body.get("t", self.now()))
            results.append(self._send(event, url, payload, header, 0))
        return json_response({"acked": results})

    def ctl_sign(self, req):
        """Signs an arbitrary body (attack tests build forged events with it)."""
        body = req.json()
        payload = body.get("body", "").encode("utf-8")
        secret = body.get("secret", self.webhook_secret)
        return json_response({"header": sign_header(secret, payload, body.get("t", self.now()))})

    def ctl_age(self, req):
        """Moves the sandbox's clock forward (sessions expire when it passes expires_at)."""
        body = req.json()
        seconds = body.get("seconds", 0)
        if not isinstance(seconds, int) or seconds < 0:
            raise BadRequest("seconds must be a non-negative integer")
        with self.lock:
            self.clock_offset += seconds
        return json_response({"clock_offset": self.clock_offset})

    def ctl_fees(self, req):
        """Stripe's pricing for the charges that follow: fee_rate_bp and a fixed part."""
        body = req.json()
        rate, fixed = body.get("fee_rate_bp"), body.get("fixed", 0)
        if (rate is not None and (not isinstance(rate, int) or rate < 0)) or not isinstance(fixed, int) or fixed < 0:
            raise BadRequest("fee_rate_bp and fixed are non-negative integers")
        with self.lock:
            self.fee_rate_override = rate
            self.fee_fixed = fixed
        return json_response({"fee_rate_bp": self.fee_rate_bp, "fixed": self.fee_fixed})

    def ctl_balance_fault(self, req):
        """Injects a discrepancy into the balance transactions of a payment's
        charge: {"payment_no", "drop": true} removes it, {"amount_delta": n}
        changes its amount."""
        body = req.json()
        with self.lock:
            pis = [s["payment_intent"] for s in self.sessions.values()
                   if s["client_reference_id"] == body.get("payment_no") and s["payment_intent"]]
            charges = [c["id"] for c in self.charges.values() if c["payment_intent"] in pis]
            hit = [t for t in self.balance if t["source"] in charges]
            if not hit:
                raise BadRequest("no balance transaction for that payment")
            for txn in hit:
                if body.get("drop"):
                    self.balance.remove(txn)
                else:
                    txn["amount"] += int(body.get("amount_delta", 0))
                    txn["net"] = txn["amount"] - txn["fee"]
        return json_response({"changed": [t["id"] for t in hit]})

    def ctl_events(self, req):
        query = dict(req.query_pairs())
        with self.lock:
            items = [dict(self._public(e), deliveries=list(e["_deliveries"])) for e in self.events
                     if not query.get("type") or e["type"] == query["type"]]
        return json_response(items)

    def ctl_requests(self, _req):
        with self.lock:
            return json_response(list(self.requests))


def post_signed(url, body, header):
    """POST a JSON event with its Stripe-Signature header."""
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": header, "Connection": "close"})
    try:
        with _OPENER.open(req, timeout=ATTEMPT_TIMEOUT) as resp:
            return resp.status, resp.read(65536), None
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read(65536)
        except Exception:  # noqa: BLE001 - body of an error reply is best effort
            data = b""
        return exc.code, data, None
    except Exception as exc:  # noqa: BLE001 - every transport error is an attempt result
        return None, b"", "%s: %s" % (type(exc).__name__, exc)

