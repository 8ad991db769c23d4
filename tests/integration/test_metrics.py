"""GET /metrics (SPEC §12.6): Prometheus text format checked by promtool,
scraped by a real Prometheus server, not public (allow list / token), and
totals that are exact across every paygate process that shares a config:
spawn-fcgi's children behind lighttpd, paygate processes started on their
own (-s) and spoken to over FastCGI directly, and a process killed with
SIGKILL and started again."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import conftest as C
import stack as S

TOKEN = "metrics-scrape-token-0123456789"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


# ------------------------------------------------------------ FastCGI client
# A minimal FastCGI responder client (one request per connection), so that a
# test decides which paygate process serves each request and which
# REMOTE_ADDR it sees.

def _record(rtype, content, request_id=1):
    return struct.pack("!BBHHBB", 1, rtype, request_id, len(content), 0, 0) + content


def _nv(name, value):
    out = b""
    for n in (len(name), len(value)):
        out += struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)
    return out + name + value


def fcgi_get(port, path, remote_addr="127.0.0.1", authorization=None, timeout=C.TIMEOUT):
    """GET C.MOUNT + path from the paygate process listening on port;
    returns (status, headers text, body bytes)."""
    params = {"REQUEST_METHOD": "GET", "REQUEST_URI": C.MOUNT + path, "QUERY_STRING": "",
              "SCRIPT_NAME": C.MOUNT, "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "0",
              "REMOTE_ADDR": remote_addr, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80"}
    if authorization is not None:
        params["HTTP_AUTHORIZATION"] = authorization
    body = b"".join(_nv(k.encode(), v.encode()) for k, v in params.items())
    msg = (_record(1, struct.pack("!HB5x", 1, 0)) + _record(4, body) + _record(4, b"")
           + _record(5, b""))
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(msg)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        while len(buf) >= 8:
            _v, rtype, _rid, clen, plen, _r = struct.unpack("!BBHHBB", buf[:8])
            content = buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
            if rtype == 6:
                out += content
            elif rtype == 3:
                break
    head, _, payload = out.partition(b"\r\n\r\n")
    m = re.search(rb"^Status: (\d+)", head, re.M)
    return int(m.group(1)) if m else 200, head.decode(), payload


class Standalone:
    """`paygate.fcgi -c CONFIG -s 127.0.0.1:PORT`, started by the test."""

    def __init__(self, harness, config, log):
        self.port = S.free_port()
        self.harness = harness
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(C.BUILD / "paygate.fcgi"), "-c", str(config), "-s", "127.0.0.1:%d" % self.port],
                env=harness.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        harness.registry.add(self.proc.pid)
        S.wait_until(lambda: S.tcp_open(self.port), 30, "paygate.fcgi on port %d" % self.port)

    def get(self, path, **kw):
        return fcgi_get(self.port, path, **kw)

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            S.stop_pids([self.proc.pid])
            self.proc.wait(timeout=10)


# ------------------------------------------------------------------ helpers

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{(name, frozenset of (label, value)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def promtool_check(text):
    assert PROMTOOL, "promtool is missing: make deps (Debian package prometheus)"
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, "promtool check metrics:\n%s" % r.stdout


def scrape(st):
    r = requests.get(st.base_url + "/metrics", headers={"Authorization": "Bearer " + TOKEN},
                     timeout=C.TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return r.text


@pytest.fixture(scope="module")
def mstack(harness):
    """lighttpd + spawn-fcgi -F 4 with [metrics] set; its counters file in
    the run folder (fresh every session), named explicitly so that the
    standalone processes of these tests share it through the same config."""
    name = "metrics-lighttpd"
    state_file = harness.run / "stacks" / name / "metrics.state"
    extra = "[metrics]\nallow = 127.0.0.1/32, ::1\ntoken = %s\nstate_file = %s\n" % (TOKEN, state_file)
    st = harness.new_stack("lighttpd", name=name, fcgi_children=4, extra_ini=extra)
    st.start()
    yield st
    st.stop()


# -------------------------------------------------------------------- tests

def test_metrics_not_public_without_configuration(harness, lighttpd_stack):
    """The session's stacks have no [metrics] section: 403 for everyone,
    the API key included."""
    r = requests.get(lighttpd_stack.base_url + "/metrics", timeout=C.TIMEOUT)
    assert r.status_code == 403, r.text
    assert C.error_code(r) == "forbidden"
    r = requests.get(lighttpd_stack.base_url + "/metrics", timeout=C.TIMEOUT,
                     headers={"Authorization": "Bearer " + C.API_KEY})
    assert r.status_code == 403


def test_metrics_access_by_cidr_and_token(harness, mstack):
    """allow = 127.0.0.1/32, ::1 and a token: each REMOTE_ADDR is set by the
    test over FastCGI."""
    p = Standalone(harness, mstack.config, mstack.dir / "standalone-access.log")
    try:
        assert p.get("/metrics", remote_addr="127.0.0.1")[0] == 200
        assert p.get("/metrics", remote_addr="::1")[0] == 200
        assert p.get("/metrics", remote_addr="::ffff:127.0.0.1")[0] == 200
        assert p.get("/metrics", remote_addr="127.0.0.2")[0] == 403
        assert p.get("/metrics", remote_addr="2001:db8::1")[0] == 403
        assert p.get("/metrics", remote_addr="10.1.2.3")[0] == 403
        assert p.get("/metrics", remote_addr="10.1.2.3", authorization="Bearer " + TOKEN)[0] == 200
        assert p.get("/metrics", remote_addr="10.1.2.3", authorization="Bearer " + TOKEN[:-1])[0] == 403
        assert p.get("/metrics", remote_addr="10.1.2.3", authorization="Bearer ")[0] == 403
        assert p.get("/metrics", remote_addr="10.1.2.3", authorization="Bearer " + C.API_KEY)[0] == 403
    finally:
        p.stop()


def test_metrics_totals_exact_across_processes_and_kill_9(harness, mstack):
    """N requests spread over spawn-fcgi's 4 children, two standalone
    processes (fixed shares), one of them killed with SIGKILL and started
    again, and a spawn-fcgi child killed with SIGKILL: /metrics reads exactly N."""
    def healthz(samples):
        return value(samples, "paygate_http_requests_total", route="/healthz", status="200")

    before = healthz(parse(scrape(mstack)))
    assert len(mstack.paygate_pids()) == 4
    done = 0

    def burst(n):
        with ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(lambda _i: requests.get(mstack.base_url + "/healthz",
                                                        timeout=C.TIMEOUT).status_code, range(n)))
        assert codes == [200] * n
        return n

    done += burst(120)
    p1 = Standalone(harness, mstack.config, mstack.dir / "standalone-1.log")
    p2 = Standalone(harness, mstack.config, mstack.dir / "standalone-2.log")
    p1b = None
    try:
        for _ in range(25):
            assert p1.get("/healthz")[0] == 200
            assert p2.get("/healthz")[0] == 200
        done += 50
        p1.kill9()
        victim = mstack.paygate_pids()[0]
        os.kill(victim, signal.SIGKILL)
        S.wait_until(lambda: not S.alive(victim), 10, "pid %d gone" % victim)
        p1b = Standalone(harness, mstack.config, mstack.dir / "standalone-1b.log")
        for _ in range(15):
            assert p1b.get("/healthz")[0] == 200
        done += 15
        done += burst(40)   # the 3 spawn-fcgi children left
        text = p2.get("/metrics")[2].decode()
    finally:
        for p in (p1, p2, p1b):
            if p:
                p.stop()
    samples = parse(text)
    assert healthz(samples) - before == done == 225
    assert value(samples, "paygate_metrics_shared") == 1
    # the histogram counts the same requests
    assert (value(samples, "paygate_http_request_duration_seconds_count", route="/healthz")
            == healthz(samples))
    promtool_check(text)


def test_metrics_business_counters_and_gauges(harness, mstack):
    """A checkout that calls the provider, an accepted notification, its
    duplicate and a forged one are counted by label; the database gauges
    are there; the whole page passes promtool."""
    s0 = parse(scrape(mstack))
    c = harness.new_payment(mstack, channel="alipay", method="qr")
    form = harness.notification(c["payment_no"], c["amount_fen"])
    assert harness.notify(mstack, form).text == "success"
    assert harness.notify(mstack, form).text == "success"
    forged = dict(form, total_amount="0.01")
    assert harness.notify(mstack, forged).text != "success"
    r = harness.checkout(mstack, channel="bitcoin", method="page")
    assert r.status_code == 400
    text = scrape(mstack)
    promtool_check(text)
    s1 = parse(text)

    def delta(name, **labels):
        return value(s1, name, **labels) - value(s0, name, **labels)

    assert delta("paygate_checkouts_total", channel="alipay", method="qr", result="created") == 1
    assert delta("paygate_checkouts_total", channel="unknown", method="page", result="invalid") == 1
    assert delta("paygate_provider_calls_total", channel="alipay", operation="create", outcome="ok") == 1
    assert delta("paygate_provider_call_duration_seconds_count", channel="alipay", operation="create") == 1
    n = dict(channel="alipay", kind="payment")
    assert delta("paygate_notifications_total", outcome="accepted", **n) == 1
    assert delta("paygate_notifications_total", outcome="duplicate", **n) == 1
    assert delta("paygate_notifications_total", outcome="bad_signature", **n) == 1
    assert delta("paygate_http_requests_total", route="/notify/alipay", status="200") == 3
    assert delta("paygate_http_requests_total", route="/checkout", status="201") == 1
    # gauges read from the database, exact at scrape time
    pending = harness.query("SELECT COUNT(*) AS n FROM webhook_events WHERE status='PENDING'")[0]["n"]
    assert value(s1, "paygate_metrics_database_up") == 1
    assert ("paygate_webhook_events", frozenset({("status", "pending")})) in s1
    assert abs(value(s1, "paygate_webhook_events", status="pending") - pending) <= 2  # delivery runs meanwhile
    for state in ("pending", "succeeded", "failed"):
        assert ("paygate_refunds", frozenset({("state", state)})) in s1
    for kind in ("lost", "lock", "duplicate", "other"):
        assert ("paygate_database_errors_total", frozenset({("kind", kind)})) in s1


def test_metrics_scraped_by_prometheus(harness, mstack, tmp_path_factory):
    """A real Prometheus server scrapes /metrics (bearer token) and answers
    a query for a paygate series."""
    assert PROMETHEUS, "prometheus is missing: make deps (Debian package prometheus)"
    for _ in range(3):
        requests.get(mstack.base_url + "/healthz", timeout=C.TIMEOUT)
    d = harness.run / "prometheus"
    d.mkdir(exist_ok=True)
    port = S.free_port()
    target = "127.0.0.1:%d" % mstack.port
    (d / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: paygate\n    metrics_path: %s/metrics\n"
        "    authorization:\n      type: Bearer\n      credentials: %s\n"
        "    static_configs:\n      - targets: ['%s']\n" % (C.MOUNT, TOKEN, target))
    with open(d / "prometheus.log", "ab") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=%s" % (d / "prometheus.yml"),
             "--storage.tsdb.path=%s" % (d / "data"), "--web.listen-address=127.0.0.1:%d" % port],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    harness.registry.add(proc.pid)
    api = "http://127.0.0.1:%d/api/v1/query" % port
    found = {}

    def scraped():
        if proc.poll() is not None:
            raise AssertionError("prometheus exited: %s" % S.tail(d / "prometheus.log"))
        try:
            up = requests.get(api, params={"query": 'up{job="paygate"}'}, timeout=5).json()
            q = requests.get(api, params={"query": 'paygate_http_requests_total{route="/healthz",status="200"}'},
                             timeout=5).json()
        except requests.RequestException:
            return False
        found["up"], found["q"] = up, q
        return (q.get("status") == "success" and q["data"]["result"]
                and up["data"]["result"] and up["data"]["result"][0]["value"][1] == "1")

    try:
        S.wait_until(scraped, 60, "prometheus to scrape paygate", interval=0.5)
    finally:
        S.stop_pids([proc.pid])
        proc.wait(timeout=20)
    assert int(found["q"]["data"]["result"][0]["value"][1]) >= 3


def test_metrics_disabled_counts_nothing_and_hides_the_page(harness, mstack):
    """[metrics] enabled = false (the bench's comparison rows): GET /metrics
    is 404 and the process adds nothing to the shared counters."""
    off = mstack.dir / "paygate-metrics-off.ini"
    off.write_text(mstack.config.read_text().replace("[metrics]\n", "[metrics]\nenabled = false\n"))
    os.chmod(off, 0o600)

    def healthz():
        return value(parse(scrape(mstack)), "paygate_http_requests_total", route="/healthz", status="200")

    before = healthz()
    p = Standalone(harness, off, mstack.dir / "standalone-off.log")
    try:
        assert p.get("/metrics")[0] == 404
        for _ in range(5):
            assert p.get("/healthz")[0] == 200
    finally:
        p.stop()
    assert healthz() == before
