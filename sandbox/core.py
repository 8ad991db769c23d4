"""Provider-independent parts of the sandbox: HTTP(S) serving, routing,
fault switches, outbound notification delivery, key and certificate set-up.

A provider module (alipay_gw.py, wechat_gw.py) is an object with
``routes()`` -> list of (methods, regex, handler) and ``reset()``.
Handlers take a Request and return a Response.
"""

import datetime
import html
import ipaddress
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BEIJING = datetime.timezone(datetime.timedelta(hours=8))
MAX_BODY = 1 << 20


def beijing_now():
    return datetime.datetime.now(BEIJING)


def beijing_str(moment=None):
    return (moment or beijing_now()).strftime("%Y-%m-%d %H:%M:%S")


_log_lock = threading.Lock()


def log(line):
    stamp = beijing_now().strftime("%H:%M:%S.%f")[:-3]
    with _log_lock:
        sys.stderr.write("[sandbox %s] %s\n" % (stamp, line))
        sys.stderr.flush()


# --------------------------------------------------------------------------
# Requests and responses


class BadRequest(Exception):
    pass


class Request:
    def __init__(self, method, target, headers, body, scheme, client, peer_cert=None):
        self.method = method
        self.target = target
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path
        self.raw_query = parts.query
        self.headers = headers
        self.body = body
        self.scheme = scheme
        self.client = client
        # HTTPS only: the client certificate (ssl getpeercert() dict) when the
        # client presented one that chains to the sandbox CA, else None.
        self.peer_cert = peer_cert
        self.match = None

    def query_pairs(self):
        return parse_form(self.raw_query)

    def form_pairs(self):
        ctype = (self.headers.get("Content-Type") or "").lower()
        if not self.body:
            return []
        if ctype.startswith("application/x-www-form-urlencoded") or not ctype:
            return parse_form(self.body.decode("utf-8"))
        return []

    def json(self):
        if not self.body:
            return {}
        try:
            value = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("body is not JSON: %s" % exc)
        if not isinstance(value, dict):
            raise BadRequest("body must be a JSON object")
        return value


def parse_form(text):
    try:
        return urllib.parse.parse_qsl(text, keep_blank_values=True,
                                      encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("bad form encoding: %s" % exc)


class Response:
    def __init__(self, status=200, body=b"", content_type="text/plain; charset=utf-8",
                 headers=None):
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.headers = [("Content-Type", content_type)]
        for item in headers or []:
            self.headers.append(item)


def json_response(value, status=200):
    return Response(status, json.dumps(value, ensure_ascii=False, indent=1),
                    "application/json; charset=utf-8")


def html_response(body, status=200):
    return Response(status, body, "text/html; charset=utf-8")


def redirect(location):
    return Response(302, "", "text/plain; charset=utf-8", [("Location", location)])


def page(title, inner):
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<title>%s</title></head><body>\n<h1>%s</h1>\n%s\n</body></html>\n"
            % (html.escape(title), html.escape(title), inner))


# --------------------------------------------------------------------------
# Fault switches (shared by every provider)

