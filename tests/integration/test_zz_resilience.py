"""Disruptive tests, run last (file name): the database goes away and comes
back; a paygate process gets SIGTERM in the middle of a request."""

import functools
import os
import signal
import time

import requests

import stack as S
from chaos_helpers import background, faults
from conftest import (API_KEY, CHECKOUT_SECRET, RUN, TIMEOUT, WEBHOOK_SECRET, WX_API_KEY,
                      unique_user)


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %d s: %s" % (timeout, what))


def test_database_down_notify_fails_then_sandbox_retry_records_it(harness, lighttpd_stack):
    st = lighttpd_stack
    c = harness.new_payment(st)
    harness.open_cashier(c["pay_url"])
    harness.stop_db()
    try:
        h = requests.get(st.base_url + "/healthz", timeout=TIMEOUT)
        assert h.status_code == 503, h.text

        own = harness.notification(c["payment_no"], c["amount_fen"])
        r = harness.notify(st, own)
        assert r.content == b"failure", (r.status_code, r.text)

        r = harness.sandbox_post("/_sandbox/pay", {"out_trade_no": c["payment_no"]})
        assert r.status_code == 200, r.text
        note = r.json()["notifications"][0]
        assert not note["acked"]
        assert note["attempts"] and note["attempts"][0]["body"] != "success"
    finally:
        harness.start_db()

    # the sandbox retries (1, 2, 2, 4, 8, 15, 30 s x 0.2) until `success`
    def acked():
        return harness.sandbox_trade(c["payment_no"])["notifications"][0]["acked"]
    wait_for(acked, 30, "the sandbox's retry to be acknowledged")
    assert harness.payment(c["payment_no"])["status"] == "PAID"
    assert harness.order(c["order_no"])["status"] == "PAID"
    outcomes = [n["outcome"] for n in harness.notifications_for(c["payment_no"])]
    assert outcomes.count("accepted") == 1, outcomes
    assert requests.get(st.base_url + "/healthz", timeout=TIMEOUT).status_code == 200


def test_every_stack_reconnects_after_the_database_restart(harness):
    # runs after the restart above; stacks started earlier hold dead connections
    for kind, st in list(harness.stacks.items()):
        r = requests.get(st.base_url + "/healthz", timeout=TIMEOUT)
        assert r.status_code == 200, (kind, r.status_code, r.text)
        c = harness.checkout(st)
        assert c.status_code == 201, (kind, c.status_code, c.text)


def _paygate_holds_connection(pid, port):
    """True when process PID owns an established TCP socket whose local port
    is PORT (read from /proc, no iproute2 needed)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            if local_port == port and f[3] == "01" and f[9] in inodes:
                return True
    return False


def test_sigterm_lets_the_request_in_flight_finish(harness):
    """SIGTERM while paygate waits for the provider (a QR checkout, the
    sandbox holds its precreate call 3 s): the reply still comes, the order
    is stored, then the process exits."""
    st = harness.new_stack("lighttpd", name="sigterm", fcgi_children=1)
    st.start()
    try:
        (pid,) = st.paygate_pids()
        body = {"product": "course-c", "user": unique_user("term"), "channel": "alipay",
                "method": "qr"}
        with faults(harness, server_delay_ms=3000):
            post = functools.partial(requests.post, st.base_url + "/checkout", data=body,
                                     headers={"Authorization": "Bearer " + API_KEY}, timeout=TIMEOUT)
            with background(post) as box:
                wait_for(lambda: _paygate_holds_connection(pid, st.fcgi_port), 10,
                         "paygate (pid %d) to accept the FastCGI connection" % pid)
                time.sleep(0.5)   # inside the provider call now
                os.kill(pid, signal.SIGTERM)
                time.sleep(1.0)
                assert S.alive(pid), "paygate died on SIGTERM with a request in flight"
        assert "error" not in box, box
        r = box["result"]
        assert r.status_code == 201, r.text
        reply = r.json()
        assert reply["status"] == "CREATED" and reply["order_no"] and reply["qr_code"]
        assert harness.order(reply["order_no"]) is not None
        # and then it exits
        wait_for(lambda: not S.alive(pid), 10, "paygate to exit after the request")
    finally:
        st.stop()


def test_sigterm_stops_an_idle_process_promptly(harness):
    st = harness.new_stack("lighttpd-unix", name="sigterm-idle", fcgi_children=2)
    st.start()
    try:
        pids = st.paygate_pids()
        assert len(pids) == 2
        for p in pids:
            os.kill(p, signal.SIGTERM)
        wait_for(lambda: not any(S.alive(p) for p in pids), 10,
                 "idle paygate processes to exit on SIGTERM")
    finally:
        st.stop()


def test_logs_hold_no_secrets(harness):
    """Runs last: nothing that paygate logged during the session contains
    the API key, the checkout secret, the DB password or key material."""
    logs = list((RUN / "stacks").glob("*/paygate.log")) + list(RUN.glob("paygatectl*.log"))
    logs += list((RUN / "stacks").glob("*/error.log"))  # Apache's (fcgid stderr)
    logs += list((RUN / "stacks").glob("*/lighttpd-error.log"))
    assert any(p.exists() for p in logs)
    for p in logs:
        if not p.exists():
            continue
        text = p.read_text(errors="replace")
        for secret in (API_KEY, CHECKOUT_SECRET, WX_API_KEY, WEBHOOK_SECRET, "PRIVATE KEY",
                       "password = paygate"):
            assert secret not in text, "%s logs %r" % (p, secret)
