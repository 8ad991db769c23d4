"""Integration-test harness for paygate.

One session starts, under $PAYGATE_TEST_RUN (default <repo>/run/test; wiped
at the start):
  - a private MariaDB (scripts/mariadb.sh) on a free port,
  - the provider sandbox (sandbox/sandbox.py, --time-scale 0.2, with our own
    WeChat merchant: --wechat-appid/--wechat-mch-id/--wechat-api-key),
  - a webhook receiver (a threaded http.server in this process) that every
    config's [merchant] webhook_url points to,
  - an app key pair (openssl; PKCS#1 and PKCS#8 copies of the same key),
  - `paygatectl migrate` and a seeded catalogue,
and, lazily, the web stacks of scripts/stack.py:
  "lighttpd" (spawn-fcgi TCP -F 2 + lighttpd), "lighttpd-unix" (spawn-fcgi on
  a unix socket), "apache-proxy-fcgi" (spawn-fcgi + Apache mod_proxy_fcgi),
  "apache-fcgid" (Apache mod_fcgid spawns paygate).
Everything is stopped by PID at the end. The binaries come from
$PAYGATE_BUILD (default <repo>/build); with the sanitizer build, any
ASan/UBSan report file written during the session fails it.

Every config enables both channels; WeChat signs with HMAC-SHA256 on some
stacks and MD5 on others (WX_SIGN_TYPE) and refunds with the sandbox's
merchant client certificate.

Environment knobs: PAYGATE_BUILD, PAYGATE_TEST_RUN (the run folder; two
sessions with different folders do not disturb each other), PAYGATE_STACKS
(comma-separated subset of the stack kinds). Logs stay in the run folder
after the session; the previous session's are moved to <run folder>-prev.
"""

import base64
import datetime
import glob
import hashlib
import hmac
import html.parser
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pymysql
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import stack as S  # noqa: E402

BUILD = Path(os.environ.get("PAYGATE_BUILD") or REPO / "build").resolve()
RUN = Path(os.environ.get("PAYGATE_TEST_RUN") or REPO / "run" / "test").resolve()
ASAN_DIR = RUN / "asan"

API_KEY = "test-api-key-0123456789abcdef"
CHECKOUT_SECRET = "test-checkout-secret-0123456789"
APP_ID = "2021000000000001"
SELLER_ID = "2088102177846880"
MOUNT = "/pay"
TIMEOUT = 30
WEBHOOK_SECRET = "whsec-test-0123456789abcdef"

# Our WeChat merchant: passed to the sandbox explicitly and written in every
# config (the API key is exactly 32 characters).
WX_APPID = "wx7c1e5a0f93b2d468"
WX_MCH_ID = "1230000109"
WX_API_KEY = "paygateTestWechatApiKey012345678"
assert len(WX_API_KEY) == 32

CREATORS = [("alice", "Alice Zhang")]
PRODUCTS = [  # sku, title, price_fen, creator
    ("course-c", "C for grown-ups", 9900, "alice"),
    ("ebook-sql", "SQL, the hard parts", 1990, None),
]
PRICES = {sku: fen for sku, _t, fen, _c in PRODUCTS}
TITLES = {sku: t for sku, t, _f, _c in PRODUCTS}

ALL_STACKS = list(S.Stack.KINDS)
if os.environ.get("PAYGATE_STACKS"):
    ALL_STACKS = [k for k in os.environ["PAYGATE_STACKS"].split(",") if k in S.Stack.KINDS]
# the key format each stack's config uses (both are the same key)
KEY_FORMAT = {"lighttpd": "pkcs1", "lighttpd-unix": "pkcs8",
              "apache-proxy-fcgi": "pkcs8", "apache-fcgid": "pkcs1"}
# the WeChat sign_type each stack's config uses (the sandbox signs its
# notifications with the algorithm of the unifiedorder request)
WX_SIGN_TYPE = {"lighttpd": "HMAC-SHA256", "lighttpd-unix": "MD5",
                "apache-proxy-fcgi": "HMAC-SHA256", "apache-fcgid": "MD5"}


def pick(*kinds):
    """Stack kinds for a test that runs on a subset (honours PAYGATE_STACKS)."""
    chosen = [k for k in kinds if k in ALL_STACKS]
    return chosen or ALL_STACKS[:1]


