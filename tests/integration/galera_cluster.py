"""A three-node MariaDB Galera cluster on loopback, for tests/integration/test_galera.py.

Each node is a private `mariadbd` (no defaults files read) with its own
datadir, socket, pid file and error log under DIR/nodeN, its SQL port, its
group-communication port (gmcast), its IST port and its SST port, all on
127.0.0.1. Node 1 is initialised with mariadb-install-db and bootstraps the
cluster (--wsrep-new-cluster); nodes 2 and 3 start with an empty datadir and
join by SST (rsync); a node that was killed and started again rejoins by IST
or SST. Works as root (--user=root) and as a normal user.

Processes are stopped by PID (recorded in the harness's PidRegistry).
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pymysql

import stack as S

PROVIDER = "/usr/lib/galera/libgalera_smm.so"


class GaleraError(RuntimeError):
    pass


def _server_user():
    import pwd
    for name in ("mysql", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


# As root the nodes run as the mysql account (as in production), their
# folders owned by it: the SST/IST helper (wsrep_sst_rsync) starts an rsync
# daemon, and an rsync daemon started by root drops to uid nobody, which then
# cannot write a root-owned datadir ("mkstemp .rsync_sst_complete ...:
# Permission denied"), so even IST fails. Run as a normal user, everything
# stays that user's.
SERVER_USER = _server_user() if os.geteuid() == 0 else None


def chown_tree(path):
    if SERVER_USER is None:
        return
    import pwd
    pw = pwd.getpwnam(SERVER_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            try:
                os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)
            except FileNotFoundError:
                pass


def unavailable_reason():
    """None when a cluster can be tried here, else why not."""
    if not os.path.exists(PROVIDER):
        return "galera-4 is not installed (%s missing): scripts/deps.sh installs it" % PROVIDER
    for exe in ("mariadbd", "mariadb-install-db", "rsync"):
        if not shutil.which(exe) and not os.path.exists("/usr/sbin/" + exe):
            return "%s is not installed" % exe
    if not shutil.which("wsrep_sst_rsync"):
        return "wsrep_sst_rsync (mariadb-server) is missing"
    return None


class Node:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.name = "node%d" % (index + 1)
        self.dir = cluster.dir / self.name
        self.data = self.dir / "data"
        # a tmpdir of its own: a mariadbd starting with tmpdir=/tmp removes
        # the '#sql*' files there, also another server's or install-db's
        self.tmp = self.dir / "tmp"
        self.sock = self.dir / "mysqld.sock"
        self.pidf = self.dir / "mysqld.pid"
        self.errlog = self.dir / "error.log"
        self.port = S.free_port()
        self.gcomm_port = S.free_port()
        self.ist_port = S.free_port()
        self.sst_port = S.free_port()
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def command(self, bootstrap, extra=()):
        c = self.cluster
        opts = ";".join([
            "gmcast.listen_addr=tcp://127.0.0.1:%d" % self.gcomm_port,
            "ist.recv_addr=127.0.0.1:%d" % self.ist_port,
            "gcache.size=64M",
            # notice a killed node within seconds (defaults: 5 s / 15 s)
            "evs.suspect_timeout=PT3S", "evs.inactive_timeout=PT6S",
            "evs.inactive_check_period=PT1S", "evs.keepalive_period=PT1S",
            "pc.wait_prim_timeout=PT30S",
        ])
        cmd = ["mariadbd", "--no-defaults", "--datadir=%s" % self.data, "--tmpdir=%s" % self.tmp,
               "--socket=%s" % self.sock,
               "--port=%d" % self.port, "--bind-address=127.0.0.1", "--pid-file=%s" % self.pidf,
               "--log-error=%s" % self.errlog, "--skip-name-resolve",
               "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
               "--max-connections=200",
               "--binlog-format=ROW", "--default-storage-engine=InnoDB",
               "--innodb-autoinc-lock-mode=2", "--innodb-flush-log-at-trx-commit=2",
               "--wsrep-on=ON", "--wsrep-provider=%s" % PROVIDER,
               "--wsrep-cluster-name=paygate-test",
               "--wsrep-cluster-address=gcomm://%s" % ",".join(
                   "127.0.0.1:%d" % n.gcomm_port for n in c.nodes),
               "--wsrep-node-name=%s" % self.name,
               "--wsrep-node-address=127.0.0.1:%d" % self.gcomm_port,
               "--wsrep-node-incoming-address=127.0.0.1:%d" % self.port,
               "--wsrep-sst-receive-address=127.0.0.1:%d" % self.sst_port,
               "--wsrep-sst-method=rsync", "--wsrep-slave-threads=2",
               "--wsrep-provider-options=%s" % opts]
        if os.geteuid() == 0:
            cmd.append("--user=%s" % SERVER_USER)
        if bootstrap:
            cmd.append("--wsrep-new-cluster")
        return cmd + list(extra)

    def recovered_position(self):
        """After a crash (grastate.dat seqno -1): the last committed position
        read from InnoDB (mariadbd --wsrep-recover, what galera_recovery
        does), so that the node rejoins by IST."""
        log = self.dir / "recover.log"
        if log.exists():
            log.unlink()
        cmd = [a for a in self.command(False) if not a.startswith("--log-error=")]
        cmd += ["--log-error=%s" % log, "--wsrep-recover"]
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120, cwd=str(self.dir))
        m = re.search(r"Recovered position: (\S+)", log.read_text(errors="replace")) \
            if log.exists() else None
        return m.group(1) if m else None

    def install(self):
        self.data.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        args = ["mariadb-install-db", "--no-defaults", "--auth-root-authentication-method=normal",
                "--datadir=%s" % self.data, "--tmpdir=%s" % self.tmp, "--skip-test-db"]
        if os.geteuid() == 0:
            args.append("--user=%s" % SERVER_USER)
            chown_tree(self.dir)
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise GaleraError("mariadb-install-db failed:\n" + r.stdout[-3000:])

    def start(self, bootstrap=False, wait=True, recover=False):
        extra = []
        self.data.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        chown_tree(self.dir)
        if recover:
            pos = self.recovered_position()
            if pos:
                extra.append("--wsrep-start-position=%s" % pos)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        for f in (self.sock, self.pidf):
            if f.exists():
                f.unlink()
        out = open(self.dir / "mariadbd.out", "ab")
        env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", ""))
        self.proc = subprocess.Popen(self.command(bootstrap, extra), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=out, cwd=str(self.dir), start_new_session=True, env=env)
        out.close()
        if self.cluster.registry:
            self.cluster.registry.add(self.proc.pid)
        if wait:
            self.wait_synced()

    def check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            raise GaleraError("%s exited (%s):\n%s" % (
                self.name, self.proc and self.proc.returncode, S.tail(self.errlog, 40)))

    def root(self, timeout=5):
        return pymysql.connect(unix_socket=str(self.sock), user="root", password="",
                               autocommit=True, connect_timeout=timeout, read_timeout=30)

    def status(self):
        """wsrep status variables of the node (dict), or None when it does
        not answer."""
        try:
            conn = self.root(timeout=2)
        except pymysql.err.MySQLError:
            return None
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_%%'")
                return {k: v for k, v in cur.fetchall()}
        except pymysql.err.MySQLError:
            return None
        finally:
            conn.close()

    def synced(self):
        st = self.status()
        return bool(st) and st.get("wsrep_ready") == "ON" and \
            st.get("wsrep_local_state_comment") == "Synced" and \
            st.get("wsrep_cluster_status") == "Primary"

    def wait_synced(self, timeout=120):
        S.wait_until(self.synced, timeout, "%s to be Synced" % self.name, interval=0.2,
                     check=self.check_alive)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, grace=60):
        if self.alive():
            S.stop_pids([self.proc.pid], grace=grace)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


class GaleraCluster:
    def __init__(self, dir_, registry=None, size=3):
        self.dir = Path(dir_)
        self.registry = registry
        self.nodes = []
        for i in range(size):
            self.nodes.append(Node(self, i))

    def host_list(self, order=None):
        order = order if order is not None else range(len(self.nodes))
        return ",".join(self.nodes[i].addr for i in order)

    def start(self, db_name="paygate", db_user="paygate", db_password="paygate"):
        first = self.nodes[0]
        first.install()
        first.start(bootstrap=True)
        conn = first.root()
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 "
                            "COLLATE utf8mb4_unicode_ci" % db_name)
                for host in ("127.0.0.1", "localhost"):
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                                (db_user, host, db_password))
                    cur.execute("GRANT ALL PRIVILEGES ON `%s`.* TO %%s@%%s" % db_name,
                                (db_user, host))
        finally:
            conn.close()
        # Nodes 2 and 3 join with an empty datadir: full state transfer
        # (SST, rsync) from a donor; a node killed and started again rejoins
        # by IST from a donor's gcache after --wsrep-recover.
        for n in self.nodes[1:]:
            n.start()
        S.wait_until(lambda: all(self.cluster_size(n) == len(self.nodes) for n in self.nodes),
                     60, "cluster size %d on every node" % len(self.nodes), interval=0.2)

    def cluster_size(self, node):
        st = node.status()
        return int(st.get("wsrep_cluster_size", 0)) if st else 0

    def wait_size(self, size, timeout=60):
        live = [n for n in self.nodes if n.alive()]
        S.wait_until(lambda: all(self.cluster_size(n) == size for n in live), timeout,
                     "cluster size %d" % size, interval=0.2)

    def stop(self):
        # the last one to leave keeps the cluster's state safe to bootstrap from
        for n in reversed(self.nodes):
            n.stop()

    def pids(self):
        return [n.proc.pid for n in self.nodes if n.alive()]
