"""Two web hosts on a three-node MariaDB Galera cluster (README "Two hosts,
three nodes"): losing a node or a host loses nothing and doubles nothing.

The set-up, all on loopback under <run folder>-galera (its own Harness: its
own sandbox, webhook receiver and paygatectl configs):
  - three mariadbd nodes forming a Galera cluster (galera_cluster.py: node 1
    bootstraps, nodes 2 and 3 join by SST, a killed node rejoins by IST);
  - two "web hosts" A and B, each lighttpd + spawn-fcgi -F 2, whose configs
    name the three nodes in different orders ([database] host =
    n1,n2,n3 on A, n3,n2,n1 on B): A works on node 1, B on node 3;
  - HAProxy in front of both hosts (round robin, health check on /healthz);
    every config's base_url is HAProxy's, so provider notifications and
    buyers arrive through it on either host.

Skipped, with the reason, only when galera-4 / rsync / haproxy are not
installed; a cluster that fails to start fails the module.
"""

import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import pymysql
import pytest
import requests

import stack as S
from commit_proxy import CommitProxy
from conftest import API_KEY, BUILD, MOUNT, RUN, TIMEOUT, Harness, unique_user
from galera_cluster import GaleraCluster, unavailable_reason


def _reason():
    r = unavailable_reason()
    if r:
        return r
    if not shutil.which("haproxy") and not os.path.exists("/usr/sbin/haproxy"):
        return "haproxy is not installed (scripts/deps.sh installs it)"
    return None


REASON = _reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason="Galera set-up unavailable: %s" % REASON)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
ORDER = {"A": [0, 1, 2], "B": [2, 1, 0]}
MONEY_TABLES = ("orders", "payments", "refunds", "ledger_entries", "notifications", "webhook_events")


