#!/usr/bin/python3
"""paygate benchmark harness (`make bench`).

Builds the optimised paygate (BUILD dir, default build-bench) and the
baseline programs of bench/ (hello.c: (a) the web stack's ceiling; floor.c
sign: (b) the floor of a checkout; floor.c verify: (c) the floor of a
notification; floor.c read: (d) the floor of a status read, one indexed
SELECT, shown next to (a) for order status), runs `openssl speed rsa2048`,
then starts privately under run/bench: MariaDB (scripts/mariadb.sh), the
provider sandbox, paygate under spawn-fcgi (-F 8, TCP) and the baselines
under spawn-fcgi (-F 8 each), lighttpd and Apache mod_proxy_fcgi in front
of all five (configs rendered
from apache-conf/ with scripts/stack.py, as the integration tests do). Drives
every scenario with wrk on 127.0.0.1 at 16 and 64 connections, checks in
the database that the work was done, prints one table (also written to
run/bench/results.md; p99 beside the floor's p99), runs an RSS-flatness
run, sweeps paygate's process count (spawn-fcgi -F 2, 4, 8, 16 behind
lighttpd, checkout and notification, 16 connections) and prints the knee,
and where a target is
missed profiles MariaDB's side (performance_schema statement history,
run/bench/db-profile.md) and paygate's (callgrind). Everything started is
stopped by PID at the end, also on failure.

Environment: BENCH_SECONDS (per run, default 10), BENCH_CONNS (default
"16,64"), BENCH_SERVERS (default "lighttpd,apache"), BENCH_SCENARIOS (subset,
comma-separated), BENCH_FLAT_REQUESTS (default 200000), BENCH_FLAT_SECONDS
(cap, default 120), BENCH_PROFILE ("auto" = scenarios that miss their target,
"none", or a comma-separated list of scenarios), BENCH_PROFILE_SECONDS
(callgrind load, default 20), BENCH_DB_PROFILE_SECONDS (statement profile
load, default 4), BENCH_DB_PROFILE_CONNS (default 1), BUILD (default
build-bench), BENCH_THREADS (wrk threads, default 2), BENCH_CHILDREN
(processes per pool in the main rows, default 8), BENCH_SWEEP (default
"2,4,8,16"; "none" skips the sweep), BENCH_SWEEP_CONNS (default "16"),
BENCH_SWEEP_SERVER (default lighttpd), BENCH_SWEEP_SCENARIOS (default
"checkout-alipay-page,notify-alipay"), BENCH_MARIADB_OPTS (server options
added to the private MariaDB, default a 512M buffer pool and a 1G redo log),
BENCH_GALERA (default 1: checkout and notification rows again on a 3-node
Galera cluster, cluster/single shown; 0 skips).

The cost of GET /metrics' counters: a second paygate pool (the same count)
with `[metrics] enabled = false` at /nometrics runs the notification and
order-status scenarios right after the same rows with metrics on
(METRICS_OFF_ROWS), so the table shows both in the same run.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import stack as S  # noqa: E402
sys.path.insert(0, str(REPO / "sandbox"))
import appstore_gw  # noqa: E402  (the sandbox's Apple signs the App Store notifications)

import pymysql  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

RUN = REPO / "run" / "bench"
BUILD = (REPO / os.environ.get("BUILD", "build-bench")).resolve()
BB = BUILD / "bench"
KEYS = REPO / "tests" / "fixtures" / "keys"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNS = [int(c) for c in os.environ.get("BENCH_CONNS", "16,64").split(",")]
SERVERS = [s for s in os.environ.get("BENCH_SERVERS", "lighttpd,apache").split(",") if s]
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
FLAT_REQUESTS = int(os.environ.get("BENCH_FLAT_REQUESTS", "200000"))
FLAT_SECONDS = int(os.environ.get("BENCH_FLAT_SECONDS", "120"))
PROFILE = os.environ.get("BENCH_PROFILE", "auto")
PROFILE_SECONDS = int(os.environ.get("BENCH_PROFILE_SECONDS", "20"))
DB_PROFILE_SECONDS = int(os.environ.get("BENCH_DB_PROFILE_SECONDS", "4"))
DB_PROFILE_CONNS = int(os.environ.get("BENCH_DB_PROFILE_CONNS", "1"))
PS_HISTORY = 30000   # statement events kept for the statement profile (the latest)
# FastCGI processes per pool (paygate and each baseline) in the main rows:
# the knee the sweep below found on this 2-core machine (see the README's
# sizing rule: 4 per core); BENCH_CHILDREN overrides it.
CHILDREN = int(os.environ.get("BENCH_CHILDREN", "8"))
# process-count sweep: paygate restarted with spawn-fcgi -F N for each N,
# behind SWEEP_SERVER, at each SWEEP_CONNS; "" or "none" skips it
SWEEP = [int(n) for n in os.environ.get("BENCH_SWEEP", "2,4,8,16").replace("none", "").split(",")
         if n.strip()]
SWEEP_CONNS = [int(c) for c in os.environ.get("BENCH_SWEEP_CONNS", "16").split(",") if c]
SWEEP_SERVER = os.environ.get("BENCH_SWEEP_SERVER", "lighttpd")
SWEEP_SCENARIOS = [s for s in os.environ.get(
    "BENCH_SWEEP_SCENARIOS", "checkout-alipay-page,notify-alipay").split(",") if s]
# MariaDB server options for the bench's private instance on top of
# scripts/mariadb.sh's (which are sized for the many short-lived test
# instances): a buffer pool that holds every table of the run and a redo log
# that takes a run's notifications without forced checkpoint flushing (see
# the README's tail-latency notes). BENCH_MARIADB_OPTS replaces them.
MARIADB_OPTS = os.environ.get("BENCH_MARIADB_OPTS",
                              "--innodb-buffer-pool-size=512M --innodb-log-file-size=1G")
KNEE_GAIN = 0.05     # a count whose next step adds less throughput than this is the knee
KNEE_P99 = 0.10      # ... or makes p99 worse by more than this while adding < 2 * KNEE_GAIN
P99_SLACK = 1.5      # target: p99 of a paygate row <= its floor's p99 * P99_SLACK

API_KEY = "bench-api-key-0123456789abcdef"
CHECKOUT_SECRET = "bench-checkout-secret-0123456789"
APP_ID = "2021000000000001"
SELLER_ID = "2088102177846880"
WX_APPID = "wx7c1e5a0f93b2d468"
WX_MCH_ID = "1230000109"
WX_API_KEY = "paygateBenchWechatApiKey01234567"
STRIPE_WHSEC = "whsec_paygateBenchStripeSecret"
assert len(WX_API_KEY) == 32
PRICE_FEN = 9900
SKU = "course-c"
APPLE_BUNDLE = "com.example.bench"
APPLE_PRODUCT = "com.example.bench.course_c"

# the sandbox's WeChat Pay API v3 defaults (sandbox/sandbox.py): APIv3 key
# (AES-256-GCM of notifications) and the public key ID it signs under
WX_V3_KEY = "sandboxV3sandboxV3sandboxV3key32"
WX_V3_PUBKEY_ID = "PUB_KEY_ID_0119000001092026120700000000000001"

SCENARIOS = ["checkout-alipay-page", "checkout-wechat-native", "checkout-wechat-v3-native",
             "notify-alipay", "notify-wechat", "notify-wechat-v3", "notify-stripe", "notify-appstore",
             "order-status"]
if os.environ.get("BENCH_SCENARIOS"):
    SCENARIOS = [s for s in os.environ["BENCH_SCENARIOS"].split(",") if s in SCENARIOS]
# scenario -> (baseline, target ratio)
BASELINE_OF = {"checkout-alipay-page": ("floor-sign", 0.8), "checkout-wechat-native": ("floor-sign", 0.8),
               "checkout-wechat-v3-native": ("floor-sign", 0.8), "notify-wechat-v3": ("floor-verify", 0.8),
               "notify-alipay": ("floor-verify", 0.8), "notify-wechat": ("floor-verify", 0.8),
               "notify-stripe": ("floor-hmac", 0.8),
               # the floor is one ES256 verify + one commit; paygate also checks
               # the x5c chains (two P-384 ECDSA verifies per JWS) of both JWS
               "notify-appstore": ("floor-es256", 0.8),
               "order-status": ("hello", 0.7)}
# scenario -> the floor whose p99 its p99 is held against (order status: the
# floor of a status read, (d), not hello-world)
P99_FLOOR_OF = {"checkout-alipay-page": "floor-sign", "checkout-wechat-native": "floor-sign",
                "checkout-wechat-v3-native": "floor-sign", "notify-wechat-v3": "floor-verify",
                "notify-alipay": "floor-verify", "notify-wechat": "floor-verify", "notify-stripe": "floor-hmac",
                "notify-appstore": "floor-es256", "order-status": "floor-read"}
RSS_LIMIT_KIB = 16 * 1024
# rows measured again against paygate with [metrics] enabled = false
METRICS_OFF_ROWS = ("notify-alipay", "notify-wechat", "order-status")
# Galera: checkout and notification rows again on a three-node MariaDB
# Galera cluster (tests/integration/galera_cluster.py), a pool of their own at
# /galera whose [database] host is the cluster's host list, right after the
# same rows on the single server: the table shows cluster/single
GALERA = os.environ.get("BENCH_GALERA", "1") == "1"   # ~1.5 min more in a full run
GALERA_ROWS = ("checkout-alipay-page", "notify-alipay")
# the nodes' options on top of galera_cluster.py's (later options win): the
# single server's durability (a redo-log flush per COMMIT, as in production,
# galera_cluster.py's nodes use 2) and room for a run's rows
GALERA_OPTS = ["--innodb-flush-log-at-trx-commit=1", "--innodb-buffer-pool-size=256M",
               "--innodb-log-file-size=256M"]
# rows run against the second pool with [wechat] api_version = v3 (/wxv3)
V3_ROWS = ("checkout-wechat-v3-native", "notify-wechat-v3")


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def sh(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


# ------------------------------------------------------------------ build

def build():
    log("building paygate (optimised, %s) and the baselines" % BUILD.relative_to(REPO))
    jobs = os.environ.get("BENCH_JOBS", "2")
    sh(["make", "-s", "-j", jobs, "BUILD=%s" % BUILD.relative_to(REPO), "all"], cwd=REPO)
    BB.mkdir(parents=True, exist_ok=True)
    cflags = ["-O2", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"]
    mdb = subprocess.run(["pkg-config", "--cflags", "--libs", "libmariadb", "openssl"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    sh(["cc"] + cflags + ["-o", str(BB / "hello"), str(REPO / "bench/hello.c"), "-lfcgi"])
    sh(["cc"] + cflags + ["-o", str(BB / "floor"), str(REPO / "bench/floor.c")] + mdb + ["-lfcgi"])


def openssl_speed():
    log("openssl speed -seconds 3 rsa2048")
    out = subprocess.run(["openssl", "speed", "-seconds", "3", "rsa2048"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True).stdout
    (RUN / "openssl-speed.txt").write_text(out)
    m = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if not m:
        return None, None
    return float(m.group(1)), float(m.group(2))


# ---------------------------------------------------------------- helpers

def fen_to_amount(fen):
    return "%d.%02d" % (fen // 100, fen % 100)


def beijing_now_str(delta=0):
    tz = datetime.timezone(datetime.timedelta(hours=8))
    return (datetime.datetime.now(tz) + datetime.timedelta(seconds=delta)).strftime(
        "%Y-%m-%d %H:%M:%S")


def alipay_string_to_sign(params):
    """Notification string to sign: every non-empty field except sign and
    sign_type, keys sorted by bytes, k=v joined by '&', raw values."""
    items = sorted((k.encode(), k, v) for k, v in params.items()
                   if k not in ("sign", "sign_type") and v not in (None, ""))
    return "&".join("%s=%s" % (k, v) for _b, k, v in items)


def wx_sign_hmac(params, key=WX_API_KEY):
    items = sorted((k.encode(), k, v) for k, v in params.items()
                   if k != "sign" and v not in (None, ""))
    text = "&".join("%s=%s" % (k, v) for _b, k, v in items) + "&key=" + key
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def cpu_ticks(pids):
    """utime + stime (clock ticks) summed over PIDS."""
    total = 0
    for p in pids:
        st = S._state(p)
        if st:
            total += int(st[11]) + int(st[12])
    return total


TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ------------------------------------------------------------------ bench

class Bench:
    def __init__(self):
        self.registry = None
        self.galera = None       # the Galera cluster (BENCH_GALERA=1)
        self.product_id = None
        self.procs = []          # Popen of web servers and the sandbox
        self.pools = {}          # name -> pids
        self.db_dir = RUN / "db"
        self.rows = []
        self.baseline = {}       # (server, conns, baseline) -> req/s
        self.baseline_p99 = {}   # (server, conns, baseline) -> p99 µs
        self.sweep_rows = []     # rows of the process-count sweep
        self.rate_seen = {}      # (scenario, conns) -> best req/s seen (sizes notification batches)
        self.children = CHILDREN
        self.batch = 0
        self.flat = None
        self.paid_orders = []
        self.web_procs = {}

    # -- set-up -------------------------------------------------------------
    def start(self):
        RUN.parent.mkdir(parents=True, exist_ok=True)
        self.registry = S.PidRegistry(RUN.parent / "bench-pids")
        self.registry.stop_leftovers()
        if (self.db_dir / "mysqld.pid").exists():
            sh(["bash", str(REPO / "scripts/mariadb.sh"), "stop", str(self.db_dir)], check=False,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(RUN, ignore_errors=True)
        RUN.mkdir(parents=True)
        os.chmod(RUN, 0o755)

        self.db_port = S.free_port()
        log("MariaDB on port %d" % self.db_port)
        # performance_schema is compiled in but every consumer stays off
        # until the statement profile (db_profile) switches some on
        env = dict(os.environ, PAYGATE_MARIADB_OPTS=(
            "--performance-schema=ON "
            "--performance-schema-events-statements-history-long-size=%d "
            "--performance-schema-max-sql-text-length=64 "
            "--performance-schema-instrument=transaction=ON %s" % (PS_HISTORY, MARIADB_OPTS)))
        r = subprocess.run(["bash", str(REPO / "scripts/mariadb.sh"), "start", str(self.db_dir),
                            str(self.db_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env)
        if r.returncode != 0:
            raise S.StackError("mariadb.sh start failed:\n" + r.stdout)
        self.registry.add(int((self.db_dir / "mysqld.pid").read_text().strip()))
        self.root_sql("GRANT SELECT, UPDATE, DROP ON performance_schema.* TO 'paygate'@'127.0.0.1';"
                      "UPDATE performance_schema.setup_consumers SET ENABLED = 'NO'")

        sb = RUN / "sandbox"
        self.sandbox_http, self.sandbox_https = S.free_port(), S.free_port()
        log("sandbox on ports %d/%d" % (self.sandbox_http, self.sandbox_https))
        self.procs.append(S.start_sandbox(
            sb, self.sandbox_http, self.sandbox_https, APP_ID, KEYS / "app_public.pem",
            time_scale=0.01, log=RUN / "sandbox.log", registry=self.registry,
            wechat={"appid": WX_APPID, "mch_id": WX_MCH_ID, "api_key": WX_API_KEY}))
        self.alipay_private = serialization.load_pem_private_key(
            (sb / "alipay_private_key.pem").read_bytes(), password=None)
        self.apple = appstore_gw.AppleSigner(APPLE_BUNDLE, 1234567890, "Production")
        apple_root = self.apple.write(str(RUN / "appstore"))

        self.ports = {s: S.free_port() for s in SERVERS}
        base_url = "http://127.0.0.1:%d/pay" % self.ports[SERVERS[0]]
        key = RUN / "app_private_key.pem"
        shutil.copyfile(KEYS / "app_private_pkcs8.pem", key)
        self.config = S.write_config(
            RUN / "paygate.ini", base_url=base_url, db_port=self.db_port,
            log_file=RUN / "paygate.log", app_id=APP_ID,
            gateway="https://127.0.0.1:%d/gateway.do" % self.sandbox_https,
            app_private_key=key, alipay_public_key=sb / "alipay_public_key.pem",
            seller_id=SELLER_ID, ca_file=sb / "ca.pem", return_url=base_url + "/shop",
            api_key=API_KEY, checkout_secret=CHECKOUT_SECRET, storefront=False,
            wechat={"appid": WX_APPID, "mch_id": WX_MCH_ID, "api_key": WX_API_KEY,
                    "sign_type": "HMAC-SHA256", "gateway": "https://127.0.0.1:%d" % self.sandbox_https,
                    "ca_file": sb / "ca.pem"},
            extra="[metrics]\nallow = 127.0.0.1/32, ::1\n"
                  "[stripe]\nenabled = true\nsecret_key = sk_test_bench\nwebhook_secret = %s\n"
                  "api_base = http://127.0.0.1:%d\n"
                  "[appstore]\nenabled = true\nbundle_id = %s\napp_apple_id = 1234567890\n"
                  "environment = Production\nroot_cert = %s\n"
                  % (STRIPE_WHSEC, self.sandbox_http, APPLE_BUNDLE, apple_root))
        # the same paygate without metrics, for the cost rows (METRICS_OFF_ROWS)
        self.config_nm = RUN / "paygate-nometrics.ini"
        self.config_nm.write_text(self.config.read_text().replace(
            base_url, base_url[:-len("/pay")] + "/nometrics").replace("[metrics]\n", "[metrics]\nenabled = false\n"))
        os.chmod(self.config_nm, 0o600)
        # the same paygate with [wechat] api_version = v3 (the sandbox's
        # public-key mode: WeChat Pay's public key and its ID), for V3_ROWS
        self.wx_private_v3 = serialization.load_pem_private_key(
            (sb / "wechatpay_pub_private.pem").read_bytes(), password=None)
        self.config_v3 = RUN / "paygate-wxv3.ini"
        self.config_v3.write_text(self.config.read_text().replace(
            base_url, base_url[:-len("/pay")] + "/wxv3").replace("[wechat]\n", (
                "[wechat]\napi_version = v3\napi_v3_key = %s\nwechatpay_public_key = %s\n"
                "wechatpay_public_key_id = %s\nclient_cert = %s\nclient_key = %s\n") % (
                WX_V3_KEY, sb / "wechatpay_pub_key.pem", WX_V3_PUBKEY_ID,
                sb / "wechat_apiclient_cert.pem", sb / "wechat_apiclient_key.pem"), 1))
        os.chmod(self.config_v3, 0o600)
        self.galera = None
        if GALERA:
            self.start_galera(base_url)
        ctl = [str(BUILD / "paygatectl"), "-c", str(self.config)]
        sh(ctl + ["migrate"], stdout=subprocess.DEVNULL)
        sh(ctl + ["product", "add", "--sku", SKU, "--title", "C for grown-ups", "--price-fen",
                  str(PRICE_FEN)], stdout=subprocess.DEVNULL)
        sh(ctl + ["product", "update", "--sku", SKU, "--appstore-id", APPLE_PRODUCT], stdout=subprocess.DEVNULL)
        self.product_id = self.q1("SELECT id FROM products WHERE sku=%s", SKU)
        self.exec("CREATE TABLE bench_floor (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                  "payment_no VARCHAR(32) NOT NULL, amount_fen BIGINT NOT NULL, "
                  "status ENUM('CREATED','PAID','CLOSED') NOT NULL, "
                  "created_at DATETIME NOT NULL DEFAULT UTC_TIMESTAMP(), "
                  "updated_at DATETIME NOT NULL DEFAULT UTC_TIMESTAMP(), "
                  "UNIQUE KEY uq_bench_floor_no (payment_no)) ENGINE=InnoDB")
        self.exec("INSERT INTO bench_floor (payment_no, amount_fen, status) "
                  "SELECT CONCAT('S', seq), 9900, 'CREATED' FROM seq_1_to_100000")

        # FastCGI pools (spawn-fcgi, TCP, CHILDREN processes each)
        db = ["127.0.0.1", str(self.db_port), "paygate", "paygate", "paygate"]
        self.fcgi_ports = {}
        apps = {"paygate": (BUILD / "paygate.fcgi", ["-c", str(self.config)]),
                "paygate-nm": (BUILD / "paygate.fcgi", ["-c", str(self.config_nm)]),
                "paygate-v3": (BUILD / "paygate.fcgi", ["-c", str(self.config_v3)]),
                "hello": (BB / "hello", []),
                "floor-sign": (BB / "floor", ["sign", str(key)] + db),
                "floor-verify": (BB / "floor", ["verify", str(key)] + db),
                "floor-read": (BB / "floor", ["read", str(key)] + db),
                "floor-hmac": (BB / "floor", ["hmac", str(key)] + db),
                "floor-es256": (BB / "floor", ["es256", str(key)] + db)}
        if self.galera:
            apps["paygate-galera"] = (BUILD / "paygate.fcgi", ["-c", str(self.config_galera)])
        self.apps = apps
        for name in apps:
            self.fcgi_ports[name] = S.free_port()
            self.spawn_pool(name, CHILDREN)
        self.mounts = {"paygate": "/pay", "paygate-nm": "/nometrics", "paygate-v3": "/wxv3",
                       "paygate-galera": "/galera",
                       "hello": "/hello", "floor-sign": "/floor-sign",
                       "floor-verify": "/floor-verify", "floor-read": "/floor-read", "floor-hmac": "/floor-hmac",
                       "floor-es256": "/floor-es256"}
        for server in SERVERS:
            self.start_server(server, self.ports[server], RUN / server,
                              {self.mounts[n]: p for n, p in self.fcgi_ports.items()})
            st = S.http_status("http://127.0.0.1:%d/pay/healthz" % self.ports[server])
            if st != 200:
                raise S.StackError("%s: /pay/healthz answered %s" % (server, st))

    def start_galera(self, base_url):
        """A three-node Galera cluster under RUN/galera, migrated, with the
        product; the config of its pool (host = the cluster's host list)."""
        sys.path.insert(0, str(REPO / "tests" / "integration"))
        import galera_cluster as G
        why = G.unavailable_reason()
        if why:
            log("BENCH_GALERA: no cluster here (%s): Galera rows skipped" % why)
            return
        cl = G.GaleraCluster(RUN / "galera", registry=self.registry)
        for n in cl.nodes:
            n.command = (lambda bootstrap, extra=(), _o=n.command: _o(bootstrap, list(extra) + GALERA_OPTS))
        t0 = time.time()
        self.galera = cl    # stopped by stop() from here on, even half started
        cl.start()
        log("Galera cluster of 3 up in %.1f s (SQL ports %s)" % (
            time.time() - t0, ", ".join(str(n.port) for n in cl.nodes)))
        self.config_galera = RUN / "paygate-galera.ini"
        text = self.config.read_text().replace(base_url, base_url[:-len("/pay")] + "/galera")
        text, k = re.subn(r"^\[database\]\nhost = [^\n]*\n", "[database]\nhost = %s\n" % cl.host_list(),
                          text, count=1, flags=re.M)
        assert k == 1, "no [database] host in the config"
        self.config_galera.write_text(text)
        os.chmod(self.config_galera, 0o600)
        ctl = [str(BUILD / "paygatectl"), "-c", str(self.config_galera)]
        sh(ctl + ["migrate"], stdout=subprocess.DEVNULL)
        sh(ctl + ["product", "add", "--sku", SKU, "--title", "C for grown-ups", "--price-fen",
                  str(PRICE_FEN)], stdout=subprocess.DEVNULL)
        with self.on_galera():
            self.galera_product_id = self.q1("SELECT id FROM products WHERE sku=%s", SKU)

    def on_galera(self):
        """Within it, the bench's own SQL (payments made for notifications,
        the checks, SHOW GLOBAL STATUS) goes to node 1, the first host of the
        pool's list."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            saved = (self.db_port, self.product_id, self.paid_orders)
            self.db_port = self.galera.nodes[0].port
            self.product_id = getattr(self, "galera_product_id", self.product_id)
            try:
                yield
            finally:
                self.db_port, self.product_id, self.paid_orders = saved
        return ctx()

    def run_galera(self, sc, server, conns):
        with self.on_galera():
            self.run_scenario(sc, server, conns, app="paygate-galera")
        row = self.rows[-1]
        single = [x for x in self.rows[:-1] if x["scenario"] == sc and x["server"] == server
                  and x["conns"] == conns and not x.get("variant")]
        if single and single[-1]["r"]["rps"] and single[-1]["r"]["p99_us"]:
            s = single[-1]["r"]
            row["check"] = "cluster/single: req/s %.2f, p50 %.2f, p99 %.2f; %s" % (
                row["r"]["rps"] / s["rps"], row["r"]["p50_us"] / max(1, s["p50_us"]),
                row["r"]["p99_us"] / s["p99_us"], row["check"])
            log("  %s on Galera / single: req/s %.2f, p99 %.2f" % (
                sc, row["r"]["rps"] / s["rps"], row["r"]["p99_us"] / s["p99_us"]))

    def spawn_pool(self, name, children):
        app, args = self.apps[name]
        port = self.fcgi_ports[name]
        self.pools[name] = S.spawn_fcgi(app, args, RUN / ("%s.pid" % name), host="127.0.0.1",
                                        port=port, children=children, log=RUN / "spawn-fcgi.log",
                                        registry=self.registry)
        log("%s: spawn-fcgi -F %d on 127.0.0.1:%d, pids %s" % (name, children, port,
                                                               self.pools[name]))

    def respawn_paygate(self, children):
        """paygate again under spawn-fcgi -F CHILDREN on the same port (the
        web servers keep pointing at it); waits until every server answers
        /pay/healthz through it again."""
        S.stop_pids(self.pools.pop("paygate"), grace=20)
        S.wait_until(lambda: not S.tcp_open(self.fcgi_ports["paygate"]), 10, "paygate port closed")
        self.spawn_pool("paygate", children)
        self.children = children
        for server in SERVERS:
            url = "http://127.0.0.1:%d/pay/healthz" % self.ports[server]
            S.wait_until(lambda: S.http_status(url, 5) == 200, 30, "%s: /pay/healthz" % server)

    def start_server(self, server, port, d, mounts):
        """lighttpd or Apache (mod_proxy_fcgi) on PORT with each mount ->
        a FastCGI TCP port, from the apache-conf/ templates."""
        d.mkdir(parents=True, exist_ok=True)
        if server != "lighttpd" and os.geteuid() == 0:  # Apache's children must reach d
            d = S.children_dir(d, *S.current_user_group())
        (d / "htdocs").mkdir(exist_ok=True)
        conf_dir = REPO / "apache-conf"
        parts = []
        for i, (mount, fport) in enumerate(mounts.items()):
            if server == "lighttpd":
                p = S.render(conf_dir / "lighttpd-paygate.conf", d / ("snippet-%d.conf" % i),
                             {"MOUNT": mount,
                              "FCGI_BACKEND": '"host" => "127.0.0.1", "port" => %d' % fport})
                text = p.read_text()
                if i:   # mod_fastcgi is loaded once
                    text = "\n".join(ln for ln in text.splitlines()
                                     if not ln.startswith("server.modules"))
            else:
                p = S.render(conf_dir / "apache-proxy-fcgi.conf", d / ("snippet-%d.conf" % i),
                             {"MOUNT": mount, "FCGI_ADDR": "127.0.0.1:%d" % fport})
                text = p.read_text()
            parts.append(text)
        snippet = d / "snippet.conf"
        snippet.write_text("\n".join(parts) + "\n")
        if server == "lighttpd":
            conf = S.render(conf_dir / "lighttpd-test.conf", d / "lighttpd.conf",
                            {"PORT": port, "RUN_DIR": d, "PAYGATE_SNIPPET": snippet})
            args = [S.LIGHTTPD_BIN, "-D", "-f", str(conf)]
            t = sh([S.LIGHTTPD_BIN, "-tt", "-f", str(conf)], check=False, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True)
        else:
            user, group = S.current_user_group()
            conf = S.render(conf_dir / "apache-test.conf", d / "httpd.conf",
                            {"PORT": port, "RUN_DIR": d, "USER": user, "GROUP": group,
                             "MODULES": S.APACHE_MODULES, "SNIPPET": snippet, "ASAN_OPTIONS": ""})
            if os.geteuid() == 0:
                S.chown_tree(d, user, group)
            args = [S.APACHE_BIN, "-f", str(conf), "-D", "PAYGATE_PROXY_FCGI"]
            t = sh(args + ["-t"], check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   text=True)
            args = args + ["-DFOREGROUND"]
        if t.returncode != 0:
            raise S.StackError("%s config test: %s" % (server, t.stdout))
        with open(d / "server.out", "ab") as out:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True)
        self.procs.append(proc)
        self.registry.add(proc.pid)
        self.web_procs.setdefault(server, proc)
        S.wait_until(lambda: S.tcp_open(port), 20, "%s on port %d" % (server, port))
        log("%s on port %d (pid %d)" % (server, port, proc.pid))
        return proc

    def stop(self):
        pids = [p for pool in self.pools.values() for p in pool]
        for proc in self.procs:
            pids.append(proc.pid)
        S.stop_pids(pids, grace=20)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except Exception:
                pass
        self.procs, self.pools = [], {}
        for server in SERVERS:
            S.release_children_dir(RUN / server)
        if (self.db_dir / "mysqld.pid").exists():
            sh(["bash", str(REPO / "scripts/mariadb.sh"), "stop", str(self.db_dir)], check=False,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if getattr(self, "galera", None):
            try:
                self.galera.stop()
            except Exception as e:  # noqa: BLE001 - the registry below stops what is left
                log("stopping the Galera cluster: %s" % e)
            self.galera = None
        if self.registry and self.registry.path.exists():
            self.registry.stop_leftovers()

    # -- database -----------------------------------------------------------
    def db(self):
        return pymysql.connect(host="127.0.0.1", port=self.db_port, user="paygate",
                               password="paygate", database="paygate", autocommit=True,
                               connect_timeout=10)

    def root_sql(self, sql):
        subprocess.run(["mariadb", "--no-defaults", "-uroot", "--socket=%s" % (self.db_dir / "mysqld.sock"),
                        "-e", sql], check=True)

    def exec(self, sql, *args):
        c = self.db()
        try:
            with c.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            c.close()

    def q1(self, sql, *args):
        rows = self.exec(sql, *args)
        return rows[0][0] if rows else None

    def create_payments(self, prefix, n, channel, method):
        """N orders + CREATED payments straight in SQL: order_no ==
        payment_no == PREFIX + zero-padded number (24 characters)."""
        width = 24 - len(prefix)
        self.exec("INSERT INTO orders (order_no, product_id, user_ref, amount_fen) "
                  "SELECT CONCAT(%s, LPAD(seq, %s, '0')), %s, 'bench-notify', %s "
                  "FROM seq_1_to_" + str(int(n)), prefix, width, self.product_id, PRICE_FEN)
        self.exec("INSERT INTO payments (payment_no, order_id, channel, method, amount_fen, "
                  "expires_at) SELECT order_no, id, %s, %s, amount_fen, "
                  "UTC_TIMESTAMP() + INTERVAL 1 DAY FROM orders WHERE order_no LIKE %s",
                  channel, method, prefix + "%")
        return [prefix + str(i).zfill(width) for i in range(1, n + 1)]

    # -- notifications ---------------------------------------------------------
    def alipay_bodies(self, nos, path):
        amount = fen_to_amount(PRICE_FEN)
        now, created, paid = beijing_now_str(), beijing_now_str(-60), beijing_now_str(-5)
        fund = json.dumps([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":"))
        with open(path, "w") as f:
            for no in nos:
                fl = {"notify_time": now, "notify_type": "trade_status_sync",
                      "notify_id": "b" + uuid.uuid4().hex, "app_id": APP_ID, "auth_app_id": APP_ID,
                      "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
                      "trade_no": "2026" + str(uuid.uuid4().int)[:24], "out_trade_no": no,
                      "seller_id": SELLER_ID, "seller_email": "sandbox_seller@example.com",
                      "trade_status": "TRADE_SUCCESS", "total_amount": amount,
                      "subject": "C for grown-ups", "gmt_create": created,
                      "buyer_id": "2088102177000001", "buyer_logon_id": "buy***@example.com",
                      "receipt_amount": amount, "invoice_amount": amount,
                      "buyer_pay_amount": amount, "point_amount": "0.00", "gmt_payment": paid,
                      "fund_bill_list": fund}
                sig = self.alipay_private.sign(alipay_string_to_sign(fl).encode(),
                                               padding.PKCS1v15(), hashes.SHA256())
                fl["sign"] = base64.b64encode(sig).decode()
                f.write(urllib.parse.urlencode(fl) + "\n")

    @staticmethod
    def wechat_bodies(nos, path):
        tend = time.strftime("%Y%m%d%H%M%S")
        with open(path, "w") as f:
            for no in nos:
                fl = {"appid": WX_APPID, "mch_id": WX_MCH_ID, "nonce_str": uuid.uuid4().hex,
                      "result_code": "SUCCESS", "return_code": "SUCCESS",
                      "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "is_subscribe": "N",
                      "trade_type": "NATIVE", "bank_type": "OTHERS", "total_fee": str(PRICE_FEN),
                      "cash_fee": str(PRICE_FEN), "fee_type": "CNY",
                      "transaction_id": "4200" + str(uuid.uuid4().int)[:24],
                      "out_trade_no": no, "time_end": tend, "sign_type": "HMAC-SHA256"}
                fl["sign"] = wx_sign_hmac(fl)
                f.write("<xml>" + "".join("<%s><![CDATA[%s]]></%s>" % (k, v, k)
                                          for k, v in fl.items()) + "</xml>\n")

    def wechat_v3_bodies(self, nos, path):
        """WeChat Pay API v3 TRANSACTION.SUCCESS notifications, one per line:
        "H|Name: value|...", a tab, the JSON body (bench/wrk.lua sends the
        headers with it). The transaction is AES-256-GCM encrypted under the
        APIv3 key (associated data "transaction", a fresh 12-character
        nonce); the headers carry Wechatpay-Timestamp/Nonce/Serial and the
        SHA256withRSA signature of "ts\nnonce\nbody\n" by the sandbox's
        WeChat Pay private key (public-key mode). Signed now: the run must
        start within the 300 s clock-skew window."""
        ts = str(int(time.time()))
        success = time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600 - 5))
        aes = AESGCM(WX_V3_KEY.encode())
        with open(path, "w", encoding="utf-8") as f:
            for no in nos:
                tx = {"appid": WX_APPID, "mchid": WX_MCH_ID, "out_trade_no": no, "trade_state": "SUCCESS",
                      "trade_state_desc": "支付成功", "transaction_id": "4200" + str(uuid.uuid4().int)[:24],
                      "trade_type": "NATIVE", "bank_type": "OTHERS", "success_time": success,
                      "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                      "amount": {"total": PRICE_FEN, "payer_total": PRICE_FEN, "currency": "CNY",
                                 "payer_currency": "CNY"}}
                gnonce = uuid.uuid4().hex[:12]
                ct = aes.encrypt(gnonce.encode(), json.dumps(tx, separators=(",", ":"),
                                                             ensure_ascii=False).encode(), b"transaction")
                body = json.dumps({
                    "id": str(uuid.uuid4()), "create_time": success, "resource_type": "encrypt-resource",
                    "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
                    "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                                 "ciphertext": base64.b64encode(ct).decode(),
                                 "associated_data": "transaction", "nonce": gnonce}},
                    separators=(",", ":"), ensure_ascii=False)
                hnonce = uuid.uuid4().hex
                sig = self.wx_private_v3.sign(("%s\n%s\n%s\n" % (ts, hnonce, body)).encode(),
                                              padding.PKCS1v15(), hashes.SHA256())
                f.write("H|Wechatpay-Timestamp: %s|Wechatpay-Nonce: %s|Wechatpay-Serial: %s|"
                        "Wechatpay-Signature: %s\t%s\n" % (ts, hnonce, WX_V3_PUBKEY_ID,
                                                          base64.b64encode(sig).decode(), body))

    @staticmethod
    def stripe_bodies(nos, path):
        """One line per event: the Stripe-Signature header, a tab, the body
        (bench/wrk.lua sends the header with it). Signed now: the run must
        start within Stripe's 300 s tolerance."""
        t = int(time.time())
        with open(path, "w") as f:
            for no in nos:
                body = json.dumps({
                    "id": "evt_" + uuid.uuid4().hex, "object": "event", "type": "checkout.session.completed",
                    "created": t, "livemode": False, "data": {"object": {
                        "id": "cs_test_" + uuid.uuid4().hex, "object": "checkout.session", "status": "complete",
                        "payment_status": "paid", "payment_intent": "pi_" + uuid.uuid4().hex[:24],
                        "client_reference_id": no, "metadata": {"payment_no": no}, "currency": "cny",
                        "amount_total": PRICE_FEN}}}, separators=(",", ":"))
                mac = hmac.new(STRIPE_WHSEC.encode(), ("%d." % t).encode() + body.encode(), hashlib.sha256)
                f.write("t=%d,v1=%s\t%s\n" % (t, mac.hexdigest(), body))

    def appstore_bodies(self, prefix, n, path):
        """N App Store Server Notifications V2 (ONE_TIME_CHARGE), one per
        line, each a new transaction of a new buyer (an app account token
        put straight in SQL, as GET /iap/account-token would)."""
        self.exec("INSERT INTO iap_account_tokens (token, user_ref) SELECT UUID(), CONCAT(%s, seq) "
                  "FROM seq_1_to_" + str(int(n)), prefix)
        tokens = [row[0] for row in self.exec("SELECT token FROM iap_account_tokens WHERE user_ref LIKE %s",
                                              prefix + "%")]
        with open(path, "w") as f:
            for token in tokens:
                tx = self.apple.transaction(APPLE_PRODUCT, token, price_milli=PRICE_FEN * 10)
                f.write(self.apple.notification("ONE_TIME_CHARGE", tx) + "\n")
        return len(tokens)

    # -- wrk ----------------------------------------------------------------
    def wrk(self, url, conns, seconds, method="GET", path=None, bodies="-", expect=200,
            needle="-", ctype="-", auth="-", limit=0, background=False):
        path = path or urllib.parse.urlsplit(url).path
        cmd = ["wrk", "-t", str(min(THREADS, conns)), "-c", str(conns), "-d", "%ds" % seconds,
               "--timeout", "30s", "-s", str(REPO / "bench/wrk.lua"), url, "--", method, path,
               bodies, str(expect), needle, ctype, auth, str(min(THREADS, conns)), str(limit)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if background:
            return p
        return self.wrk_result(p)

    @staticmethod
    def wrk_result(p):
        out, _ = p.communicate()
        m = re.search(r"^BENCH (\{.*\})$", out, re.M)
        if not m:
            raise RuntimeError("wrk said:\n" + out)
        r = json.loads(m.group(1))
        r["rps"] = r["requests"] * 1e6 / r["duration_us"] if r["duration_us"] else 0.0
        r["errors"] = (r["bad_status"] + r["connect"] + r["read"] + r["write"] + r["timeout"])
        return r

    def cpu_groups(self, server, app):
        """PIDs whose CPU time is charged per request: the FastCGI app, the
        database, the web server (with its children) and the sandbox."""
        web = self.web_procs[server]
        db = ([int((self.db_dir / "mysqld.pid").read_text().strip())] if app != "paygate-galera"
              else self.galera.pids())   # all three nodes
        return {"app": list(self.pools[app]),
                "db": db,
                "web": [web.pid] + S.descendants(web.pid),
                "sandbox": [self.procs[0].pid]}

    def measure(self, server, app, fn):
        """Runs FN() (which returns a wrk result) and adds to it the CPU time
        per completed request of each group (µs)."""
        groups = self.cpu_groups(server, app)
        s0 = self.db_status()
        t0 = {g: cpu_ticks(p) for g, p in groups.items()}
        r = fn()
        groups = self.cpu_groups(server, app)
        s1 = self.db_status()
        n = max(1, r["requests"])
        r["cpu_us"] = {g: (cpu_ticks(p) - t0[g]) * TICK_US / n for g, p in groups.items()}
        r["db_per_req"] = {k: (s1[k] - s0[k]) / n for k in s0}
        return r

    DB_COUNTERS = ("Questions", "Com_stmt_prepare", "Com_stmt_execute", "Com_commit",
                   "Com_rollback", "Com_select", "Com_insert", "Com_update", "Com_begin",
                   "Com_set_option", "Com_stmt_close", "Com_stmt_reset", "Connections")

    def db_status(self):
        rows = self.exec("SHOW GLOBAL STATUS")
        d = {k: int(v) for k, v in rows if k in self.DB_COUNTERS}
        return {k: d.get(k, 0) for k in self.DB_COUNTERS}

    @staticmethod
    def db_summary(r):
        d = r.get("db_per_req")
        if not d:
            return "-"
        short = {"Questions": "q", "Com_stmt_prepare": "prep", "Com_stmt_execute": "exec",
                 "Com_commit": "commit", "Com_rollback": "rollback", "Com_select": "sel",
                 "Com_insert": "ins", "Com_update": "upd", "Com_begin": "begin",
                 "Com_set_option": "setopt", "Com_stmt_close": "close",
                 "Com_stmt_reset": "reset", "Connections": "conn"}
        return " ".join("%s %.1f" % (short[k], v) for k, v in d.items() if v >= 0.05)

    def paygate_rss(self, app="paygate"):
        return {p: rss_kib(p) for p in self.pools[app]}

    # -- scenarios ------------------------------------------------------------
    def base_url(self, server, mount):
        return "http://127.0.0.1:%d%s" % (self.ports[server], mount)

    @staticmethod
    def baseline_request(name):
        """wrk arguments of one baseline's request."""
        if name in ("hello", "floor-read"):
            return dict(method="GET")
        return dict(method="POST", ctype="application/x-www-form-urlencoded",
                    bodies="product=%s&user=bench-floor&channel=alipay&method=page" % SKU)

    def run_baselines(self, server, conns, names, rows=None):
        rows = self.rows if rows is None else rows
        for name in ("hello", "floor-sign", "floor-verify", "floor-read", "floor-hmac", "floor-es256"):
            if name not in names:
                continue
            kw = self.baseline_request(name)
            r = self.measure(server, name, lambda: self.wrk(
                self.base_url(server, self.mounts[name] + "/x"), conns, SECONDS,
                needle='"ok":true', **kw))
            self.baseline[(server, conns, name)] = r["rps"]
            self.baseline_p99[(server, conns, name)] = r["p99_us"]
            rows.append(dict(scenario="baseline " + name, server=server, conns=conns, r=r,
                             check="", ratio=None, children=CHILDREN))
            log("%-24s %-8s c=%-3d %8.1f req/s p50 %.1f ms p99 %.1f ms errors %d" % (
                "baseline " + name, server, conns, r["rps"], r["p50_us"] / 1000,
                r["p99_us"] / 1000, r["errors"]))

    def run_scenario(self, sc, server, conns, app="paygate", rows=None):
        """app: "paygate", or "paygate-nm" ([metrics] enabled = false);
        rows: where the row goes (default self.rows)."""
        base = self.base_url(server, self.mounts[app])
        self.batch += 1
        tag = "%s-%d" % (sc, self.batch)
        auth = "Bearer " + API_KEY
        check = ""
        rss0 = self.paygate_rss(app)
        expected_rate = self.baseline.get((server, conns, BASELINE_OF[sc][0]), 500)
        if sc.startswith("checkout"):
            ch, meth = ("alipay", "page") if sc == "checkout-alipay-page" else ("wechat", "native")
            user = "bench-" + tag
            body = "product=%s&user=%s&channel=%s&method=%s" % (SKU, user, ch, meth)
            r = self.measure(server, app, lambda: self.wrk(
                base + "/checkout", conns, SECONDS, method="POST", bodies=body, expect=201,
                needle='"payment_no"', ctype="application/x-www-form-urlencoded", auth=auth))
            time.sleep(0.5)
            n = self.q1("SELECT COUNT(*) FROM orders o JOIN payments p ON p.order_id = o.id "
                        "WHERE o.user_ref = %s AND p.channel = %s AND p.status = 'CREATED'"
                        + (" AND p.api_version = 'v3'" if sc in V3_ROWS else ""), user, ch)
            check = "db %d orders+payments%s / %d ok" % (n, " (v3)" if sc in V3_ROWS else "", r["ok"])
            r["db_ok"] = n >= r["ok"]
        elif sc == "notify-appstore":
            n = int(min(30000, max(1000, expected_rate * SECONDS * 1.3)))
            prefix = "bench-ios-%03d-" % self.batch
            f = RUN / ("bodies-%s.txt" % tag)
            t0 = time.time()
            self.appstore_bodies(prefix, n, f)
            log("  (%d App Store notifications prepared in %.1f s)" % (n, time.time() - t0))
            r = self.measure(server, app, lambda: self.wrk(
                base + "/notify/appstore", conns, SECONDS, method="POST", bodies="@" + str(f),
                needle="ok", ctype="application/json"))
            time.sleep(0.5)
            paid = self.q1("SELECT COUNT(*) FROM iap_purchases WHERE user_ref LIKE %s AND status = 'PAID'",
                           prefix + "%")
            porders = self.q1("SELECT COUNT(*) FROM orders WHERE user_ref LIKE %s AND status = 'PAID'",
                              prefix + "%")
            check = "db %d purchases + %d orders PAID / %d ok of %d" % (paid, porders, r["ok"], n)
            if r["exhausted"]:
                check += " (bodies used up: stopped early)"
            r["db_ok"] = paid >= r["ok"] and porders == paid
        elif sc == "notify-stripe":
            n = int(min(60000, max(1000, expected_rate * SECONDS * 1.3)))
            prefix = "BNS%03d" % self.batch
            nos = self.create_payments(prefix, n, "stripe", "checkout")
            f = RUN / ("bodies-%s.txt" % tag)
            self.stripe_bodies(nos, f)
            r = self.measure(server, app, lambda: self.wrk(
                base + "/notify/stripe", conns, SECONDS, method="POST", bodies="@" + str(f),
                needle='"received":true', ctype="application/json"))
            time.sleep(0.5)
            paid = self.q1("SELECT COUNT(*) FROM payments WHERE payment_no LIKE %s AND status = 'PAID'",
                           prefix + "%")
            check = "db %d payments PAID / %d ok of %d" % (paid, r["ok"], n)
            r["db_ok"] = paid >= r["ok"]
        elif sc == "notify-wechat-v3":
            seen = self.rate_seen.get((sc, conns))
            n = int(min(60000, max(1000, (1.6 * seen if seen else 1.3 * expected_rate) * SECONDS)))
            prefix = "BNV%03d" % self.batch
            t0 = time.time()
            nos = self.create_payments(prefix, n, "wechat", "native")
            self.exec("UPDATE payments SET api_version = 'v3' WHERE payment_no LIKE %s", prefix + "%")
            f = RUN / ("bodies-%s.txt" % tag)
            self.wechat_v3_bodies(nos, f)
            log("  (%d wechat v3 notifications prepared in %.1f s)" % (n, time.time() - t0))
            r = self.measure(server, app, lambda: self.wrk(
                base + "/notify/wechat", conns, SECONDS, method="POST", bodies="@" + str(f),
                expect=204, ctype="application/json"))
            time.sleep(0.5)
            paid = self.q1("SELECT COUNT(*) FROM payments WHERE payment_no LIKE %s AND "
                           "status = 'PAID'", prefix + "%")
            porders = self.q1("SELECT COUNT(*) FROM orders WHERE order_no LIKE %s AND "
                              "status = 'PAID'", prefix + "%")
            check = "db %d payments + %d orders PAID / %d ok of %d" % (paid, porders, r["ok"], n)
            if r["exhausted"]:
                check += " (bodies used up: stopped early)"
            r["db_ok"] = paid >= r["ok"] and porders == paid
        elif sc.startswith("notify"):
            ch = "alipay" if sc == "notify-alipay" else "wechat"
            seen = self.rate_seen.get((sc, conns))   # paygate's own rate, when known
            n = int(min(60000, max(1000, (1.6 * seen if seen else 1.3 * expected_rate) * SECONDS)))
            prefix = "BN%s%03d" % ("A" if ch == "alipay" else "W", self.batch)
            t0 = time.time()
            nos = self.create_payments(prefix, n, ch, "page" if ch == "alipay" else "native")
            f = RUN / ("bodies-%s.txt" % tag)
            if ch == "alipay":
                self.alipay_bodies(nos, f)
                r = self.measure(server, app, lambda: self.wrk(
                    base + "/notify/alipay", conns, SECONDS, method="POST", bodies="@" + str(f),
                    needle="success", ctype="application/x-www-form-urlencoded; charset=utf-8"))
            else:
                self.wechat_bodies(nos, f)
                r = self.measure(server, app, lambda: self.wrk(
                    base + "/notify/wechat", conns, SECONDS, method="POST", bodies="@" + str(f),
                    needle="<![CDATA[OK]]>", ctype="text/xml"))
            log("  (%d %s notifications prepared in %.1f s)" % (n, ch, time.time() - t0))
            time.sleep(0.5)
            paid = self.q1("SELECT COUNT(*) FROM payments WHERE payment_no LIKE %s AND "
                           "status = 'PAID'", prefix + "%")
            porders = self.q1("SELECT COUNT(*) FROM orders WHERE order_no LIKE %s AND "
                              "status = 'PAID'", prefix + "%")
            check = "db %d payments + %d orders PAID / %d ok of %d" % (paid, porders, r["ok"], n)
            if r["exhausted"]:
                check += " (bodies used up: stopped early)"
            r["db_ok"] = paid >= r["ok"] and porders == paid
            self.paid_orders = [row[0] for row in self.exec(
                "SELECT order_no FROM orders WHERE order_no LIKE %s AND status = 'PAID' LIMIT 1000",
                prefix + "%")] or self.paid_orders
        else:
            if not self.paid_orders:
                nos = self.create_payments("BNO%03d" % self.batch, 1000, "alipay", "page")
                self.exec("UPDATE payments SET status='PAID', paid_at=UTC_TIMESTAMP() "
                          "WHERE payment_no LIKE %s", "BNO%03d%%" % self.batch)
                self.exec("UPDATE orders SET status='PAID', paid_at=UTC_TIMESTAMP() "
                          "WHERE order_no LIKE %s", "BNO%03d%%" % self.batch)
                self.paid_orders = nos
            f = RUN / "order-paths.txt"
            f.write_text("".join("%s/orders/%s\n" % (self.mounts[app], o) for o in self.paid_orders))
            r = self.measure(server, app, lambda: self.wrk(
                base + "/orders/x", conns, SECONDS, path="@" + str(f), needle="PAID"))
            check = "%d distinct PAID orders read" % len(self.paid_orders)
            d = self.baseline.get((server, conns, "floor-read"))
            if d:
                check += "; (d) floor-read %.0f req/s: ratio %.2f" % (d, r["rps"] / d)
            r["db_ok"] = True
        rss1 = self.paygate_rss(app)
        bname, target = BASELINE_OF[sc]
        b = self.baseline.get((server, conns, bname))
        ratio = r["rps"] / b if b else None
        if app == "paygate-nm":
            check = "[metrics] enabled = false; " + check
        self.rate_seen[(sc, conns)] = max(r["rps"], self.rate_seen.get((sc, conns), 0))
        pfloor = P99_FLOOR_OF[sc]
        fp99 = self.baseline_p99.get((server, conns, pfloor))
        variant = {"paygate-nm": " (metrics off)", "paygate-galera": " (Galera, 3 nodes)"}.get(app, "")
        row = dict(scenario=sc, server=server, conns=conns, r=r, check=check, ratio=ratio,
                   baseline=bname, base_rps=b, target=target, rss0=rss0, rss1=rss1,
                   children=self.children, p99_floor=pfloor, floor_p99_us=fp99, variant=variant)
        (self.rows if rows is None else rows).append(row)
        log("%-24s %-8s c=%-3d F=%-2d %8.1f req/s p50 %.1f ms p99 %.1f ms (%s p99 %s ms) errors %d "
            "ratio %s  %s" % (
                sc + variant, server, conns, self.children, r["rps"], r["p50_us"] / 1000,
                r["p99_us"] / 1000, pfloor, "%.1f" % (fp99 / 1000) if fp99 else "-", r["errors"],
                "%.2f" % ratio if ratio else "-", check))

    def flatness(self):
        server = SERVERS[0]
        if not self.paid_orders:
            return
        f = RUN / "order-paths.txt"
        f.write_text("".join("/pay/orders/%s\n" % o for o in self.paid_orders))
        # wrk runs for a fixed time, so it runs again until FLAT_REQUESTS
        # requests are done (each run sized from the order-status rate
        # measured above), at most FLAT_SECONDS in all
        rates = [row["r"]["rps"] for row in self.rows if row["scenario"] == "order-status"
                 and row["server"] == server and row["conns"] == 16]
        rate = rates[-1] if rates and rates[-1] > 0 else 1000.0
        log("RSS flatness: order-status requests until %d are done (cap %d s; %s, 16 connections)"
            % (FLAT_REQUESTS, FLAT_SECONDS, server))
        samples = [(0.0, self.paygate_rss())]
        t0 = time.time()
        total = dict(requests=0, duration_us=0, errors=0)
        while total["requests"] < FLAT_REQUESTS and time.time() - t0 < FLAT_SECONDS:
            left = FLAT_SECONDS - (time.time() - t0)
            secs = int(max(3, min(left, (FLAT_REQUESTS - total["requests"]) / (0.9 * rate) + 1)))
            p = self.wrk(self.base_url(server, "/pay/orders/x"), 16, secs, path="@" + str(f),
                         needle="PAID", background=True)
            while p.poll() is None:
                time.sleep(1.0)
                samples.append((time.time() - t0, self.paygate_rss()))
            r = self.wrk_result(p)
            for k in total:
                total[k] += r[k]
            rate = r["rps"] or rate
        samples.append((time.time() - t0, self.paygate_rss()))
        total["rps"] = total["requests"] / max(1e-9, total["duration_us"] / 1e6)
        mid_t = samples[-1][0] / 2
        mid = min(samples, key=lambda s: abs(s[0] - mid_t))
        self.flat = dict(server=server, r=total, start=samples[0], mid=mid, end=samples[-1],
                         max={pid: max((s[1].get(pid) or 0) for s in samples)
                              for pid in samples[0][1]})

    # -- report ---------------------------------------------------------------
    def table(self, speed):
        lines = []
        w = lines.append
        w("## paygate benchmark (%s, %d s per run, wrk -t%d, %s)" % (
            time.strftime("%Y-%m-%d %H:%M"), SECONDS, THREADS, os.uname().nodename))
        w("")
        w("Load average at the end: %s; CPUs: %d." % (
            " ".join(Path("/proc/loadavg").read_text().split()[:3]), os.cpu_count()))
        if speed[0]:
            w("`openssl speed -seconds 3 rsa2048` (one core): %.0f sign/s, %.0f verify/s." % speed)
        w("")
        w("Every pool (paygate and each baseline) runs under spawn-fcgi -F %d." % CHILDREN)
        w("")
        w("| scenario | server | conns | req/s | p50 ms | p99 ms | floor p99 ms | p99 target | errors | baseline | ratio | target | CPU µs/req app/db/web/sandbox | DB commands/req | paygate RSS KiB before→after | check |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in self.rows:
            r = row["r"]
            fp99, p99t = self.p99_verdict(row)
            if row["ratio"] is None and "baseline" not in row:
                base, ratio, target, rss = "-", "-", "-", "-"
            else:
                b = row.get("base_rps")
                base = "%s %.0f" % (row["baseline"], b) if b else row["baseline"]
                ratio = "%.2f" % row["ratio"] if row["ratio"] is not None else "-"
                ok = row["ratio"] is not None and row["ratio"] >= row["target"]
                target = "≥%.1f %s" % (row["target"], "met" if ok else "MISSED")
                rss = ", ".join("%s→%s" % (row["rss0"].get(p), row["rss1"].get(p))
                                for p in row["rss0"])
            errs = "%d" % r["errors"]
            if r["errors"]:
                errs += " (%s)" % " ".join("%s %d" % (k, r[k]) for k in (
                    "bad_status", "connect", "read", "write", "timeout") if r[k])
            if r.get("bad_body"):
                errs += " (+%d bad body)" % r["bad_body"]
            if r.get("db_ok") is False:
                row["check"] += " DB CHECK FAILED"
            cpu = "/".join("%.0f" % r.get("cpu_us", {}).get(g, 0)
                           for g in ("app", "db", "web", "sandbox"))
            w("| %s | %s | %d | %.1f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                row["scenario"] + row.get("variant", ""), row["server"], row["conns"], r["rps"],
                r["p50_us"] / 1000, r["p99_us"] / 1000, fp99, p99t, errs, base, ratio, target, cpu,
                self.db_summary(r), rss, row["check"]))
        if self.flat:
            fl = self.flat
            r = fl["r"]
            w("")
            w("RSS flatness (%s, 16 connections, GET /orders/{no}): %d requests in %.1f s "
              "(%.0f req/s, %d errors; aim %d: %s)." % (
                  fl["server"], r["requests"], r["duration_us"] / 1e6, r["rps"], r["errors"],
                  FLAT_REQUESTS, "reached" if r["requests"] >= FLAT_REQUESTS else "SHORT"))
            w("")
            w("| paygate pid | start KiB | middle KiB (t=%.0f s) | end KiB | max KiB | ≤ 16 MiB |" % fl["mid"][0])
            w("|---|---|---|---|---|---|")
            for pid in fl["start"][1]:
                mx = fl["max"][pid]
                w("| %d | %s | %s | %s | %s | %s |" % (pid, fl["start"][1].get(pid), fl["mid"][1].get(pid),
                                                     fl["end"][1].get(pid), mx,
                                                     "yes" if mx and mx <= RSS_LIMIT_KIB else "NO"))
        w("")
        w("errors = non-2xx/unexpected status + socket errors (connect/read/write/timeout); "
          "ratio = req/s over the baseline measured behind the same server at the same "
          "connections (checkout → (b) floor-sign, notify → (c) floor-verify, Stripe → (e) floor-hmac, "
          "App Store → (f) floor-es256, order status → "
          "(a) hello; the check column adds order status over (d) floor-read, one indexed "
          "SELECT per request). p99 target: p99 ≤ %.1f × the p99 of the row's floor "
          "(checkout → (b), notify → (c), (e), (f), order status → (d)) behind the same server at the "
          "same connections in the same run. CPU µs/req = user+system CPU time of the FastCGI app's processes (paygate or "
          "the baseline), mariadbd, the web server (with its children) and the sandbox during "
          "the run, over the completed requests (wrk itself is not counted). DB commands/req = "
          "deltas of MariaDB's SHOW GLOBAL STATUS counters over the completed requests (q = "
          "Questions, every command a client sent)." % P99_SLACK)
        lines += self.sweep_table()
        return "\n".join(lines) + "\n"

    @staticmethod
    def p99_verdict(row):
        """(floor's p99 in ms, 'met'/'MISSED' against P99_SLACK) of a paygate row."""
        fp99 = row.get("floor_p99_us")
        if not fp99:
            return "-", "-"
        ok = row["r"]["p99_us"] <= P99_SLACK * fp99
        return "%.2f (%s)" % (fp99 / 1000, row["p99_floor"]), "≤%.1f× %s" % (
            P99_SLACK, "met" if ok else "MISSED")

    def knees(self):
        """{(scenario, conns): (knee count, reason)}: the smallest count past
        which the next count adds less than KNEE_GAIN (5 %) throughput, or
        makes p99 worse by more than KNEE_P99 (10 %, about the run-to-run
        noise of a p99) while adding less than 10 % throughput."""
        out = {}
        groups = {}
        for row in self.sweep_rows:
            if row["scenario"].startswith("baseline"):
                continue
            groups.setdefault((row["scenario"], row["conns"]), []).append(row)
        for key, rows in groups.items():
            rows = sorted(rows, key=lambda x: x["children"])
            knee, why = rows[-1]["children"], "throughput still rising at the largest count"
            for a, b in zip(rows, rows[1:]):
                ra, rb = a["r"], b["r"]
                gain = rb["rps"] / ra["rps"] - 1 if ra["rps"] else 0
                if gain < KNEE_GAIN or (gain < 2 * KNEE_GAIN and
                                        rb["p99_us"] > (1 + KNEE_P99) * ra["p99_us"]):
                    knee = a["children"]
                    why = "-F %d → %d: %+.1f %% req/s, p99 %.1f → %.1f ms" % (
                        a["children"], b["children"], 100 * gain, ra["p99_us"] / 1000,
                        rb["p99_us"] / 1000)
                    break
            out[key] = (knee, why)
        return out

    def sweep_table(self):
        if not self.sweep_rows:
            return []
        lines = ["", "## Process-count sweep (%s, paygate under spawn-fcgi -F N, the floors at -F %d)"
                 % (self.sweep_rows[0]["server"], CHILDREN), "",
                 "| scenario | conns | -F | req/s | vs previous -F | p50 ms | p99 ms | floor p99 ms | "
                 "p99 target | errors | CPU µs/req app/db/web/sandbox | paygate RSS KiB (sum) | check |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        prev = {}
        for row in self.sweep_rows:
            r = row["r"]
            cpu = "/".join("%.0f" % r.get("cpu_us", {}).get(g, 0)
                           for g in ("app", "db", "web", "sandbox"))
            if row["scenario"].startswith("baseline"):
                lines.append("| %s | %d | %d | %.1f | - | %.2f | %.2f | - | - | %d | %s | - | |" % (
                    row["scenario"], row["conns"], row["children"], r["rps"], r["p50_us"] / 1000,
                    r["p99_us"] / 1000, r["errors"], cpu))
                continue
            key = (row["scenario"], row["conns"])
            gain = "%+.1f %%" % (100 * (r["rps"] / prev[key] - 1)) if prev.get(key) else "-"
            prev[key] = r["rps"]
            fp99, p99t = self.p99_verdict(row)
            rss = sum(v or 0 for v in row["rss1"].values())
            lines.append("| %s | %d | %d | %.1f | %s | %.2f | %.2f | %s | %s | %d | %s | %d | %s |" % (
                row["scenario"], row["conns"], row["children"], r["rps"], gain,
                r["p50_us"] / 1000, r["p99_us"] / 1000, fp99, p99t, r["errors"], cpu, rss,
                row["check"]))
        lines.append("")
        kn = self.knees()
        for (sc, conns), (knee, why) in sorted(kn.items()):
            lines.append("Knee of %s at %d connections: **-F %d** (%s)." % (sc, conns, knee, why))
        if kn:
            lines.append("")
            lines.append("Knee over the sweep (the largest of the above): -F %d; the main rows ran "
                         "at -F %d." % (max(k for k, _ in kn.values()), CHILDREN))
        return lines

    def sweep(self):
        """paygate restarted under spawn-fcgi -F N for each N of SWEEP behind
        SWEEP_SERVER; SWEEP_SCENARIOS at each SWEEP_CONNS; the floors (at the
        main count) once per connection count, for the p99 target. paygate
        is back at CHILDREN afterwards."""
        server = SWEEP_SERVER if SWEEP_SERVER in SERVERS else SERVERS[0]
        scs = [sc for sc in SWEEP_SCENARIOS if sc in BASELINE_OF]
        if not SWEEP or not scs:
            return
        floors = {P99_FLOOR_OF[sc] for sc in scs} | {BASELINE_OF[sc][0] for sc in scs}
        log("process-count sweep: -F %s, %s, %s connections, %s" % (
            ",".join(map(str, SWEEP)), server, ",".join(map(str, SWEEP_CONNS)), ",".join(scs)))
        try:
            for conns in SWEEP_CONNS:
                self.run_baselines(server, conns, floors, rows=self.sweep_rows)
                for n in SWEEP:
                    self.respawn_paygate(n)
                    for sc in scs:
                        self.run_scenario(sc, server, conns, rows=self.sweep_rows)
        finally:
            self.respawn_paygate(CHILDREN)

    def missed(self):
        out = []
        for row in self.rows:
            if row.get("ratio") is not None and row["ratio"] < row["target"]:
                if row["scenario"] not in out:
                    out.append(row["scenario"])
        return out

    # -- profile --------------------------------------------------------------
    def profile(self, scenarios):
        """One paygate process under callgrind behind its own lighttpd, a short
        wrk load (4 connections), then callgrind_annotate."""
        for sc in scenarios:
            d = RUN / ("profile-" + sc)
            d.mkdir(parents=True, exist_ok=True)
            port, hport = S.free_port(), S.free_port()
            out = d / "callgrind.out"
            pids = S.spawn_fcgi("/usr/bin/valgrind",
                                ["--tool=callgrind", "--callgrind-out-file=%s" % out,
                                 str(BUILD / "paygate.fcgi"), "-c",
                                 str(self.config_v3 if sc in V3_ROWS else self.config)],
                                d / "paygate.pid", host="127.0.0.1", port=port, children=1,
                                log=d / "spawn-fcgi.log", registry=self.registry, timeout=60)
            self.pools["profile"] = pids
            mount = "/wxv3" if sc in V3_ROWS else "/pay"   # where its config's base_url is
            proc = self.start_server("lighttpd", hport, d / "lighttpd", {mount: port})
            S.wait_until(lambda: S.http_status("http://127.0.0.1:%d%s/healthz" % (hport, mount), 10) == 200,
                         60, "paygate under callgrind")
            log("profiling %s under callgrind (%d s, 4 connections)" % (sc, PROFILE_SECONDS))
            saved = (self.ports, SECONDS)
            self.ports = dict(self.ports, lighttpd=hport)
            try:
                self.run_profile_load(sc, hport, mount=mount)
            finally:
                self.ports = saved[0]
            S.stop_pids(pids, grace=60)
            S.stop_pids([proc.pid], grace=10)
            self.procs.remove(proc)
            self.pools.pop("profile", None)
            files = sorted(d.glob("callgrind.out*"))
            if not files:
                log("no callgrind output for %s" % sc)
                continue
            for incl in ("no", "yes"):
                ann = subprocess.run(["callgrind_annotate", "--inclusive=" + incl, "--threshold=99",
                                      str(files[0])], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True).stdout
                (d / ("annotate-%s.txt" % ("inclusive" if incl == "yes" else "self"))).write_text(ann)
            log("profile of %s: %s/annotate-self.txt, annotate-inclusive.txt" % (sc, d))
            print("\n".join(Path(d / "annotate-self.txt").read_text().splitlines()[:45]))

    # -- database statement profile -------------------------------------------
    def db_profile(self, scenarios):
        """Where a request's time inside MariaDB goes: performance_schema's
        statement history (binary-protocol executes carry no SQL text in
        MariaDB, so statements are identified by their position in the
        request) over a load through lighttpd, next to the same for the
        scenario's floor program. One connection by default: requests do not
        wait for each other's CPU, so the times are the statements' own cost;
        more connections (BENCH_DB_PROFILE_CONNS) show lock and log waits.
        """
        out = ["## MariaDB statement profile (lighttpd, %d connection(s), %d s per load)" % (
            DB_PROFILE_CONNS, DB_PROFILE_SECONDS), "",
               "Per statement position in a request (`Execute` = a prepared statement; requests "
               "are told apart by performance_schema's transaction events): its "
               "average and p50 server time (µs, wall clock inside mariadbd, lock and log waits "
               "included), rows examined/affected per call, share of the request's statement time.",
               ""]
        port = self.ports["lighttpd"]
        done = set()
        for sc in scenarios:
            floor = BASELINE_OF[sc][0]
            floor = "floor-read" if floor == "hello" else floor
            for name in ([] if floor in done else [floor]) + [sc]:
                done.add(name)
                self.ps_reset(True)
                if name == sc:
                    self.run_profile_load(sc, port, conns=DB_PROFILE_CONNS, seconds=DB_PROFILE_SECONDS,
                                          notifications=2500 * DB_PROFILE_SECONDS,
                                          mount="/wxv3" if sc in V3_ROWS else "/pay")
                else:
                    self.run_baseline_load(name, port)
                events = self.ps_events()
                self.ps_reset(False)
                out += self.ps_table(name, events)
        text = "\n".join(out) + "\n"
        (RUN / "db-profile.md").write_text(text)
        print(text)
        log("statement profile written to %s" % (RUN / "db-profile.md"))

    def run_baseline_load(self, name, port):
        self.wrk("http://127.0.0.1:%d%s/x" % (port, self.mounts[name]), DB_PROFILE_CONNS,
                 DB_PROFILE_SECONDS, needle='"ok":true', **self.baseline_request(name))

    def ps_reset(self, on):
        flag = "YES" if on else "NO"
        self.exec("UPDATE performance_schema.setup_consumers SET ENABLED = %s WHERE NAME IN "
                  "('global_instrumentation', 'thread_instrumentation', 'events_statements_current', "
                  "'events_statements_history_long', 'events_transactions_current')", flag)
        if on:
            self.exec("TRUNCATE TABLE performance_schema.events_statements_history_long")

    def ps_events(self):
        """Statement events of the application's connections, per thread in
        order: (command, µs, rows examined, rows affected, transaction event)."""
        rows = self.exec(
            "SELECT h.THREAD_ID, h.EVENT_NAME, h.TIMER_WAIT, h.ROWS_EXAMINED, h.ROWS_AFFECTED, "
            "IF(h.NESTING_EVENT_TYPE = 'TRANSACTION', h.NESTING_EVENT_ID, NULL), h.LOCK_TIME "
            "FROM performance_schema.events_statements_history_long h "
            "JOIN performance_schema.threads t ON t.THREAD_ID = h.THREAD_ID "
            "WHERE t.PROCESSLIST_USER = 'paygate' AND t.PROCESSLIST_ID <> CONNECTION_ID() "
            "AND h.EVENT_NAME NOT IN ('statement/com/Quit', 'statement/com/Ping') "
            "ORDER BY h.THREAD_ID, h.EVENT_ID")
        threads = {}
        for tid, ev, wait, exam, aff, tx, lock in rows:
            threads.setdefault(tid, []).append(
                [ev.split("/")[-1], (wait or 0) / 1e6, exam or 0, aff or 0, tx, (lock or 0) / 1e6])
        return threads

    @staticmethod
    def ps_requests(threads):
        """Splits each thread's statements into requests: statements outside
        a transaction, then (when there is one) one transaction's statements;
        with no transaction at all every statement is a request. Names each
        prepared statement by its role (START TRANSACTION = the statement
        right before a transaction's first one, when it touches no row;
        COMMIT = its last). The first and last (possibly cut) request of each
        thread are dropped."""
        reqs = []
        for evs in threads.values():
            if all(e[4] is None for e in evs):
                reqs += [[e] for e in evs][1:-1]
                continue
            parts, cur = [], []
            for k, e in enumerate(evs):
                if cur and cur[-1][4] is not None and e[4] != cur[-1][4]:
                    parts.append(cur)
                    cur = []
                cur.append(e)
                nxt = evs[k + 1][4] if k + 1 < len(evs) else None
                if e[0] == "Execute":
                    if e[4] is None and nxt is not None:
                        # autocommit off (the floors): the first statement opens it
                        e[0] = ("Execute: START TRANSACTION" if not e[2] and not e[3]
                                else "Execute (opens the transaction)")
                    elif e[4] is not None and nxt != e[4]:
                        e[0] = "Execute: COMMIT"
                    elif e[4] is not None:
                        e[0] = "Execute (in transaction)"
            reqs += parts[1:]
        return reqs

    def ps_table(self, name, threads):
        reqs = self.ps_requests(threads)
        if not reqs:
            return ["### %s: no statements recorded" % name, ""]
        shape = max(set(len(r) for r in reqs), key=[len(r) for r in reqs].count)
        same = [r for r in reqs if len(r) == shape]
        total = sum(e[1] for r in same for e in r) / len(same)
        per_req = sorted(sum(e[1] for e in r) for r in same)
        out = ["### %s: %d requests, %d statements each in %d of them; %.0f µs of statement time "
               "per request (p99 %.0f µs)" % (name, len(reqs), shape, len(same), total,
                                    per_req[int(len(per_req) * 0.99)]), "",
               "| # | command | avg µs | p50 µs | p99 µs | lock µs avg / p99 | rows examined | rows affected | share |",
               "|---|---|---|---|---|---|---|---|---|"]
        for i in range(shape):
            col = [r[i] for r in same]
            waits = sorted(e[1] for e in col)
            avg = sum(waits) / len(waits)
            locks = sorted(e[5] for e in col)
            out.append("| %d | %s | %.1f | %.1f | %.1f | %.1f / %.1f | %.1f | %.1f | %.0f %% |" % (
                i + 1, col[0][0], avg, waits[len(waits) // 2], waits[int(len(waits) * 0.99)],
                sum(locks) / len(locks), locks[int(len(locks) * 0.99)],
                sum(e[2] for e in col) / len(col), sum(e[3] for e in col) / len(col),
                100 * avg / total if total else 0))
        return out + [""]

    def run_profile_load(self, sc, hport, conns=4, seconds=None, notifications=3000, mount="/pay"):
        """mount: /wxv3 reaches the v3 pool (of the main servers, or the
        callgrind server's single process)."""
        seconds = seconds or PROFILE_SECONDS
        base = "http://127.0.0.1:%d%s" % (hport, mount)
        auth = "Bearer " + API_KEY
        if sc.startswith("checkout"):
            ch, meth = ("alipay", "page") if sc == "checkout-alipay-page" else ("wechat", "native")
            body = "product=%s&user=bench-profile&channel=%s&method=%s" % (SKU, ch, meth)
            r = self.wrk(base + "/checkout", conns, seconds, method="POST", bodies=body,
                         expect=201, needle='"payment_no"',
                         ctype="application/x-www-form-urlencoded", auth=auth)
        elif sc == "notify-stripe":
            self.batch += 1
            nos = self.create_payments("BPS%03d" % self.batch, notifications, "stripe", "checkout")
            f = RUN / ("bodies-profile-%s.txt" % sc)
            self.stripe_bodies(nos, f)
            r = self.wrk(base + "/notify/stripe", conns, seconds, method="POST", bodies="@" + str(f),
                         needle='"received":true', ctype="application/json")
        elif sc == "notify-wechat-v3":
            self.batch += 1
            prefix = "BPV%03d" % self.batch
            nos = self.create_payments(prefix, notifications, "wechat", "native")
            self.exec("UPDATE payments SET api_version = 'v3' WHERE payment_no LIKE %s", prefix + "%")
            f = RUN / ("bodies-profile-%s.txt" % sc)
            self.wechat_v3_bodies(nos, f)
            r = self.wrk(base + "/notify/wechat", conns, seconds, method="POST", bodies="@" + str(f),
                         expect=204, ctype="application/json")
        elif sc == "notify-appstore":
            self.batch += 1
            f = RUN / ("bodies-profile-%s.txt" % sc)
            self.appstore_bodies("bench-pios-%03d-" % self.batch, notifications, f)
            r = self.wrk(base + "/notify/appstore", conns, seconds, method="POST", bodies="@" + str(f),
                         needle="ok", ctype="application/json")
        elif sc.startswith("notify"):
            ch = "alipay" if sc == "notify-alipay" else "wechat"
            self.batch += 1
            prefix = "BP%s%03d" % ("A" if ch == "alipay" else "W", self.batch)
            nos = self.create_payments(prefix, notifications, ch, "page" if ch == "alipay" else "native")
            f = RUN / ("bodies-profile-%s.txt" % sc)
            if ch == "alipay":
                self.alipay_bodies(nos, f)
                r = self.wrk(base + "/notify/alipay", conns, seconds, method="POST",
                             bodies="@" + str(f), needle="success",
                             ctype="application/x-www-form-urlencoded; charset=utf-8")
            else:
                self.wechat_bodies(nos, f)
                r = self.wrk(base + "/notify/wechat", conns, seconds, method="POST",
                             bodies="@" + str(f), needle="<![CDATA[OK]]>", ctype="text/xml")
        else:
            f = RUN / "order-paths.txt"
            r = self.wrk(base + "/orders/x", conns, seconds, path="@" + str(f), needle="PAID")
        log("  profile load: %d requests (%.1f req/s), %d errors" % (
            r["requests"], r["rps"], r["errors"]))


def main():
    if os.environ.get("BENCH_SKIP_BUILD") != "1":
        build()
    b = Bench()
    code = 0

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        RUN.mkdir(parents=True, exist_ok=True)
        b.start()
        speed = openssl_speed()
        # each baseline right before the scenarios compared with it, so that
        # a change in the machine's load hits both as little as possible
        groups = [(("floor-sign",), ["checkout-alipay-page", "checkout-wechat-native",
                                     "checkout-wechat-v3-native"]),
                  (("floor-verify",), ["notify-alipay", "notify-wechat", "notify-wechat-v3"]),
                  (("floor-hmac",), ["notify-stripe"]),
                  (("floor-es256",), ["notify-appstore"]),
                  (("hello", "floor-read"), ["order-status"])]
        for server in SERVERS:
            for conns in CONNS:
                for bases, scs in groups:
                    b.run_baselines(server, conns, bases)
                    for sc in scs:
                        if sc in SCENARIOS:
                            b.run_scenario(sc, server, conns,
                                           app="paygate-v3" if sc in V3_ROWS else "paygate")
                            if sc in METRICS_OFF_ROWS:   # the cost of the counters
                                b.run_scenario(sc, server, conns, app="paygate-nm")
                            if b.galera and sc in GALERA_ROWS:   # the certification round trip
                                b.run_galera(sc, server, conns)
        if "order-status" in SCENARIOS or not SCENARIOS:
            b.flatness()
        b.sweep()
        text = b.table(speed)
        (RUN / "results.md").write_text(text)
        print()
        print(text)
        log("table written to %s" % (RUN / "results.md"))
        want = b.missed() if PROFILE == "auto" else [s for s in PROFILE.split(",") if s in BASELINE_OF]
        if PROFILE != "none" and want:
            log("profiling: %s" % ", ".join(want))
            b.db_profile(want)
            b.profile(want)
    except BaseException as e:
        log("FAILED: %s" % e)
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        log("stopping everything")
        b.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