FAULT_DEFAULTS = {
    "drop_notify": False,     # notification attempts are not delivered
    "duplicate": 1,           # copies sent concurrently per attempt
    "wrong_amount": False,    # signed notifications carry amount + 1 fen
    "bad_signature": False,   # notifications carry a corrupted signature
    "delay_ms": 0,            # wait before each notification attempt
    "http_5xx": False,        # server calls answer 502
    "timeout": False,         # server calls hang 30 s before being served
    "server_delay_ms": 0,     # server calls wait this long, then are served normally
    "no_notify": False,       # paying sends no payment notification at all
    "refund_timeout": False,  # refund calls are executed, then hang 30 s before replying
    # Alipay: alipay.trade.refund answers 10000 with fund_change N and moves no
    # money yet; the refund completes at POST /_sandbox/alipay/refund_complete.
    "alipay_refund_deferred": False,
    # WeChat: refunds end in CHANGE (abnormal: handled by hand in the merchant
    # platform) instead of SUCCESS; POST /_sandbox/wechat/refund_resolve ends it.
    "wechat_refund_change": False,
    # Alipay certificate mode: replies name another alipay_cert_sn.
    "alipay_cert_sn_other": False,
    # Alipay transfers (sandbox/alipay_transfer.py).
    "transfer_timeout": False,
    "transfer_system_error": False,
    "transfer_dealing": 0,
    "transfer_other_out_biz_no": False,
    # WeChat v3 merchant transfers (sandbox/wechat_v3_transfer.py).
    "wx_transfer_timeout": False,
    "wx_transfer_system_error": False,
    "wx_transfer_processing": 0,
    "wx_transfer_confirm": False,
    # Stripe: refunds answer status pending; POST /_sandbox/stripe/refund_resolve ends them.
    "stripe_refund_pending": False,
}


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._values = dict(FAULT_DEFAULTS)

    def snapshot(self):
        with self._lock:
            return dict(self._values)

    def update(self, changes):
        clean = {}
        for key, value in changes.items():
            if key not in FAULT_DEFAULTS:
                raise BadRequest("unknown fault %r" % key)
            default = FAULT_DEFAULTS[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise BadRequest("fault %s takes true/false" % key)
            else:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise BadRequest("fault %s takes a non-negative integer" % key)
            clean[key] = value
        if clean.get("duplicate") == 0:
            clean["duplicate"] = 1
        with self._lock:
            self._values.update(clean)
            return dict(self._values)

    def reset(self):
        with self._lock:
            self._values = dict(FAULT_DEFAULTS)


# --------------------------------------------------------------------------
# Outbound notifications


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE
_OPENER = urllib.request.build_opener(
    _NoRedirect, urllib.request.HTTPSHandler(context=_INSECURE),
    urllib.request.ProxyHandler({}))


def post(url, body, content_type, timeout=10.0, headers=None):
    """POST body; returns (status or None, body bytes, error text or None).
    headers: extra (name, value) pairs (WeChat Pay v3's Wechatpay-*).

    Redirects are not followed; HTTPS certificates are not checked (the
    merchant side runs on loopback with its own test certificates)."""
    all_headers = {
        "Content-Type": content_type,
        "User-Agent": "Mozilla/4.0 (paygate provider sandbox)",
        "Connection": "close",
    }
    all_headers.update(dict(headers or []))
    req = urllib.request.Request(url, data=body, method="POST", headers=all_headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(65536), None
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read(65536)
        except Exception:  # noqa: BLE001 - body of an error reply is best effort
            data = b""
        return exc.code, data, None
    except Exception as exc:  # noqa: BLE001 - every transport error is an attempt result
        return None, b"", "%s: %s" % (type(exc).__name__, exc)


class Scheduler:
    """Runs callables after a delay on daemon timers; reset() cancels all."""

    def __init__(self, stop_event):
        self._lock = threading.Lock()
        self._timers = set()
        self.generation = 0
        self.stop_event = stop_event

    def later(self, delay, func, *args):
        generation = self.generation

        def run():
            with self._lock:
                self._timers.discard(timer)
            if generation != self.generation or self.stop_event.is_set():
                return
            func(*args)

        timer = threading.Timer(max(0.0, delay), run)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()
        return timer

    def now(self, func, *args):
        thread = threading.Thread(target=func, args=args, daemon=True)
        thread.start()
        return thread

    def reset(self):
        with self._lock:
            self.generation += 1
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()


# --------------------------------------------------------------------------
# The application: routing over providers


class App:
    def __init__(self, config):
        self.config = config
        self.faults = Faults()
        self.stop_event = threading.Event()
        self.scheduler = Scheduler(self.stop_event)
        self.providers = []
        self.bill_faults = None   # bills.BillFaults, set by sandbox.py
        self._routes = []
        self._add_routes(self, self.routes())

    def add_provider(self, provider):
        self.providers.append(provider)
        self._add_routes(provider, provider.routes())

    def _add_routes(self, _owner, routes):
        for methods, pattern, handler in routes:
            self._routes.append((set(methods.split("|")), re.compile(pattern + r"\Z"),
                                 handler))

    def routes(self):
        return [
            ("GET", r"/", self.index),
            ("GET", r"/_sandbox/health", self.health),
            ("GET|POST", r"/_sandbox/faults", self.faults_route),
            ("POST", r"/_sandbox/reset", self.reset_route),
            ("POST", r"/_sandbox/pay_closed", self.pay_closed_route),
            ("GET|POST", r"/_sandbox/bill_faults", self.bill_faults_route),
        ]

    def handle(self, req):
        allowed = False
        for methods, regex, handler in self._routes:
            match = regex.match(req.path)
            if not match:
                continue
            allowed = True
            if req.method not in methods:
                continue
            req.match = match
            try:
                return handler(req)
            except BadRequest as exc:
                return json_response({"error": str(exc)}, 400)
        if allowed:
            return json_response({"error": "method not allowed"}, 405)
        return json_response({"error": "not found", "path": req.path}, 404)

    # core routes
    def index(self, _req):
        items = "".join("<li>%s</li>" % html.escape(type(p).__name__) for p in self.providers)
        return html_response(page("Provider sandbox", "<ul>%s</ul>" % items))

    def health(self, _req):
        return json_response({"ok": True, "pid": os.getpid()})

    def faults_route(self, req):
        if req.method == "POST":
            return json_response(self.faults.update(req.json()))
        return json_response(self.faults.snapshot())

    def reset_route(self, _req):
        self.scheduler.reset()
        self.faults.reset()
        if self.bill_faults is not None:
            self.bill_faults.reset()
        for provider in self.providers:
            provider.reset()
        return json_response({"ok": True})

    def provider(self, channel):
        for provider in self.providers:
            if getattr(provider, "channel", None) == channel:
                return provider
        return None

    def pay_closed_route(self, req):
        """A late payment: pays a trade although it was closed (either channel)."""
        body = req.json()
        out_trade_no = body.get("out_trade_no")
        if not isinstance(out_trade_no, str) or not out_trade_no:
            raise BadRequest("out_trade_no is required")
        channel = body.get("channel")
        if channel is None:
            knowing = [p for p in self.providers if p.knows(out_trade_no)]
            if not knowing:
                return json_response({"error": "unknown out_trade_no",
                                      "out_trade_no": out_trade_no}, 404)
            if len(knowing) > 1:
                raise BadRequest("both providers know %s: give channel" % out_trade_no)
            provider = knowing[0]
        else:
            provider = self.provider(channel)
            if provider is None:
                raise BadRequest('channel must be "alipay" or "wechat"')
        return provider.pay_closed(body)

    def bill_faults_route(self, req):
        if self.bill_faults is None:
            raise BadRequest("bills are not configured")
        if req.method == "POST":
            return json_response(self.bill_faults.update(req.json()))
        return json_response(self.bill_faults.list())


# --------------------------------------------------------------------------
# HTTP(S) servers


def make_handler(app, scheme):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "paygate-sandbox/1.0"
        sys_version = ""
        timeout = 120
        # Headers and body go out in separate writes: without TCP_NODELAY the
        # body waits ~40 ms for the client's delayed ACK on every reply.
        disable_nagle_algorithm = True

        def _serve(self):
            started = time.monotonic()
            length = self.headers.get("Content-Length")
            body = b""
            try:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                elif length:
                    size = int(length)
                    if size < 0 or size > MAX_BODY:
                        raise BadRequest("body too large")
                    body = self.rfile.read(size)
                peer = None
                if scheme == "https":
                    try:
                        peer = self.connection.getpeercert() or None
                    except (AttributeError, ValueError, OSError):
                        peer = None
                req = Request(self.command, self.path, self.headers, body, scheme,
                              self.client_address[0], peer)
                resp = app.handle(req)
            except BadRequest as exc:
                resp = json_response({"error": str(exc)}, 400)
            except Exception as exc:  # noqa: BLE001 - report, keep serving
                log("internal error on %s %s: %r" % (self.command, self.path, exc))
                resp = json_response({"error": "internal error: %r" % exc}, 500)
            self.send_response(resp.status)
            for name, value in resp.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
            target = self.path if len(self.path) <= 160 else self.path[:157] + "..."
            log("%s %s %s %s -> %d (%d bytes, %.3fs)" % (
                scheme, self.client_address[0], self.command, target, resp.status,
                len(resp.body), time.monotonic() - started))

        def _read_chunked(self):
            data = b""
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline(16)
                if len(data) > MAX_BODY:
                    raise BadRequest("body too large")

        do_GET = _serve
        do_POST = _serve
        do_HEAD = _serve

        def log_request(self, code="-", size="-"):  # _serve writes the line
            pass

        def log_message(self, fmt, *args):  # only errors get here now
            log("%s %s %s" % (scheme, self.client_address[0], fmt % args))

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def start_servers(app, host, http_port, https_port, cert_file, key_file, client_ca_file=None):
    """client_ca_file: request (not require) a client certificate chaining to
    it; handlers see it as Request.peer_cert (WeChat /secapi mutual TLS)."""
    http_srv = Server((host, http_port), make_handler(app, "http"))
    https_srv = Server((host, https_port), make_handler(app, "https"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        ctx.load_verify_locations(cafile=client_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    # Handshakes happen lazily, in each connection's own thread.
    https_srv.socket = ctx.wrap_socket(https_srv.socket, server_side=True,
                                       do_handshake_on_connect=False)
    threads = []
    for srv in (http_srv, https_srv):
        thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                                  daemon=True)
        thread.start()
        threads.append(thread)
    return [http_srv, https_srv], threads


# --------------------------------------------------------------------------
# Keys and certificates


def _write_private(path, pem):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _write_public(path, pem):
    with open(path, "wb") as handle:
        handle.write(pem)


def new_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_key_pair(private_path, public_path):
    """Create a PKCS#8 private / SPKI public RSA pair unless both exist."""
    if os.path.exists(private_path) and os.path.exists(public_path):
        return
    key = new_rsa_key()
    _write_private(private_path, private_pem(key))
    _write_public(public_path, public_pem(key))


def ensure_tls(state_dir):
    """CA (ca.pem, ca.key) and a server certificate for 127.0.0.1/localhost."""
    ca_pem = os.path.join(state_dir, "ca.pem")
    ca_key_path = os.path.join(state_dir, "ca.key")
    srv_pem = os.path.join(state_dir, "server.pem")
    srv_key_path = os.path.join(state_dir, "server.key")
    now = datetime.datetime.now(datetime.timezone.utc)
    if not (os.path.exists(ca_pem) and os.path.exists(ca_key_path)):
        ca_key = new_rsa_key()
        name = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paygate sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, "paygate sandbox test CA"),
        ])
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=False, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    key_cert_sign=True, crl_sign=True, encipher_only=False,
                    decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_private(ca_key_path, private_pem(ca_key))
        _write_public(ca_pem, cert.public_bytes(serialization.Encoding.PEM))
        for stale in (srv_pem, srv_key_path):
            if os.path.exists(stale):
                os.unlink(stale)
    if os.path.exists(srv_pem) and os.path.exists(srv_key_path):
        return
    with open(ca_key_path, "rb") as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), password=None)
    with open(ca_pem, "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    key = new_rsa_key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paygate sandbox"),
                x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=True, data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False,
                decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(srv_key_path, private_pem(key))
    _write_public(srv_pem, cert.public_bytes(serialization.Encoding.PEM))