class GaleraHarness(Harness):
    """The Harness of conftest.py on a Galera cluster, two web hosts and
    HAProxy."""

    def __init__(self):
        super().__init__(run_dir=RUN.parent / (RUN.name + "-galera"))
        self.cluster = None
        self.lb_port = S.free_port()
        self.lb_stats_port = S.free_port()
        self.lb_base = "http://127.0.0.1:%d%s" % (self.lb_port, MOUNT)
        self.haproxy = None
        self.hosts = {}
        self.proxy = None

    # -- the cluster in place of the single MariaDB --------------------------
    def start_db(self):
        self.cluster = GaleraCluster(self.run / "galera", registry=self.registry)
        self.cluster.start()
        self.db_port = self.cluster.nodes[0].port

    def stop_db(self):
        if self.cluster is not None:
            self.cluster.stop()

    def node_db(self, i):
        return pymysql.connect(host="127.0.0.1", port=self.cluster.nodes[i].port, user="paygate",
                               password="paygate", database="paygate", autocommit=True,
                               cursorclass=pymysql.cursors.DictCursor, connect_timeout=10)

    def node_query(self, i, sql, *args):
        conn = self.node_db(i)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = 1")
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def db(self):
        """Any live node (causal reads: what the cluster committed)."""
        last = None
        for n in self.cluster.nodes:
            if not n.alive():
                continue
            try:
                conn = pymysql.connect(host="127.0.0.1", port=n.port, user="paygate",
                                       password="paygate", database="paygate", autocommit=True,
                                       cursorclass=pymysql.cursors.DictCursor, connect_timeout=5)
                with conn.cursor() as cur:
                    cur.execute("SHOW STATUS LIKE 'wsrep_ready'")
                    if cur.fetchone()["Value"] != "ON":
                        conn.close()
                        continue
                    cur.execute("SET SESSION wsrep_sync_wait = 1")
                return conn
            except pymysql.err.MySQLError as e:
                last = e
        raise last or AssertionError("no live node")

    # -- configs: the host list in the host's order, base_url = HAProxy ------
    def write_config(self, path, base_url, log_file, key_file, **kw):
        which = "B" if ("hostB" in str(path) or "cli-B" in str(path)) else "A"
        self.db_host = self.cluster.host_list(ORDER[which])
        if "hostP" in str(path):   # node 1 through a proxy that can hold a COMMIT, then nodes 2, 3
            self.db_host = "127.0.0.1:%d,%s" % (self.proxy.port, self.cluster.host_list([1, 2]))
        return super().write_config(path, self.lb_base, log_file, key_file, **kw)

    def cli(self, which):
        return self.run / ("cli-%s.ini" % which)

    def start_web(self):
        for which in ("A", "B"):
            self.cli_variant(which)
            st = self.new_stack("lighttpd", name="host" + which)
            st.start()
            self.stacks["host" + which] = st
            self.hosts[which] = st
        self.start_haproxy()

    def start_haproxy(self):
        cfg = self.run / "haproxy.cfg"
        cfg.write_text("""# two paygate web hosts behind one address (the test's load balancer)
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend paygate
    bind 127.0.0.1:{lb}
    default_backend hosts
backend hosts
    balance roundrobin
    option httpchk GET {mount}/healthz
    server hostA 127.0.0.1:{a} check inter 500ms fall 2 rise 2
    server hostB 127.0.0.1:{b} check inter 500ms fall 2 rise 2
listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
""".format(lb=self.lb_port, mount=MOUNT, a=self.hosts["A"].port, b=self.hosts["B"].port,
           stats=self.lb_stats_port))
        log = open(self.run / "haproxy.log", "ab")
        self.haproxy = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.registry.add(self.haproxy.pid)
        S.wait_until(lambda: S.http_status(self.lb_base + "/healthz") == 200, 30,
                     "HAProxy on port %d" % self.lb_port, interval=0.2)
        S.wait_until(lambda: self.lb_servers_up() == {"hostA", "hostB"}, 30,
                     "both hosts up behind HAProxy", interval=0.2)

    def lb_stats(self):
        r = requests.get("http://127.0.0.1:%d/stats;csv" % self.lb_stats_port, timeout=5)
        lines = r.text.lstrip("# ").splitlines()
        head = lines[0].split(",")
        rows = [dict(zip(head, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row for row in rows if row["pxname"] == "hosts"}

    def lb_servers_up(self):
        return {k for k, v in self.lb_stats().items() if k.startswith("host") and v["status"] == "UP"}

    def stop(self):
        if self.haproxy is not None:
            S.stop_pids([self.haproxy.pid])
            self.haproxy = None
        return super().stop()


@pytest.fixture(scope="module")
def gh():
    h = GaleraHarness()
    try:
        h.start()
        h.start_web()
    except BaseException:
        h.stop()
        raise
    yield h
    errors = h.stop()
    reports = h.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports), pytrace=False)
    if errors:
        pytest.fail("tear-down: " + "; ".join(errors), pytrace=False)


# ------------------------------------------------------------------ helpers

