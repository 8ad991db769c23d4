"""Helpers of the attack and crash suites (test_attack.py, test_crash.py):
database snapshots that prove "nothing changed", raw HTTP over a socket
(byte-exact requests, slow bodies), sandbox fault switches and byte-level
Alipay signing (for values that are not valid UTF-8)."""

import base64
import contextlib
import json
import socket
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import MOUNT, TIMEOUT

# Outcomes of a notification that was refused (nothing may change).
REJECTED = {"bad_signature", "mismatch", "amount_mismatch", "unknown_payment", "bad_input"}

# Columns that move without a state change (polling, delivery bookkeeping).
VOLATILE = {"last_query_at", "query_count", "updated_at", "attempts", "next_attempt_at",
            "last_error", "delivered_at", "last_attempt_at"}

STATE_TABLES = ("orders", "payments", "refunds", "entitlements", "webhook_events",
                "ledger_entries", "settlement_batches", "bill_rows")


def tables(harness):
    return {list(r.values())[0] for r in harness.query("SHOW TABLES")}


def snapshot(harness):
    """Every row of the state tables (volatile columns left out), and the
    notification log's size and outcome counts."""
    present = tables(harness)
    snap = {}
    for t in STATE_TABLES:
        if t not in present:
            continue
        rows = harness.query("SELECT * FROM `%s` ORDER BY 1" % t)
        snap[t] = [tuple(sorted((k, repr(v)) for k, v in r.items() if k not in VOLATILE))
                   for r in rows]
    snap["_max_notification_id"] = (harness.query(
        "SELECT COALESCE(MAX(id), 0) AS m FROM notifications")[0]["m"])
    snap["_outcomes"] = {r["outcome"]: r["n"] for r in harness.query(
        "SELECT outcome, COUNT(*) AS n FROM notifications GROUP BY outcome")}
    snap["_tables"] = sorted(present)
    return snap


def new_notifications(harness, since_id):
    return harness.query("SELECT id, channel, kind, payment_no, notify_id, outcome, detail, "
                         "LENGTH(raw_body) AS raw_len FROM notifications WHERE id > %s ORDER BY id",
                         since_id)


def diff_state(before, after):
    """Human-readable differences between two snapshots' state tables."""
    out = []
    if before["_tables"] != after["_tables"]:
        out.append("tables: %s -> %s" % (before["_tables"], after["_tables"]))
    for t in STATE_TABLES:
        b, a = set(before.get(t, [])), set(after.get(t, []))
        if b != a:
            out.append("%s: removed %s added %s" % (t, sorted(b - a)[:3], sorted(a - b)[:3]))
    return out


class Unchanged:
    """`with Unchanged(harness) as u:` -- on exit, the state tables are
    exactly as before and every notification stored meanwhile has an
    outcome in `allowed` (default: a refusal). u.rows: those
    notifications."""

    def __init__(self, harness, allowed=REJECTED, settle=0.0):
        self.harness = harness
        self.allowed = set(allowed)
        self.settle = settle
        self.rows = []

    def __enter__(self):
        self.before = snapshot(self.harness)
        return self

    def check(self):
        if self.settle:
            time.sleep(self.settle)
        after = snapshot(self.harness)
        d = diff_state(self.before, after)
        assert not d, "the database changed:\n" + "\n".join(d)
        self.rows = new_notifications(self.harness, self.before["_max_notification_id"])
        bad = [r for r in self.rows if r["outcome"] not in self.allowed]
        assert not bad, "notifications stored with outcomes outside %s: %r" % (
            sorted(self.allowed), bad)
        accepted_before = self.before["_outcomes"].get("accepted", 0)
        assert after["_outcomes"].get("accepted", 0) == accepted_before, (
            self.before["_outcomes"], after["_outcomes"])
        return self.rows

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.check()
        return False


# ------------------------------------------------------------- raw HTTP

class RawResponse:
    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self):
        try:
            return self.json()["error"]["code"]
        except Exception:
            return None

    def __repr__(self):
        return "RawResponse(%s, %r)" % (self.status, self.raw[:400])