def _signed_by(cert, ca_cert):
    try:
        ca_cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                    padding.PKCS1v15(), cert.signature_hash_algorithm)
    except Exception:  # noqa: BLE001 - any failure means "not this CA's"
        return False
    return True


def ensure_client_cert(state_dir, cert_name, key_name, common_name):
    """A client certificate (EKU clientAuth, CN=common_name) signed by the
    sandbox CA; kept when present, issued by the current CA and for the same
    CN, else (re)made. Call after ensure_tls()."""
    cert_path = os.path.join(state_dir, cert_name)
    key_path = os.path.join(state_dir, key_name)
    with open(os.path.join(state_dir, "ca.key"), "rb") as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), password=None)
    with open(os.path.join(state_dir, "ca.pem"), "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    if os.path.exists(cert_path) and os.path.exists(key_path):
        try:
            with open(cert_path, "rb") as handle:
                old = x509.load_pem_x509_certificate(handle.read())
            cns = old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if (cns and cns[0].value == common_name and old.issuer == ca_cert.subject
                    and _signed_by(old, ca_cert)):
                return
        except ValueError:
            pass
    now = datetime.datetime.now(datetime.timezone.utc)
    key = new_rsa_key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paygate sandbox merchant"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "WeChat Pay sandbox"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=True, data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False,
                decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(key_path, private_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