def wait_for(pred, timeout, what, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
        except (requests.RequestException, pymysql.err.MySQLError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %d s: %s (last: %r)" % (timeout, what, last))


class Lb:
    """HAProxy as a stack-like object for the conftest helpers."""

    def __init__(self, base_url):
        self.base_url = base_url


def checkout_retrying(h, st, channel, method, product, request_id, user, timeout=60):
    """POST /checkout, again with the same request_id while the answer is a
    failure (a node or a host going away): never two orders."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            r = h.checkout(st, product=product, user=user, channel=channel, method=method,
                           request_id=request_id)
            if r.status_code in (200, 201):
                return r.json()
            last = "%s %s" % (r.status_code, r.text[:200])
        except requests.RequestException as e:
            last = str(e)
        time.sleep(0.3)
    raise AssertionError("checkout %s never succeeded: %s" % (request_id, last))


def pay(h, c, channel):
    """The buyer pays at the sandbox; it notifies (through HAProxy) and
    retries until acknowledged."""
    if channel == "alipay":
        h.open_cashier(c["pay_url"])
        r = h.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
    else:
        r = h.sandbox_post("/_sandbox/wechat/pay", {"out_trade_no": c["payment_no"]})
    assert r.status_code == 200, r.text


def sandbox_acked(h, payment_no, channel):
    t = h.sandbox_trade(payment_no) if channel == "alipay" else h.wx_trade(payment_no)
    notes = t.get("notifications") or []
    return bool(notes) and all(n.get("acked") for n in notes)


def order_via(st, order_no):
    r = requests.get("%s/orders/%s" % (st.base_url, order_no), timeout=TIMEOUT)
    return r.json() if r.status_code == 200 else None


def wait_paid(h, order_no, timeout=60):
    return wait_for(lambda: (order_via(Lb(h.lb_base), order_no) or {}).get("status") == "PAID",
                    timeout, "order %s PAID" % order_no)


def assert_cluster_agrees(h, expect_nodes=3):
    """Every live node Synced, at the same committed position, with the same
    row counts and checksums of the money tables."""
    nodes = [n for n in h.cluster.nodes if n.alive()]
    assert len(nodes) == expect_nodes, [n.name for n in nodes]
    for n in nodes:
        n.wait_synced(timeout=60)

    def same_position():
        pos = {n.status().get("wsrep_last_committed") for n in nodes}
        return len(pos) == 1
    wait_for(same_position, 30, "every node at the same committed seqno")
    seen = {}
    for n in nodes:
        conn = pymysql.connect(unix_socket=str(n.sock), user="root", password="", database="paygate",
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("CHECKSUM TABLE " + ", ".join(MONEY_TABLES))
                sums = {t.split(".")[-1]: c for t, c in cur.fetchall()}
                for t in MONEY_TABLES:
                    cur.execute("SELECT COUNT(*) FROM " + t)
                    sums[t + ".rows"] = cur.fetchone()[0]
                cur.execute("SELECT txn_id, SUM(amount_fen) FROM ledger_entries GROUP BY txn_id "
                            "HAVING SUM(amount_fen) <> 0")
                unbalanced = cur.fetchall()
                assert not unbalanced, (n.name, unbalanced)
        finally:
            conn.close()
        seen[n.name] = sums
    first = next(iter(seen.values()))
    for name, sums in seen.items():
        assert sums == first, "node %s differs: %s vs %s" % (name, sums, first)
    return first


def assert_exactly_once(h, orders):
    """orders: {order_no: payment_no}. Each order PAID with one PAID payment,
    one accepted notification, one payment posting in the ledger and one
    order.paid event."""
    for order_no, payment_no in orders.items():
        o = h.order(order_no)
        assert o and o["status"] in ("PAID", "REFUNDED"), (order_no, o and o["status"])
        pays = h.query("SELECT status FROM payments WHERE order_id=%s", o["id"])
        assert [p["status"] for p in pays].count("PAID") == 1, (order_no, pays)
        acc = h.query("SELECT COUNT(*) AS n FROM notifications WHERE payment_no=%s "
                      "AND outcome='accepted' AND kind <> 'refund'", payment_no)[0]["n"]
        assert acc == 1, (payment_no, acc)
        post = h.query("SELECT COUNT(DISTINCT txn_id) AS n FROM ledger_entries WHERE txn_id=%s",
                       "pay:" + payment_no)[0]["n"]
        assert post == 1, (payment_no, post)
        ev = h.query("SELECT COUNT(*) AS n FROM webhook_events WHERE order_no=%s AND type='order.paid'",
                     order_no)[0]["n"]
        assert ev == 1, (order_no, ev)


def paygate_connections(h, i):
    rows = h.node_query(i, "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER='paygate' "
                           "AND ID <> CONNECTION_ID()")
    return rows[0]["n"]


# -------------------------------------------------------------------- tests

def test_each_host_works_on_the_first_node_of_its_list(gh):
    for which in ("A", "B"):
        st = gh.hosts[which]
        for _ in range(4):   # every process of the pool has served a request
            assert requests.get(st.base_url + "/healthz", timeout=TIMEOUT).status_code == 200
        assert "host = %s" % gh.cluster.host_list(ORDER[which]) in st.config.read_text()
    # A's processes hold connections to node 1, B's to node 3, none to node 2
    assert paygate_connections(gh, 0) >= 2
    assert paygate_connections(gh, 2) >= 2
    assert paygate_connections(gh, 1) == 0


def test_purchases_and_refunds_spread_over_both_hosts(gh):
    h = gh
    before = h.lb_stats()
    orders = {}
    for i in range(6):
        st = h.hosts["AB"[i % 2]]
        channel, method = ("alipay", "page") if i % 3 else ("wechat", "native")
        c = h.new_payment(st, product="ebook-sql", channel=channel, method=method,
                          user=unique_user("ga"))
        pay(h, c, channel)
        orders[c["order_no"]] = (c["payment_no"], channel)
    for order_no, (payment_no, channel) in orders.items():
        wait_paid(h, order_no)
        wait_for(lambda: sandbox_acked(h, payment_no, channel), 30, "notification acked")
    assert_exactly_once(h, {o: p for o, (p, _c) in orders.items()})
    # refunds through HAProxy: spread over both hosts too
    for n, order_no in enumerate(orders):
        r = requests.post("%s/orders/%s/refund" % (h.lb_base, order_no), data={"request_id": "gr-%d-%s" % (n, order_no)},
                          headers={"Authorization": "Bearer " + API_KEY}, timeout=TIMEOUT)
        assert r.status_code in (200, 201, 202), r.text
    for order_no in orders:
        wait_for(lambda: (order_via(Lb(h.lb_base), order_no) or {}).get("status") == "REFUNDED", 60,
                 "order %s REFUNDED" % order_no)
    after = h.lb_stats()
    for host in ("hostA", "hostB"):   # both hosts served notifications and refunds
        assert int(after[host]["stot"]) - int(before[host]["stot"]) >= 6, (host, after[host]["stot"])
    for order_no, (payment_no, channel) in orders.items():
        refunds = h.query("SELECT r.status, r.refund_no FROM refunds r JOIN orders o ON o.id = r.order_id "
                          "WHERE o.order_no=%s", order_no)
        assert len(refunds) == 1 and refunds[0]["status"] == "SUCCEEDED", (order_no, refunds)
        if channel == "alipay":
            t = h.sandbox_trade(payment_no)
            assert len(t.get("refunds") or []) == 1, t
    assert_cluster_agrees(h)


def _both_at_once(fns):
    barrier = threading.Barrier(len(fns))
    out = [None] * len(fns)

    def run(i):
        barrier.wait()
        try:
            out[i] = fns[i]()
        except Exception as e:  # reported below
            out[i] = e
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def test_the_same_notification_on_both_hosts_at_once_gives_one_paid(gh):
    h = gh
    a, b = h.hosts["A"], h.hosts["B"]
    orders = {}
    for i in range(4):
        c = h.new_payment(a if i % 2 else b, product="ebook-sql", channel="alipay", method="page",
                          user=unique_user("gd"))
        h.open_cashier(c["pay_url"])
        form = h.notification(c["payment_no"], c["amount_fen"])
        got = _both_at_once([lambda: h.notify(a, form), lambda: h.notify(b, form)])
        assert all(isinstance(r, requests.Response) for r in got), got
        # each host answers success only after the commit (its own or the other's)
        assert [r.content for r in got] == [b"success", b"success"], [(r.status_code, r.text) for r in got]
        orders[c["order_no"]] = c["payment_no"]
    for i in range(4):
        c = h.new_payment(a if i % 2 else b, product="ebook-sql", channel="wechat", method="native",
                          user=unique_user("gw"))
        body = h.wx_notification(c["payment_no"], c["amount_fen"], sign_type="HMAC-SHA256")
        got = _both_at_once([lambda: h.notify_wechat(a, body), lambda: h.notify_wechat(b, body)])
        assert all(isinstance(r, requests.Response) for r in got), got
        for r in got:
            assert r.status_code == 200 and "<return_code><![CDATA[SUCCESS]]>" in r.text, r.text
        orders[c["order_no"]] = c["payment_no"]
    assert_exactly_once(h, orders)


def test_read_your_writes_after_a_notification_committed_on_another_node(gh):
    """Node 1 (host A's) is paused in applying (FLUSH TABLES WITH READ LOCK
    desyncs and pauses a Galera node) while host B commits a payment through
    node 3. Host A's GET /orders/{no} must not answer from node 1's stale
    copy: it waits (wsrep_sync_wait) and answers PAID once node 1 has
    applied the commit. Without causal reads it answers CREATED at once."""
    h = gh
    a, b = h.hosts["A"], h.hosts["B"]
    c = h.new_payment(a, product="ebook-sql", channel="alipay", method="page", user=unique_user("gr"))
    assert order_via(a, c["order_no"])["status"] == "CREATED"
    n1 = h.cluster.nodes[0]
    lock = n1.root()
    result = {}
    try:
        with lock.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
        r = h.notify(b, h.notification(c["payment_no"], c["amount_fen"]))
        assert r.content == b"success", r.text
        # node 1 has not applied it: its own copy still says CREATED
        direct = pymysql.connect(unix_socket=str(n1.sock), user="root", password="", database="paygate")
        try:
            with direct.cursor() as cur:
                cur.execute("SELECT status FROM orders WHERE order_no=%s", (c["order_no"],))
                assert cur.fetchone()[0] == "CREATED"
        finally:
            direct.close()
        t = threading.Thread(target=lambda: result.update(o=order_via(a, c["order_no"]),
                                                          at=time.time()))
        t.start()
        time.sleep(1.5)
        released = time.time()
    finally:
        with lock.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        lock.close()
    t.join(40)
    assert result.get("o") is not None, result
    assert result["o"]["status"] == "PAID", result["o"]
    assert result["at"] >= released, "answered before node 1 had applied the commit"
    # the demo shop's return page (return_url?order_no=) reads the same way
    r = requests.get("%s/shop?order_no=%s" % (a.base_url, c["order_no"]), timeout=TIMEOUT)
    assert 'id="purchase-confirmed"' in r.text, r.text[:500]


@pytest.fixture
def proxied_host(gh):
    """Host P: one paygate process whose first node is node 1 reached through
    a CommitProxy (it can hold a COMMIT), then nodes 2 and 3."""
    gh.proxy = CommitProxy(gh.cluster.nodes[0].port)
    st = gh.new_stack("lighttpd", name="hostP", fcgi_children=1)
    try:
        st.start()
        yield st, gh.proxy
    finally:
        gh.proxy.release()
        st.stop()
        gh.proxy.stop()


def _payment_status_on(node, payment_no):
    conn = pymysql.connect(unix_socket=str(node.sock), user="root", password="", database="paygate")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM payments WHERE payment_no=%s", (payment_no,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_a_certification_failure_at_commit_runs_the_whole_transaction_again(gh, proxied_host):
    """Host P's notification transaction (node 1) is held at COMMIT while
    host B commits the same payment through node 3; node 1 applies B's write
    set, which aborts P's transaction: P's COMMIT is answered 1213. That
    means "not committed anywhere": P runs the transaction again, finds the
    payment PAID and records a duplicate; one PAID, one posting."""
    h = gh
    st, proxy = proxied_host
    c = h.new_payment(h.hosts["A"], product="ebook-sql", channel="alipay", method="page",
                      user=unique_user("gx"))
    form = h.notification(c["payment_no"], c["amount_fen"])
    proxy.hold_commit("SET p.status = 'PAID'")
    out = {}
    t = threading.Thread(target=lambda: out.update(r=h.notify(st, form)))
    t.start()
    assert proxy.held.wait(30), "P's COMMIT never came"
    r = h.notify(h.hosts["B"], form)
    assert r.content == b"success", r.text
    wait_for(lambda: _payment_status_on(h.cluster.nodes[0], c["payment_no"]) == "PAID", 30,
             "node 1 to apply B's commit")
    proxy.release()
    t.join(60)
    assert out["r"].content == b"success", (out["r"].status_code, out["r"].text)
    notes = h.query("SELECT outcome FROM notifications WHERE payment_no=%s AND kind <> 'refund' ORDER BY id",
                    c["payment_no"])
    assert [n["outcome"] for n in notes] == ["accepted", "duplicate"], notes
    assert_exactly_once(h, {c["order_no"]: c["payment_no"]})


def test_a_node_leaving_the_cluster_at_commit_is_looked_up_on_the_next(gh, proxied_host):
    """Host P's notification transaction is held at COMMIT while node 1 is
    cut off from the cluster (gmcast.isolate: non-primary, wsrep_ready OFF).
    Its COMMIT is answered 1047 (WSREP not ready), which may hide a commit:
    not a certification failure, so never re-run blindly: the notification
    is answered failure (the provider redelivers) and the process fails over
    to node 2, where the redelivery is recorded; one PAID."""
    h = gh
    st, proxy = proxied_host
    n1 = h.cluster.nodes[0]
    c = h.new_payment(h.hosts["B"], product="ebook-sql", channel="alipay", method="page",
                      user=unique_user("gi"))
    form = h.notification(c["payment_no"], c["amount_fen"])
    proxy.hold_commit("SET p.status = 'PAID'")
    out = {}
    t = threading.Thread(target=lambda: out.update(r=h.notify(st, form)))
    t.start()
    assert proxy.held.wait(30), "P's COMMIT never came"
    root = n1.root()
    try:
        with root.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'")

        def off():
            st_ = n1.status() or {}
            return st_.get("wsrep_ready") == "OFF" or st_.get("wsrep_cluster_status") != "Primary"
        wait_for(off, 30, "node 1 out of the primary component")
        proxy.release()
        t.join(60)
        assert out["r"].content == b"failure", (out["r"].status_code, out["r"].text)
        assert h.payment(c["payment_no"])["status"] == "CREATED"   # asked through node 2: not committed
        r = h.notify(st, form)   # the provider's redelivery, while node 1 is still out
        assert r.content == b"success", r.text
    finally:
        with root.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'")
        root.close()
    wait_for(n1.synced, 60, "node 1 back in the cluster")
    h.cluster.wait_size(3)
    assert_exactly_once(h, {c["order_no"]: c["payment_no"]})
    log = st.paygate_log.read_text(errors="replace")
    assert "not available (1047: WSREP has not yet prepared node" in log, log[-2000:]
    assert "commit not confirmed, answered failure" in log, log[-2000:]


def _cron(h, which, out):
    r = subprocess.run([str(BUILD / "paygatectl"), "-c", str(h.cli(which)), "--json", "cron"], env=h.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    out[which] = r


def test_cron_on_both_hosts_does_each_duty_once(gh):
    h = gh
    # a live lease taken through node 1 keeps host B's cron (node 3) out
    h.node_query(0, "INSERT INTO cron_leases (name, holder, expires_at) VALUES ('cron', 'hostA:1:x', "
                    "UTC_TIMESTAMP(6) + INTERVAL 600 SECOND) ON DUPLICATE KEY UPDATE holder = VALUES(holder), "
                    "expires_at = VALUES(expires_at)")
    out = {}
    _cron(h, "B", out)
    assert json.loads(out["B"].stdout)["skipped"] is True, out["B"].stdout
    h.node_query(0, "UPDATE cron_leases SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE name='cron'")

    # due webhook deliveries: the receiver refuses the first attempts
    orders = []
    h.webhooks.fail_next(6, "order.paid")
    for i in range(3):
        c = h.new_payment(h.hosts["AB"[i % 2]], product="ebook-sql", channel="alipay", method="page",
                          user=unique_user("gc"))
        h.open_cashier(c["pay_url"])
        assert h.notify(h.hosts["A"], h.notification(c["payment_no"], c["amount_fen"])).content == b"success"
        orders.append(c["order_no"])
    h.webhooks.clear_failures()
    marks = ",".join(["%s"] * len(orders))
    h.query("UPDATE webhook_events SET next_attempt_at = UTC_TIMESTAMP() - INTERVAL 1 SECOND "
            "WHERE status='PENDING' AND order_no IN (%s)" % marks, *orders)
    pending = h.query("SELECT event_id FROM webhook_events WHERE status='PENDING' AND order_no IN (%s)" % marks,
                      *orders)
    assert len(pending) == 3, pending
    out = {}
    ts = [threading.Thread(target=_cron, args=(h, w, out)) for w in ("A", "B")]
    for t in ts:
        t.start()
    for t in ts:
        t.join(130)
    docs = {}
    for w in ("A", "B"):
        assert out[w].returncode == 0, (w, out[w].stdout, out[w].stderr)
        docs[w] = json.loads(out[w].stdout)
    # the daily duty (settle + reconcile yesterday) ran in exactly one pass
    assert [d["daily_done"] for d in docs.values()].count(True) == 1, docs
    for ev in pending:
        ok = [c for c in h.webhooks.calls if ev["event_id"].encode() in c["body"] and c["status"] == 200]
        assert len(ok) == 1, (ev, len(ok), docs)
    assert h.query("SELECT COUNT(*) AS n FROM webhook_events WHERE status='DELIVERED' AND order_no IN (%s)"
                   % marks, *orders)[0]["n"] == 3


def _stream(h, n, tag, results, errors):
    """n purchases through HAProxy, alternating channels; request_ids fixed
    first, every failure retried with the same one."""
    lb = Lb(h.lb_base)
    for i in range(n):
        channel, method = ("alipay", "page") if i % 2 else ("wechat", "native")
        rid = "%s-%d-%s" % (tag, i, uuid.uuid4().hex[:8])
        try:
            c = checkout_retrying(h, lb, channel, method, "ebook-sql", rid, "buyer-" + rid)
            results[c["order_no"]] = (c["payment_no"], channel, rid)
            for attempt in range(20):
                try:
                    pay(h, c, channel)
                    break
                except (AssertionError, requests.RequestException):
                    time.sleep(0.3)
        except Exception as e:  # reported by the test
            errors.append("%s: %s" % (rid, e))
        time.sleep(0.1)


def _kill_pool(st):
    for p in st.paygate_pids():
        try:
            os.kill(p, 9)
        except ProcessLookupError:
            pass


def test_losing_a_node_or_a_host_under_load_loses_nothing_and_doubles_nothing(gh):
    h = gh
    results, errors = {}, []
    n1, n3 = h.cluster.nodes[0], h.cluster.nodes[2]

    # 1. node 1 (host A's first) is killed in the middle of a stream
    t = threading.Thread(target=_stream, args=(h, 10, "k", results, errors))
    t.start()
    wait_for(lambda: len(results) >= 3, 60, "3 purchases before the kill")
    n1.kill9()
    t.join(180)
    assert not errors, errors
    h.cluster.wait_size(2)
    # both hosts still answer (A failed over to node 2)
    for which in ("A", "B"):
        assert requests.get(h.hosts[which].base_url + "/healthz", timeout=TIMEOUT).status_code == 200
    assert paygate_connections(h, 1) >= 1
    n1.start(recover=True)   # rejoins by IST
    h.cluster.wait_size(3)

    # 2. node 3 (host B's first) is stopped in the middle of a stream
    t = threading.Thread(target=_stream, args=(h, 8, "s", results, errors))
    t.start()
    wait_for(lambda: len(results) >= 13, 60, "purchases before node 3 stops")
    n3.stop()
    t.join(180)
    assert not errors, errors

    # 3. a whole host (A's pool) is killed in the middle of a stream
    t = threading.Thread(target=_stream, args=(h, 8, "p", results, errors))
    t.start()
    wait_for(lambda: len(results) >= 20, 60, "purchases before host A's pool dies")
    _kill_pool(h.hosts["A"])
    t.join(180)
    assert not errors, errors
    assert len(results) == 26, len(results)

    # afterwards: the sandbox's retries and `sync` settle what is left
    n3.start()
    h.cluster.wait_size(3)
    h.ctl("sync", config=h.cli("B"), check=False)
    for order_no, (payment_no, channel, _rid) in results.items():
        wait_for(lambda: sandbox_acked(h, payment_no, channel), 60, "notification of %s acked" % payment_no)
    assert_exactly_once(h, {o: p for o, (p, _c, _r) in results.items()})
    # no checkout half-created: every order has its payment, one per request_id
    for order_no, (payment_no, _c, rid) in results.items():
        o = h.order(order_no)
        assert h.payment(payment_no)["order_id"] == o["id"]
        assert h.query("SELECT COUNT(*) AS n FROM orders WHERE request_id=%s", rid)[0]["n"] == 1, rid
    orphans = h.query("SELECT COUNT(*) AS n FROM orders o LEFT JOIN payments p ON p.order_id = o.id "
                      "WHERE p.id IS NULL")[0]["n"]
    assert orphans == 0
    sums = assert_cluster_agrees(h)
    assert sums["orders.rows"] >= len(results)