# ------------------------------------------------------------------ helpers

def fen_to_amount(fen):
    return "%d.%02d" % (fen // 100, fen % 100)


def beijing_now_str(delta=0):
    tz = datetime.timezone(datetime.timedelta(hours=8))
    return (datetime.datetime.now(tz) + datetime.timedelta(seconds=delta)).strftime(
        "%Y-%m-%d %H:%M:%S")


def alipay_string_to_sign(params, drop_sign_type):
    """Alipay's string to sign, written here independently of src/ and of the
    sandbox: every non-empty parameter except sign (and sign_type for
    notifications), keys sorted by byte order, key=value joined by '&',
    values raw."""
    items = []
    for k, v in params.items():
        if k == "sign" or (drop_sign_type and k == "sign_type"):
            continue
        if v is None or v == "":
            continue
        items.append((k.encode("utf-8"), k, v))
    items.sort(key=lambda t: t[0])
    return "&".join("%s=%s" % (k, v) for _b, k, v in items)


def rsa2_sign(private_key, text):
    sig = private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode()


def rsa2_verify(public_key, text, sign_b64):
    public_key.verify(base64.b64decode(sign_b64), text.encode("utf-8"), padding.PKCS1v15(),
                      hashes.SHA256())


def load_private(path):
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def load_public(path):
    return serialization.load_pem_public_key(Path(path).read_bytes())


def signed_link(base_url, product, user, expires=None, secret=CHECKOUT_SECRET, extra=""):
    if expires is None:
        expires = int(time.time()) + 600
    msg = "product=%s&user=%s&expires=%d" % (product, user, expires)
    sig = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
    return "%s/checkout?%s&sig=%s%s" % (base_url, msg, sig, extra)


UNSET = object()


def unique_user(prefix="buyer"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def error_code(resp):
    try:
        return resp.json()["error"]["code"]
    except Exception:
        return None


class FormParser(html.parser.HTMLParser):
    """Collects <form>s with their action, method and named inputs/buttons,
    and every <a href>."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.links = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._cur = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                         "fields": {}, "ids": set()}
            self.forms.append(self._cur)
        elif tag in ("input", "button", "select", "textarea") and self._cur is not None:
            if a.get("id"):
                self._cur["ids"].add(a["id"])
            if a.get("name") and (tag != "input" or a.get("type") not in ("submit", "button")
                                  or a.get("value") is not None):
                self._cur["fields"][a["name"]] = a.get("value") or ""
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def parse_html(text):
    p = FormParser()
    p.feed(text)
    return p


# ------------------------------------------------------------ WeChat (v2)
# Written here from the protocol description, independently of src/ and of
# the sandbox.

def wx_string_to_sign(params, key=WX_API_KEY):
    """Every non-empty field except sign, keys sorted by bytes, k=v joined
    by '&', then '&key=<API key>'."""
    items = sorted((k.encode(), k, v) for k, v in params.items()
                   if k != "sign" and v is not None and v != "")
    return "&".join("%s=%s" % (k, v) for _b, k, v in items) + "&key=" + key


def wx_sign(params, sign_type="MD5", key=WX_API_KEY):
    text = wx_string_to_sign(params, key).encode("utf-8")
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), text, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(text).hexdigest().upper()


def wx_xml(fields):
    """A flat <xml> document, every value in CDATA."""
    parts = ["<xml>"]
    for k, v in fields.items():
        parts.append("<%s><![CDATA[%s]]></%s>" % (k, v, k))
    parts.append("</xml>")
    return "".join(parts)


def wx_parse(text):
    """paygate's XML replies (trusted: our own server) as a dict."""
    root = ET.fromstring(text)
    assert root.tag == "xml", text
    return {child.tag: (child.text or "") for child in root}


def wx_nonce():
    return uuid.uuid4().hex


# ------------------------------------------------------- webhook receiver

class WebhookReceiver:
    """A threaded HTTP server recording every POST (headers + body). It can
    be told to answer 500 to the next N calls, or to answer them slowly
    (optionally only calls whose body contains a string)."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()
        self.fail_rules = []   # [remaining, substring or None]
        self.slow_rules = []   # [remaining, substring or None, seconds]
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                status = 200
                delay = 0
                with recv.lock:
                    for rule in recv.slow_rules:
                        if rule[0] > 0 and (rule[1] is None or rule[1].encode() in body):
                            rule[0] -= 1
                            delay = rule[2]
                            break
                if delay:
                    time.sleep(delay)
                with recv.lock:
                    for rule in recv.fail_rules:
                        if rule[0] > 0 and (rule[1] is None or rule[1].encode() in body):
                            rule[0] -= 1
                            status = 500
                            break
                    recv.calls.append({"path": self.path, "headers": dict(self.headers.items()),
                                       "body": body, "status": status, "at": time.time()})
                reply = b"ok" if status == 200 else b"receiver told to fail"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.port = S.free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d/hooks/paygate" % self.port

    def fail_next(self, n, match=None):
        with self.lock:
            self.fail_rules.append([n, match])

    def slow_next(self, n, seconds, match=None):
        with self.lock:
            self.slow_rules.append([n, match, seconds])

    def clear_failures(self):
        with self.lock:
            self.fail_rules = []
            self.slow_rules = []

    def events(self, order_no=None, type_=None, only_ok=False):
        """Received calls whose JSON body is about ORDER_NO / of TYPE_."""
        out = []
        with self.lock:
            calls = list(self.calls)
        for c in calls:
            try:
                ev = json.loads(c["body"])
            except ValueError:
                continue
            if order_no and ev.get("data", {}).get("order_no") != order_no:
                continue
            if type_ and ev.get("type") != type_:
                continue
            if only_ok and c["status"] != 200:
                continue
            out.append(dict(c, event=ev))
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def verify_webhook_signature(header, body, secret=WEBHOOK_SECRET, max_age=300):
    """Paygate-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>"""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    want = hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(want, parts["v1"]), (header, body[:200])
    assert abs(time.time() - t) < max_age, header
    return t


# ------------------------------------------------------------------ harness

class Harness:
    """The session's moving parts (see the module docstring). run_dir
    (default: RUN) holds everything it starts; another instance in its own
    folder (e.g. RUN / "ledger") is a second, independent set: its own
    MariaDB, sandbox, webhook receiver and stacks, for a module that needs
    a database and bills nobody else writes to. asan_dir defaults to
    run_dir/asan; pass the session's (ASAN_DIR) to have the sanitizer
    reports of its processes fail the session."""

    def __init__(self, run_dir=None, asan_dir=None):
        self.run = Path(run_dir or RUN).resolve()
        self.asan_dir = Path(asan_dir or self.run / "asan")
        self.registry = None
        self.stacks = {}
        self.stack_errors = {}
        self.sandbox_proc = None
        self.db_port = None
        self.db_host = "127.0.0.1"   # [database] host of the configs (a list on a cluster)
        self.db_dir = self.run / "db"
        self.env = dict(os.environ)
        self.env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:log_path=%s/asan" % self.asan_dir
        self.env["UBSAN_OPTIONS"] = "print_stacktrace=1:log_path=%s/ubsan" % self.asan_dir

    # -- set-up / tear-down ------------------------------------------------
    def start(self):
        self.run.parent.mkdir(parents=True, exist_ok=True)
        self.registry = S.PidRegistry(self.run.parent / (self.run.name + "-pids"))
        self.registry.stop_leftovers()
        if (self.db_dir / "mysqld.pid").exists():
            subprocess.run(["bash", str(REPO / "scripts/mariadb.sh"), "stop", str(self.db_dir)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # keep the previous session's logs next to the new ones
        prev = self.run.parent / (self.run.name + "-prev")
        shutil.rmtree(prev, ignore_errors=True)
        if self.run.exists():
            shutil.rmtree(self.run / "db", ignore_errors=True)
            self.run.rename(prev)
        self.run.mkdir(parents=True)
        os.chmod(self.run, 0o755)
        self.asan_dir.mkdir(exist_ok=True)
        os.chmod(self.asan_dir, 0o1777)  # mod_fcgid's paygate runs as www-data

        for exe in ("paygate.fcgi", "paygatectl"):
            if not os.access(BUILD / exe, os.X_OK):
                raise S.StackError("%s is missing: build it first (make, or make SAN=1 and "
                                   "PAYGATE_BUILD=<repo>/build-asan)" % (BUILD / exe))

        self.keys = S.gen_app_keys(self.run / "keys")
        self.app_public = load_public(self.keys["public"])

        self.db_port = S.free_port()
        self.start_db()

        self.sandbox_dir = self.run / "sandbox"
        self.sandbox_http = S.free_port()
        self.sandbox_https = S.free_port()
        self.sandbox_proc = S.start_sandbox(
            self.sandbox_dir, self.sandbox_http, self.sandbox_https, APP_ID,
            self.keys["public"], time_scale=0.2, log=self.run / "sandbox.log",
            registry=self.registry,
            wechat={"appid": WX_APPID, "mch_id": WX_MCH_ID, "api_key": WX_API_KEY})
        self.ca_file = self.sandbox_dir / "ca.pem"
        self.alipay_public_key_file = self.sandbox_dir / "alipay_public_key.pem"
        self.alipay_private = load_private(self.sandbox_dir / "alipay_private_key.pem")
        self.gateway = "https://127.0.0.1:%d/gateway.do" % self.sandbox_https
        self.sandbox_url = "http://127.0.0.1:%d" % self.sandbox_http
        self.wx_gateway = "https://127.0.0.1:%d" % self.sandbox_https
        self.wx_client_cert = self.sandbox_dir / "wechat_apiclient_cert.pem"
        self.wx_client_key = self.sandbox_dir / "wechat_apiclient_key.pem"
        wxc = self.sandbox_get("/_sandbox/wechat/config").json()
        assert (wxc["appid"], wxc["mch_id"], wxc["api_key"]) == (WX_APPID, WX_MCH_ID, WX_API_KEY), wxc

        self.webhooks = WebhookReceiver()

        # paygatectl's config names the first stack's base_url, as in
        # production (one config): the refunds that the CLI sends carry
        # <base_url>/notify/wechat/refund, which must reach a paygate
        self.ports = {ALL_STACKS[0]: S.free_port()}
        self.cli_base_url = "http://127.0.0.1:%d%s" % (self.ports[ALL_STACKS[0]], MOUNT)
        self.cli_config = self.run / "cli.ini"
        self.write_config(self.cli_config, self.cli_base_url, self.run / "paygatectl.log",
                          self.keys["pkcs8"])
        self.ctl("migrate")
        for cid, name in CREATORS:
            self.ctl("creator", "add", "--id", cid, "--name", name)
        for sku, title, fen, creator in PRODUCTS:
            args = ["product", "add", "--sku", sku, "--title", title, "--price-fen", str(fen)]
            if creator:
                args += ["--creator", creator]
            self.ctl(*args)

    def stop(self):
        errors = []
        if getattr(self, "webhooks", None) is not None:
            self.webhooks.stop()
            self.webhooks = None
        for st in list(self.stacks.values()):
            try:
                st.stop()
            except Exception as e:  # keep stopping the rest
                errors.append("%s: %s" % (st.kind, e))
        self.stacks.clear()
        if self.sandbox_proc is not None:
            S.stop_pids([self.sandbox_proc.pid])
            self.sandbox_proc = None
        try:
            self.stop_db()
        except Exception as e:
            errors.append("mariadb: %s" % e)
        if not errors and self.registry is not None:
            # everything recorded is stopped; a crashed session keeps the file
            self.registry.path.unlink(missing_ok=True)
        return errors

    def sanitizer_reports(self):
        out = []
        for f in sorted(glob.glob(str(self.asan_dir / "*"))):
            out.append("==== %s\n%s" % (f, Path(f).read_text(errors="replace")))
        return out

    # -- database ----------------------------------------------------------
    def start_db(self):
        r = subprocess.run(["bash", str(REPO / "scripts/mariadb.sh"), "start", str(self.db_dir),
                            str(self.db_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode != 0:
            raise S.StackError("mariadb.sh start failed:\n" + r.stdout)
        pid = int((self.db_dir / "mysqld.pid").read_text().strip())
        self.registry.add(pid)

    def stop_db(self):
        subprocess.run(["bash", str(REPO / "scripts/mariadb.sh"), "stop", str(self.db_dir)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    def db(self):
        return pymysql.connect(host="127.0.0.1", port=self.db_port, user="paygate",
                               password="paygate", database="paygate", autocommit=True,
                               cursorclass=pymysql.cursors.DictCursor, connect_timeout=10)

    def query(self, sql, *args):
        conn = self.db()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def payment(self, payment_no):
        rows = self.query("SELECT * FROM payments WHERE payment_no=%s", payment_no)
        return rows[0] if rows else None

    def order(self, order_no):
        rows = self.query("SELECT * FROM orders WHERE order_no=%s", order_no)
        return rows[0] if rows else None

    def notifications_for(self, payment_no):
        return self.query("SELECT * FROM notifications WHERE payment_no=%s "
                          "OR raw_body LIKE %s ORDER BY id",
                          payment_no, "%%out_trade_no=%s%%" % payment_no)

    def notification_by_notify_id(self, notify_id):
        return self.query("SELECT * FROM notifications WHERE raw_body LIKE %s ORDER BY id",
                          "%%notify_id=%s%%" % notify_id)

    # -- CLI ---------------------------------------------------------------
    def ctl(self, *args, config=None, check=True, timeout=90):
        cmd = [str(BUILD / "paygatectl"), "-c", str(config or self.cli_config)] + list(args)
        r = subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s -> exit %d\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    # -- config and stacks -------------------------------------------------
    def wechat_config(self, sign_type="HMAC-SHA256", client_cert=None, client_key=None,
                      enabled=True):
        """The [wechat] section: None when disabled. client_cert/client_key
        default to the sandbox's merchant certificate; pass "" to leave
        them out."""
        if not enabled:
            return None
        return {"appid": WX_APPID, "mch_id": WX_MCH_ID, "api_key": WX_API_KEY,
                "sign_type": sign_type, "gateway": self.wx_gateway, "ca_file": self.ca_file,
                "client_cert": self.wx_client_cert if client_cert is None else client_cert,
                "client_key": self.wx_client_key if client_key is None else client_key}

    def write_config(self, path, base_url, log_file, key_file, wechat=UNSET, webhook_url=UNSET,
                     extra="", alipay_public_key=None, ca_file=None, order_ttl=900):
        return S.write_config(
            path, base_url=base_url, db_port=self.db_port, db_host=self.db_host, log_file=log_file,
            app_id=APP_ID,
            gateway=self.gateway, app_private_key=key_file,
            alipay_public_key=alipay_public_key or self.alipay_public_key_file, seller_id=SELLER_ID,
            ca_file=ca_file or self.ca_file, return_url="%s/shop" % base_url, api_key=API_KEY,
            checkout_secret=CHECKOUT_SECRET, storefront=True,
            webhook_url=self.webhooks.url if webhook_url is UNSET else webhook_url,
            webhook_secret=WEBHOOK_SECRET,
            wechat=self.wechat_config() if wechat is UNSET else wechat, extra=extra,
            order_ttl=order_ttl)

    def cli_variant(self, name, **wechat_kw):
        """Another paygatectl config on the same database (e.g. without the
        WeChat client certificate)."""
        path = self.run / ("cli-%s.ini" % name)
        self.write_config(path, self.cli_base_url,
                          self.run / ("paygatectl-%s.log" % name), self.keys["pkcs8"],
                          wechat=self.wechat_config(**wechat_kw))
        return path

    def _config_writer(self, key_format, sign_type="HMAC-SHA256", wechat_enabled=True, extra="",
                       order_ttl=900, extra_files=()):
        def write(st):
            # files extra_ini names as @STACK_DIR@/<name>: private copies in
            # the stack folder, which Apache's children can reach as root
            # (the run folder may not be: a checkout under /root)
            for src in extra_files:
                dst = st.dir / os.path.basename(str(src))
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o600)
            extra_here = extra.replace("@STACK_DIR@", str(st.dir))
            key = st.dir / "app_private_key.pem"
            shutil.copyfile(self.keys[key_format], key)
            os.chmod(key, 0o600)
            # private copies: mod_fcgid's paygate runs as www-data and cannot
            # read the sandbox's 0600 key
            cert, ckey = st.dir / "wechat_apiclient_cert.pem", st.dir / "wechat_apiclient_key.pem"
            shutil.copyfile(self.wx_client_cert, cert)
            shutil.copyfile(self.wx_client_key, ckey)
            os.chmod(ckey, 0o600)
            wechat = self.wechat_config(sign_type=sign_type, client_cert=cert, client_key=ckey,
                                        enabled=wechat_enabled)
            # the sandbox's CA and public key too: as root the run folder
            # may be out of www-data's reach (a checkout under /root), and
            # the stack folder is then moved where it can reach it
            ca, apub = st.dir / "ca.pem", st.dir / "alipay_public_key.pem"
            shutil.copyfile(self.ca_file, ca)
            shutil.copyfile(self.alipay_public_key_file, apub)
            if wechat:
                wechat["ca_file"] = ca
            self.write_config(st.config, st.base_url, st.paygate_log, key, wechat=wechat,
                              extra=extra_here, alipay_public_key=apub, ca_file=ca, order_ttl=order_ttl)
        return write

    def new_stack(self, kind, name=None, fcgi_children=S.DEFAULT_FCGI_CHILDREN, wechat_enabled=True,
                  port=None, extra_ini="", order_ttl=900, extra_files=()):
        """A stack that the caller owns (and stops). extra_ini: more INI
        sections for its config ([fees], [settlement]); extra_files: files
        copied into the stack folder, which extra_ini names as
        @STACK_DIR@/<basename>."""
        name = name or kind
        return S.Stack(kind, self.run / "stacks" / name, build_dir=BUILD, port=port or S.free_port(),
                       config_writer=self._config_writer(KEY_FORMAT.get(kind, "pkcs8"),
                                                         WX_SIGN_TYPE.get(kind, "HMAC-SHA256"),
                                                         wechat_enabled, extra_ini, order_ttl,
                                                         extra_files),
                       env=self.env, mount=MOUNT, fcgi_children=fcgi_children,
                       registry=self.registry, asan_options=self.env["ASAN_OPTIONS"])

    def stack(self, kind):
        """The session's shared stack of that kind, started on first use."""
        if kind in self.stack_errors:
            pytest.fail("stack %s failed to start earlier:\n%s" % (kind, self.stack_errors[kind]))
        if kind not in self.stacks:
            st = self.new_stack(kind, port=self.ports.get(kind))
            try:
                st.start()
            except Exception as e:
                self.stack_errors[kind] = str(e)
                pytest.fail("stack %s failed to start:\n%s" % (kind, e))
            self.stacks[kind] = st
        return self.stacks[kind]

    # -- sandbox -----------------------------------------------------------
    def sandbox_get(self, path):
        return requests.get(self.sandbox_url + path, timeout=TIMEOUT)

    def sandbox_post(self, path, body):
        return requests.post(self.sandbox_url + path, json=body, timeout=TIMEOUT)

    def open_cashier(self, pay_url):
        """GET the pay_url like a browser: the sandbox learns of a page/wap
        trade only then. Returns the cashier page."""
        r = requests.get(pay_url, timeout=TIMEOUT, verify=str(self.ca_file))
        assert r.status_code == 200, r.text[:500]
        return r

    def sandbox_pay(self, c):
        """Open the cashier for checkout reply C, then pay through the control
        API (first notification attempt included); returns its JSON."""
        self.open_cashier(c["pay_url"])
        r = self.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
        assert r.status_code == 200, r.text
        return r.json()

    def sandbox_trade(self, out_trade_no):
        r = self.sandbox_get("/_sandbox/trades/" + out_trade_no)
        assert r.status_code == 200, r.text
        return r.json()

    # -- Alipay notifications, built and signed by the test itself ---------
    def notification(self, payment_no, amount_fen, trade_status="TRADE_SUCCESS", key=None,
                     **overrides):
        amount = fen_to_amount(amount_fen)
        paid = trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED")
        f = {
            "notify_time": beijing_now_str(),
            "notify_type": "trade_status_sync",
            "notify_id": "t" + uuid.uuid4().hex,
            "app_id": APP_ID,
            "auth_app_id": APP_ID,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": "2026" + str(uuid.uuid4().int)[:24],
            "out_trade_no": payment_no,
            "seller_id": SELLER_ID,
            "seller_email": "sandbox_seller@example.com",
            "trade_status": trade_status,
            "total_amount": amount,
            "subject": "test purchase",
            "gmt_create": beijing_now_str(-60),
        }
        if paid:
            f.update({
                "buyer_id": "2088102177000001", "buyer_logon_id": "buy***@example.com",
                "receipt_amount": amount, "invoice_amount": amount, "buyer_pay_amount": amount,
                "point_amount": "0.00", "gmt_payment": beijing_now_str(-5),
                "fund_bill_list": json.dumps([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}],
                                             separators=(",", ":")),
            })
        if trade_status == "TRADE_CLOSED":
            f["gmt_close"] = beijing_now_str(-1)
        for k, v in overrides.items():
            if v is None:
                f.pop(k, None)
            else:
                f[k] = v
        f["sign"] = rsa2_sign(key or self.alipay_private, alipay_string_to_sign(f, True))
        return f

    # -- WeChat notifications, built and signed by the test itself ---------
    @staticmethod
    def wx_notification(payment_no, total_fee, sign_type="MD5", key=WX_API_KEY,
                        with_sign_type_field=None, **overrides):
        """The fields of a payment notification (sign included). A field given
        as None is left out (before signing)."""
        f = {
            "appid": WX_APPID, "mch_id": WX_MCH_ID, "nonce_str": wx_nonce(),
            "result_code": "SUCCESS", "return_code": "SUCCESS",
            "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "is_subscribe": "N",
            "trade_type": "NATIVE", "bank_type": "OTHERS", "total_fee": str(total_fee),
            "cash_fee": str(total_fee), "fee_type": "CNY",
            "transaction_id": "4200" + str(uuid.uuid4().int)[:24],
            "out_trade_no": payment_no, "time_end": time.strftime("%Y%m%d%H%M%S"),
        }
        if with_sign_type_field if with_sign_type_field is not None else sign_type != "MD5":
            f["sign_type"] = sign_type
        for k, v in overrides.items():
            if v is None:
                f.pop(k, None)
            else:
                f[k] = str(v)
        f["sign"] = wx_sign(f, sign_type, key)
        return f

    @staticmethod
    def notify_wechat(st, body, path="/notify/wechat"):
        if isinstance(body, dict):
            body = wx_xml(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        return requests.post(st.base_url + path, data=body, timeout=TIMEOUT,
                             headers={"Content-Type": "text/xml"})

    def wx_notifications_for(self, payment_no):
        """Stored WeChat notifications naming PAYMENT_NO (rejected ones are
        stored without a payment_no: found by their raw body)."""
        return self.query("SELECT * FROM notifications WHERE channel='wechat' AND "
                          "(payment_no=%s OR raw_body LIKE %s) ORDER BY id",
                          payment_no, "%%" + payment_no + "%%")

    def wx_trade(self, out_trade_no):
        r = self.sandbox_get("/_sandbox/wechat/trades/" + out_trade_no)
        assert r.status_code == 200, r.text
        return r.json()

    def age_payment(self, payment_no, seconds, channel, expires=False):
        """Makes a payment SECONDS older, here (created_at; expires_at too
        when EXPIRES) and at the sandbox (the trade's clock): WeChat closes
        no order younger than 5 minutes, codes expire after 5 min / 2 h."""
        cols = "created_at = created_at - INTERVAL %s SECOND"
        if expires:
            cols += ", expires_at = expires_at - INTERVAL %s SECOND"
        self.query("UPDATE payments SET " + cols + " WHERE payment_no=%s",
                   *([seconds] * (2 if expires else 1) + [payment_no]))
        r = self.sandbox_post("/_sandbox/%s/age" % channel,
                              {"out_trade_no": payment_no, "seconds": int(seconds)})
        assert r.status_code in (200, 404), r.text   # 404: never reached the provider
        return r.json() if r.status_code == 200 else None

    def wx_refund_status(self, out_refund_no):
        """The sandbox's refund_status of a WeChat refund (None if unknown)."""
        r = self.sandbox_get("/_sandbox/wechat/refunds/" + out_refund_no)
        return r.json()["refund_status"] if r.status_code == 200 else None

    def wx_pay(self, payment_no, **extra):
        """Pay a WeChat trade through the control API (waits for the first
        notification attempt)."""
        r = self.sandbox_post("/_sandbox/wechat/pay", dict({"out_trade_no": payment_no}, **extra))
        assert r.status_code == 200, r.text
        return r.json()

    def ctl_json(self, *args, config=None):
        r = self.ctl("--json", *args, config=config)
        return json.loads(r.stdout)

    # -- HTTP API ------------------------------------------------------------
    @staticmethod
    def checkout(st, product="course-c", user=UNSET, channel="alipay", method="page",
                 request_id=None, as_json=False, auth=True, **extra):
        """POST /checkout; a field given as None is left out."""
        fields = {"product": product, "user": unique_user() if user is UNSET else user,
                  "channel": channel, "method": method}
        if request_id:
            fields["request_id"] = request_id
        fields.update(extra)
        fields = {k: v for k, v in fields.items() if v is not None}
        headers = {"Authorization": "Bearer " + API_KEY} if auth else {}
        if as_json:
            return requests.post(st.base_url + "/checkout", json=fields, headers=headers,
                                 timeout=TIMEOUT)
        return requests.post(st.base_url + "/checkout", data=fields, headers=headers,
                             timeout=TIMEOUT)

    def new_payment(self, st, product="course-c", **kw):
        r = self.checkout(st, product=product, **kw)
        assert r.status_code == 201, "checkout: %s %s" % (r.status_code, r.text)
        return r.json()

    @staticmethod
    def notify(st, form):
        r = requests.post(st.base_url + "/notify/alipay", data=form, timeout=TIMEOUT)
        return r

    @staticmethod
    def order_status(st, order_no):
        r = requests.get("%s/orders/%s" % (st.base_url, order_no), timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_order_status(self, st, order_no, status, timeout=20):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.order_status(st, order_no)
            if last["status"] == status:
                return last
            time.sleep(0.1)
        raise AssertionError("order %s: status %s after %d s, wanted %s" % (
            order_no, last and last.get("status"), timeout, status))


@pytest.fixture(scope="session")
def harness():
    h = Harness()
    try:
        h.start()
    except BaseException:
        h.stop()
        raise
    yield h
    errors = h.stop()
    reports = h.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports were written during the session:\n" + "\n".join(reports),
                    pytrace=False)
    if errors:
        pytest.fail("tear-down: " + "; ".join(errors), pytrace=False)


@pytest.fixture(params=ALL_STACKS)
def stack(request, harness):
    """Every stack kind."""
    return harness.stack(request.param)


@pytest.fixture(params=pick("lighttpd", "apache-fcgid"))
def stack_pair(request, harness):
    """Two stacks with different process models: spawn-fcgi -F 2 behind
    lighttpd, and mod_fcgid's processes behind Apache."""
    return harness.stack(request.param)


@pytest.fixture(params=pick("lighttpd", "apache-proxy-fcgi"))
def stack_lp(request, harness):
    """lighttpd and Apache mod_proxy_fcgi (both with spawn-fcgi)."""
    return harness.stack(request.param)


@pytest.fixture
def cli_stack(harness):
    """The stack whose base_url paygatectl's config names (provider
    callbacks for what the CLI starts arrive there)."""
    return harness.stack(ALL_STACKS[0])


@pytest.fixture
def lighttpd_stack(harness):
    return harness.stack(pick("lighttpd")[0])


@pytest.fixture(scope="session")
def foreign_key():
    """An RSA key that is not the sandbox's: signatures made with it are forged."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for name, val in funcargs.items():
        if isinstance(val, S.Stack):
            for log_name, path in val.logs().items():
                rep.sections.append(("%s %s (tail)" % (val.kind, log_name), S.tail(path, 30)))
    # the session's sandbox, and that of any module's own Harness (its run folder named)
    seen = set()
    for name, val in funcargs.items():
        if isinstance(val, Harness) and val.run not in seen:
            seen.add(val.run)
            label = "sandbox.log" if val.run == RUN else "%s/sandbox.log" % val.run.name
            rep.sections.append(("%s (tail)" % label, S.tail(val.run / "sandbox.log", 30)))


def interop_node_modules(package):
    """sandbox/interop's node_modules with `package` in it, installed with
    `npm ci` (the lock file pins every official library) when missing:
    the interop checks run wherever node is, whichever test file comes
    first. Skips only when node/npm are not installed."""
    interop = REPO / "sandbox" / "interop"
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the interop checks with %s cannot run" % package)
    if not (interop / "node_modules" / package).is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=str(interop),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return interop
