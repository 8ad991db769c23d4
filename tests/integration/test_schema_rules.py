"""Schema rules a MariaDB Galera cluster needs (README "Two hosts, three
nodes"), checked on the migrated schema and in the sources:

- every table is InnoDB (Galera replicates InnoDB only: a MyISAM/Aria table's
  rows would silently stay on the node that wrote them);
- every table has a PRIMARY KEY (rows of a table without one are applied on
  the other nodes by full scans and may be applied in a different order);
- no table locks and no named locks in the code (LOCK TABLES is not
  replicated; GET_LOCK is local to one node, so two hosts would both hold
  "the" lock): mutual exclusion is a lease row (cron_leases,
  schema_migrate_lease)."""

import re

from conftest import REPO

LOCK_PATTERNS = [
    re.compile(r"\b(GET_LOCK|RELEASE_LOCK|RELEASE_ALL_LOCKS|IS_FREE_LOCK|IS_USED_LOCK)\s*\(", re.I),
    re.compile(r"\bLOCK\s+TABLES?\b", re.I),
    re.compile(r"\bUNLOCK\s+TABLES\b", re.I),
    re.compile(r"\bFLUSH\s+TABLES?\b[^;]*\bREAD\s+LOCK\b", re.I),
]


def code_files():
    for d in ("src", "include", "cli", "fcgi-app", "sql"):
        for p in sorted((REPO / d).rglob("*")):
            if p.suffix in (".c", ".h", ".sql"):
                yield p


def find_locks(text):
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if any(pat.search(line) for pat in LOCK_PATTERNS)]


def test_the_lock_patterns_find_what_they_must():
    # the check itself: the forms the code used before (migrations.c) and
    # the ones Galera does not replicate are found, lease rows are not
    assert find_locks('rc = db_query(db, &a, "SELECT GET_LOCK(\'paygate_migrate\', 60) AS got"')
    assert find_locks('(void)db_query(db, &a, "SELECT RELEASE_LOCK(\'x\')", NULL, 0, &r);')
    assert find_locks("LOCK TABLES orders WRITE;")
    assert find_locks("FLUSH TABLES WITH READ LOCK")
    assert not find_locks("UPDATE cron_leases SET expires_at = UTC_TIMESTAMP(6) WHERE name = ?")
    assert not find_locks("SELECT id FROM refunds WHERE refund_no = ? FOR UPDATE")


def test_no_table_or_named_locks_in_the_code():
    hits = []
    for p in code_files():
        for n, line in find_locks(p.read_text(errors="replace")):
            hits.append("%s:%d: %s" % (p.relative_to(REPO), n, line))
    assert not hits, "table/named locks (not cluster-wide on Galera):\n" + "\n".join(hits)


def test_every_migrated_table_is_innodb_with_a_primary_key(harness):
    tables = harness.query(
        "SELECT TABLE_NAME AS t, ENGINE AS e, TABLE_TYPE AS ty FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME")
    assert tables, "no tables: was the schema migrated?"
    names = {r["t"] for r in tables}
    # the tables paygate relies on are there (the check ran on the real schema)
    for must in ("orders", "payments", "schema_migrations", "cron_leases"):
        assert must in names, (must, sorted(names))
    not_innodb = ["%s (%s)" % (r["t"], r["e"]) for r in tables
                  if r["ty"] == "BASE TABLE" and (r["e"] or "").lower() != "innodb"]
    assert not not_innodb, "tables not InnoDB: %s" % not_innodb
    with_pk = {r["t"] for r in harness.query(
        "SELECT TABLE_NAME AS t FROM information_schema.TABLE_CONSTRAINTS "
        "WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_TYPE = 'PRIMARY KEY'")}
    no_pk = sorted(r["t"] for r in tables if r["ty"] == "BASE TABLE" and r["t"] not in with_pk)
    assert not no_pk, "tables without a PRIMARY KEY: %s" % no_pk


def test_migrate_takes_a_lease_row_not_a_named_lock(harness):
    # migrate ran at set-up (twice is fine: nothing new, the lease given back)
    harness.ctl("migrate")
    rows = harness.query("SELECT holder, expires_at <= UTC_TIMESTAMP() AS free "
                         "FROM schema_migrate_lease WHERE name = 'migrate'")
    assert rows and rows[0]["holder"] == "" and rows[0]["free"] == 1, rows


def test_migrate_takes_over_an_expired_lease(harness):
    # a migrate that crashed holding the lease: once expired, the next one runs
    harness.query("UPDATE schema_migrate_lease SET holder = 'crashed-host', "
                  "expires_at = UTC_TIMESTAMP() - INTERVAL 1 SECOND WHERE name = 'migrate'")
    harness.ctl("migrate")
    rows = harness.query("SELECT holder FROM schema_migrate_lease WHERE name = 'migrate'")
    assert rows == [{"holder": ""}], rows
