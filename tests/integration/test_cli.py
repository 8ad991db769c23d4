"""paygatectl against the session's database."""

import json

import pytest

from conftest import RUN, PRODUCTS


def test_migrate_twice_is_harmless(harness):
    harness.ctl("migrate")
    harness.ctl("migrate")
    tables = {list(r.values())[0] for r in harness.query("SHOW TABLES")}
    assert {"products", "creators", "orders", "payments", "notifications"} <= tables


def test_check_config_accepts_the_test_config(harness):
    r = harness.ctl("check-config")
    assert r.returncode == 0


def _broken(harness, name, edit):
    text = harness.cli_config.read_text()
    path = RUN / ("broken-%s.ini" % name)
    path.write_text(edit(text))
    return path


@pytest.mark.parametrize("name,edit,must_name", [
    ("missing-api-key",
     lambda t: "\n".join(l for l in t.splitlines() if not l.startswith("api_key")),
     ["server", "api_key"]),
    ("unknown-key", lambda t: t.replace("[database]\n", "[database]\ncolour = blue\n"),
     ["database", "colour"]),
    ("missing-key-file",
     lambda t: "\n".join("app_private_key = /nonexistent/key.pem"
                         if l.startswith("app_private_key") else l for l in t.splitlines()),
     ["alipay", "app_private_key"]),
])
def test_check_config_names_section_and_key_of_errors(harness, name, edit, must_name):
    path = _broken(harness, name, edit)
    r = harness.ctl("check-config", config=path, check=False)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    for word in must_name + [str(path)]:
        assert word in out, (word, out)
    assert "test-api-key" not in out and "test-checkout-secret" not in out, out


def test_product_list_shows_the_catalogue(harness):
    out = harness.ctl("product", "list").stdout
    for sku, title, _fen, _creator in PRODUCTS:
        assert sku in out and title in out, out


def test_order_list_and_show_json(harness, lighttpd_stack):
    c = harness.new_payment(lighttpd_stack, product="ebook-sql")
    r = harness.ctl("order", "show", c["order_no"], "--json")
    shown = json.loads(r.stdout)
    assert shown["order_no"] == c["order_no"]
    assert shown["status"] == "CREATED"
    assert shown["amount_fen"] == 1990
    r = harness.ctl("order", "list", "--status", "CREATED", "--json")
    listed = json.loads(r.stdout)
    if isinstance(listed, dict):
        listed = listed.get("orders", [])
    assert c["order_no"] in [o["order_no"] for o in listed]
    assert all(o["status"] == "CREATED" for o in listed)
    r = harness.ctl("order", "show", "NOSUCHORDER00000000000000", check=False)
    assert r.returncode != 0