def _parse_response(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return RawResponse(None, {}, b"", data)
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        body = out
    return RawResponse(status, headers, body, data)


def raw_request(st, method, path, body=b"", headers=None, pieces=None, pause=0.0,
                timeout=TIMEOUT, content_length=True):
    """Send one HTTP/1.1 request over a fresh socket, byte for byte: PATH
    is put on the request line as it is (relative to the mount point when
    it starts with '@', e.g. "@/checkout"). PIECES: send the body in these
    many parts with PAUSE seconds between them. Returns a RawResponse (the
    connection is closed by us after the reply)."""
    if path.startswith("@"):
        path = MOUNT + path[1:]
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Host": "127.0.0.1:%d" % st.port, "Connection": "close"}
    if content_length and body is not None:
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs.items() if v is not None)
    head = head.encode("latin-1") + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", st.port), timeout=timeout)
    try:
        if pieces and body:
            step = max(1, len(body) // pieces)
            chunks = [body[i:i + step] for i in range(0, len(body), step)]
            sock.sendall(head + chunks[0])
            for c in chunks[1:]:
                time.sleep(pause)
                sock.sendall(c)
        else:
            sock.sendall(head + (body or b""))
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    return _parse_response(data)


@contextlib.contextmanager
def background(fn, *args):
    """Run FN(*args) in a thread; yields a dict that gets 'result' or
    'error' once the thread is done (joined on exit)."""
    box = {}

    def run():
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # reported to the test
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield box
    finally:
        t.join(120)


# -------------------------------------------------------- sandbox faults

FAULTS_OFF = {"drop_notify": False, "duplicate": 0, "wrong_amount": False, "bad_signature": False,
              "delay_ms": 0, "http_5xx": False, "timeout": False, "no_notify": False,
              "refund_timeout": False, "server_delay_ms": 0}


def set_faults(harness, **faults):
    r = harness.sandbox_post("/_sandbox/faults", dict(FAULTS_OFF, **faults))
    assert r.status_code == 200, r.text
    return r.json()


@contextlib.contextmanager
def faults(harness, **kw):
    set_faults(harness, **kw)
    try:
        yield
    finally:
        set_faults(harness)


# --------------------------------------------------------- Alipay signing

def alipay_bytes_to_sign(fields):
    """Alipay's string to sign over (key, value) byte pairs, for values that
    are not valid UTF-8: sign and sign_type left out, empty values too,
    keys sorted by bytes."""
    items = sorted((k, v) for k, v in fields if k not in (b"sign", b"sign_type") and v != b"")
    return b"&".join(k + b"=" + v for k, v in items)


def rsa2_sign_bytes(private_key, data):
    return base64.b64encode(private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def form_bytes(fields):
    """application/x-www-form-urlencoded body from (key bytes, value bytes)."""
    import urllib.parse
    return b"&".join(urllib.parse.quote_plus(k).encode() + b"=" + urllib.parse.quote_plus(v).encode()
                     for k, v in fields)


def sandbox_alipay_sign(harness, params):
    """Sign a notification with the sandbox's /_sandbox/sign (sign and
    sign_type left out of the string)."""
    body = {"params": {k: v for k, v in params.items() if k != "sign"}, "drop_sign_type": True}
    r = harness.sandbox_post("/_sandbox/sign", body)
    assert r.status_code == 200, r.text
    out = dict(params)
    out["sign"] = r.json()["sign"]
    return out


def sandbox_wechat_sign(harness, params, sign_type):
    body = {"params": {k: v for k, v in params.items() if k != "sign"}, "sign_type": sign_type}
    r = harness.sandbox_post("/_sandbox/wechat/sign", body)
    assert r.status_code == 200, r.text
    out = dict(params)
    out["sign"] = r.json()["sign"]
    return out


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out after %s s: %s" % (timeout, what))
        time.sleep(interval)


def quiesce(harness, timeout=20):
    """Wait until no sandbox notification is still being retried (earlier
    tests' retries must not land inside a "nothing changed" window).
    Returns False if some are still pending after TIMEOUT seconds."""
    def settled():
        for path in ("/_sandbox/trades", "/_sandbox/wechat/trades"):
            r = harness.sandbox_get(path)
            if r.status_code != 200:
                continue
            for t in r.json():
                for n in t.get("notifications") or []:
                    if n.get("kind") != "manual" and not (n.get("acked") or n.get("gave_up")):
                        return False
        return True
    try:
        wait_for(settled, timeout, "sandbox notifications to settle", interval=0.3)
        return True
    except AssertionError:
        return False
