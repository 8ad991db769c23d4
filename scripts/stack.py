#!/usr/bin/python3
"""Start and stop paygate's moving parts on loopback: the provider sandbox,
spawn-fcgi'd paygate processes, lighttpd and Apache (from the very templates
in apache-conf/), for the integration tests (tests/integration/conftest.py)
and the demo (scripts/demo.sh).

Library use: see Stack, start_sandbox, spawn_fcgi, write_config.
Command line (used by scripts/demo.sh):

    stack.py render TEMPLATE OUT KEY=VALUE...   fill @KEY@ placeholders
    stack.py keys DIR                           app key pair (openssl)

Every process started here is recorded by PID (and its command line, so a
re-used PID is never hit) and stopped by that PID: SIGTERM, a grace period,
then SIGKILL.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "apache-conf"
PYTHON = "/usr/bin/python3"
APACHE_MODULES = "/usr/lib/apache2/modules"
APACHE_BIN = shutil.which("apache2") or "/usr/sbin/apache2"
LIGHTTPD_BIN = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
SPAWN_FCGI_BIN = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"
# paygate processes per test stack (spawn-fcgi -F; apache-test.conf caps
# mod_fcgid at the same 4). `make bench` puts the knee at 8 on 2 cores (4
# per core, the README's sizing rule); tests need concurrency across
# processes, not throughput, and each sanitizer-built process costs several
# times the memory and CPU of an optimised one, so half of it.
DEFAULT_FCGI_CHILDREN = 4

_PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")


class StackError(RuntimeError):
    pass


# --------------------------------------------------------------- templates

def render(template, out, values):
    """Copy TEMPLATE to OUT replacing each @KEY@ by values[KEY]. Comment
    lines (starting with '#') keep their placeholders as documentation; a
    placeholder left anywhere else is an error."""
    text = Path(template).read_text()
    for key, val in values.items():
        text = text.replace("@%s@" % key, str(val))
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        m = _PLACEHOLDER.search(line)
        if m:
            raise StackError("%s:%d: no value for %s" % (template, n, m.group(0)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


# ------------------------------------------------------------------- ports

_handed_out = set()


def port_is_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(lo=20000, hi=29999):
    """A TCP port in [lo, hi] that nothing listens on and that this process
    has not handed out before."""
    import random
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(2000):
        p = rng.randint(lo, hi)
        if p in _handed_out:
            continue
        if port_is_free(p):
            _handed_out.add(p)
            return p
    raise StackError("no free port in %d-%d" % (lo, hi))


# --------------------------------------------------------------- processes

def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: the state follows the last ')'
    return data[data.rindex(")") + 2:].split()


def alive(pid):
    st = _state(pid)
    return st is not None and st[0] not in ("Z", "X")


def ppid_of(pid):
    st = _state(pid)
    return int(st[1]) if st else None


def descendants(root):
    """PIDs of all living descendants of ROOT (scan of /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            pp = ppid_of(int(d))
            if pp is not None:
                children.setdefault(pp, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            if alive(c):
                out.append(c)
            todo.append(c)
    return out


def stop_pids(pids, grace=15.0, sig=signal.SIGTERM):
    """SIGTERM each PID, wait up to GRACE seconds for all, SIGKILL the rest.
    Children of this process are reaped."""
    pids = [p for p in pids if p and alive(p)]
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline:
        _reap()
        if not any(alive(p) for p in pids):
            return
        time.sleep(0.05)
    for p in pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.1)
    _reap()


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class PidRegistry:
    """A file listing every process started (pid + command line), so that a
    crashed run's leftovers can be stopped by PID the next time."""

    def __init__(self, path):
        self.path = Path(path)

    def add(self, pid):
        cmd = _cmdline(pid) or ""
        with open(self.path, "a") as f:
            f.write("%d\t%s\n" % (pid, cmd))

    def stop_leftovers(self):
        if not self.path.exists():
            return
        pids = []
        for line in self.path.read_text().splitlines():
            pid_s, _, cmd = line.partition("\t")
            try:
                pid = int(pid_s)
            except ValueError:
                continue
            if alive(pid) and _cmdline(pid) == cmd:
                pids.append(pid)
        stop_pids(pids, grace=10)
        self.path.unlink()


def wait_until(pred, timeout, what, interval=0.05, check=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        if check:
            check()
        time.sleep(interval)
    raise StackError("timed out after %.0f s waiting for %s" % (timeout, what))


def tcp_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_open(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def http_status(url, timeout=3.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def tail(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no %s)" % path
    return "\n".join(lines[-n:])


# ----------------------------------------------------------------- keys, ini

def gen_app_keys(d):
    """RSA 2048 app key pair: app_private_pkcs8.pem (BEGIN PRIVATE KEY),
    app_private_pkcs1.pem (BEGIN RSA PRIVATE KEY), app_public.pem."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    p8, p1, pub = d / "app_private_pkcs8.pem", d / "app_private_pkcs1.pem", d / "app_public.pem"
    if not (p8.exists() and p1.exists() and pub.exists()):
        run = lambda *a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(p8))
        run("openssl", "rsa", "-in", str(p8), "-traditional", "-out", str(p1))
        run("openssl", "rsa", "-in", str(p8), "-pubout", "-out", str(pub))
        for f in (p8, p1):
            os.chmod(f, 0o600)
    return {"pkcs8": p8, "pkcs1": p1, "public": pub}


def write_config(path, *, base_url, db_port, db_host="127.0.0.1", db_name="paygate",
                 db_user="paygate", db_password="paygate", log_file,
                 app_id, gateway, app_private_key, alipay_public_key, seller_id="",
                 ca_file="", return_url, api_key, checkout_secret, order_ttl=900,
                 webhook_url="", webhook_secret="whsec-test", storefront=True, wechat=None,
                 extra="", trusted_proxies="", rejected_notifications_per_minute=100000):
    """wechat: None (disabled) or a dict with appid, mch_id, api_key,
    sign_type, gateway and optionally ca_file, client_cert, client_key.
    extra: more INI text appended as it is (e.g. "[fees]\nmode = surcharge\n").
    rejected_notifications_per_minute: high by default, because every test
    posts from 127.0.0.1 (one source); trusted_proxies: [server] CIDR list."""
    if wechat:
        wx = ["enabled = true"] + ["%s = %s" % (k, wechat[k]) for k in
                                   ("appid", "mch_id", "api_key", "sign_type", "gateway", "ca_file",
                                    "client_cert", "client_key", "api_version", "api_v3_key",
                                    "mch_serial_no", "wechatpay_public_key", "wechatpay_public_key_id",
                                    "platform_cert_dir") if wechat.get(k)]
        wechat_section = "\n".join(wx)
    else:
        wechat_section = "enabled = false"
    text = """; written by scripts/stack.py
[server]
base_url = {base_url}
api_key = {api_key}
checkout_secret = {checkout_secret}
order_ttl = {order_ttl}
log_file = {log_file}
trusted_proxies = {trusted_proxies}
rejected_notifications_per_minute = {rejected_notifications_per_minute}

[database]
host = {db_host}
port = {db_port}
socket =
user = {db_user}
password = {db_password}
name = {db_name}

[alipay]
enabled = true
app_id = {app_id}
gateway = {gateway}
app_private_key = {app_private_key}
alipay_public_key = {alipay_public_key}
seller_id = {seller_id}
ca_file = {ca_file}

[wechat]
{wechat_section}

[merchant]
return_url = {return_url}
webhook_url = {webhook_url}
webhook_secret = {webhook_secret}

[demo]
storefront = {storefront}
""".format(base_url=base_url, api_key=api_key, checkout_secret=checkout_secret,
           order_ttl=order_ttl, log_file=log_file, db_host=db_host, db_port=db_port,
           db_user=db_user, db_password=db_password, db_name=db_name, app_id=app_id,
           gateway=gateway, app_private_key=app_private_key,
           alipay_public_key=alipay_public_key, seller_id=seller_id, ca_file=ca_file,
           return_url=return_url, webhook_url=webhook_url, webhook_secret=webhook_secret,
           storefront="true" if storefront else "false", wechat_section=wechat_section,
           trusted_proxies=trusted_proxies,
           rejected_notifications_per_minute=rejected_notifications_per_minute)
    if extra:
        text += "\n" + extra
    path = Path(path)
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------- sandbox

def start_sandbox(state_dir, http_port, https_port, app_id, app_public_key,
                  time_scale=None, log=None, registry=None, timeout=30, wechat=None):
    """Start sandbox/sandbox.py; returns the Popen once STATE_DIR/ready exists.
    wechat: optional dict with appid, mch_id, api_key (--wechat-* flags)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ready = state_dir / "ready"
    if ready.exists():
        ready.unlink()
    cmd = [PYTHON, str(REPO / "sandbox" / "sandbox.py"), "--state-dir", str(state_dir),
           "--http-port", str(http_port), "--https-port", str(https_port),
           "--app-id", str(app_id), "--app-public-key", str(app_public_key)]
    if time_scale is not None:
        cmd += ["--time-scale", str(time_scale)]
    if wechat:
        cmd += ["--wechat-appid", wechat["appid"], "--wechat-mch-id", wechat["mch_id"],
                "--wechat-api-key", wechat["api_key"]]
    log = Path(log or state_dir / "sandbox.log")
    with open(log, "ab") as lf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                cwd=str(REPO), start_new_session=True)
    if registry:
        registry.add(proc.pid)

    def check():
        if proc.poll() is not None:
            raise StackError("sandbox exited with %s:\n%s" % (proc.returncode, tail(log)))
    try:
        wait_until(ready.exists, timeout, "the sandbox's ready file", check=check)
    except StackError:
        stop_pids([proc.pid])
        raise
    return proc


# ------------------------------------------------------------- spawn-fcgi

def spawn_fcgi(app, app_args, pid_file, *, host=None, port=None, socket_path=None,
               children=2, env=None, log=None, registry=None, timeout=30):
    """Run spawn-fcgi (it daemonises the children and exits); returns their
    PIDs once the socket accepts connections."""
    cmd = [SPAWN_FCGI_BIN, "-P", str(pid_file), "-F", str(children)]
    if socket_path:
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        cmd += ["-s", str(socket_path), "-M", "0660"]
    else:
        cmd += ["-a", host or "127.0.0.1", "-p", str(port)]
    cmd += ["--", str(app)] + [str(a) for a in app_args]
    out = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if log:
        with open(log, "a") as f:
            f.write(out.stdout)
    pids = [int(x) for x in Path(pid_file).read_text().split()] if Path(pid_file).exists() else []
    for p in pids:
        if registry:
            registry.add(p)
    if out.returncode != 0 or not pids:
        stop_pids(pids)
        raise StackError("spawn-fcgi failed (%s): %s" % (out.returncode, out.stdout))
    if socket_path:
        wait_until(lambda: unix_open(socket_path), timeout, "spawn-fcgi socket %s" % socket_path)
    else:
        wait_until(lambda: tcp_open(port), timeout, "spawn-fcgi port %s" % port)
    return pids


# ------------------------------------------------------------------ stacks

def current_user_group():
    import grp
    import pwd
    if os.geteuid() == 0:
        return "www-data", "www-data"
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


def chown_tree(path, user, group):
    import grp
    import pwd
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for f in files:
            os.chown(os.path.join(root, f), uid, gid)


# Apache started as root hands its children (and mod_fcgid's paygate
# processes) to User/Group. They re-open the mutex files by name (else
# "(13)Permission denied: AH02479: could not init proxy_mutex in child"),
# create mod_fcgid's sockets, and run paygate.fcgi with its config, keys and
# log. A folder the root parent can use is not enough: every folder above it
# must be searchable by User too, which a checkout under /root (mode 0700) or
# another 0700 home is not. The kernel decides, so ask it as that user.

def user_can(user, group, *test_args):
    """True when `test TEST_ARGS` succeeds run as USER:GROUP (root only)."""
    r = subprocess.run(["test"] + [str(a) for a in test_args], user=user, group=group,
                       extra_groups=[], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0


_RELOCATED_PREFIX = "paygate-apache-"


def children_dir(d, user, group):
    """A folder for the files Apache's children use, reachable by USER: D
    itself when USER can search every folder above it, else a fresh folder
    in the system temp folder (searchable by everyone) that D's contents move
    to, with D left as a symbolic link to it. Owned by USER:GROUP when root.
    Returns the real path; undo with release_children_dir(D)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return d.resolve()
    if d.is_symlink():
        release_children_dir(d)
    parent_ok = user_can(user, group, "-x", d.parent)
    real = d
    if not parent_ok:
        import tempfile
        real = Path(tempfile.mkdtemp(prefix=_RELOCATED_PREFIX + d.name + "-"))
        os.chmod(real, 0o755)
        for entry in d.iterdir():
            shutil.move(str(entry), str(real / entry.name))
        d.rmdir()
        d.symlink_to(real, target_is_directory=True)
        if not user_can(user, group, "-x", real):
            raise StackError("%s: no folder that %s can reach (tried %s)" % (d, user, real))
    chown_tree(real, user, group)
    return real.resolve()


def release_children_dir(d):
    """Undo children_dir: move the relocated folder's files back to D
    (sockets and the like are dropped), so that nothing is left behind in
    the temp folder and the logs are where they were."""
    d = Path(d)
    if not d.is_symlink():
        return
    real = d.resolve()
    d.unlink()
    if not real.name.startswith(_RELOCATED_PREFIX) or not real.is_dir():
        d.mkdir(exist_ok=True)
        return
    import stat
    for root, _dirs, files in os.walk(real):
        for f in files:
            fp = os.path.join(root, f)
            if not stat.S_ISREG(os.lstat(fp).st_mode) and not os.path.islink(fp):
                os.unlink(fp)
    shutil.move(str(real), str(d))


class Stack:
    """One web server + paygate combination on a private port.

    kind: "lighttpd" (spawn-fcgi over TCP), "lighttpd-unix" (spawn-fcgi on a
    unix socket), "apache-proxy-fcgi" (spawn-fcgi over TCP, Apache
    mod_proxy_fcgi), "apache-fcgid" (Apache mod_fcgid spawns paygate).
    """

    KINDS = ("lighttpd", "lighttpd-unix", "apache-proxy-fcgi", "apache-fcgid")

    def __init__(self, kind, run_dir, *, build_dir, port, config_writer, env=None,
                 mount="/pay", fcgi_children=DEFAULT_FCGI_CHILDREN, registry=None, fcgi_port=None,
                 asan_options="", user_group=None):
        if kind not in self.KINDS:
            raise StackError("unknown stack kind %r" % kind)
        self.kind = kind
        self.dir = Path(run_dir)
        self.build_dir = Path(build_dir)
        self.port = port
        self.mount = mount
        self.base_url = "http://127.0.0.1:%d%s" % (port, mount)
        self.config_writer = config_writer
        self.env = dict(env or os.environ)
        self.fcgi_children = fcgi_children
        self.registry = registry
        self.fcgi_port = fcgi_port
        self.asan_options = self._asan_options_asked = asan_options
        self._asan_home = None
        self.user, self.group = user_group or current_user_group()
        self.server_proc = None
        self.fcgi_pids = []
        self.home = self.dir       # where the caller asked for it (dir may move)
        self.app = self.build_dir / "paygate.fcgi"
        self._set_dir(self.dir)

    def _set_dir(self, d):
        self.dir = Path(d)
        self.config = self.dir / "paygate.ini"
        self.paygate_log = self.dir / "paygate.log"

    # logs worth showing when something fails
    def logs(self):
        names = ["paygate.log", "spawn-fcgi.log", "lighttpd-error.log", "lighttpd.out",
                 "error.log", "apache.out"]
        return {n: self.dir / n for n in names if (self.dir / n).exists()}

    def start(self):
        if self.dir.is_symlink():  # left by a session that crashed
            release_children_dir(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        app = self.build_dir / "paygate.fcgi"
        if not os.access(app, os.X_OK):
            raise StackError("%s is missing (build it first)" % app)
        if self.kind.startswith("apache") and os.geteuid() == 0:
            self._children_can_reach(app)
        (self.dir / "htdocs").mkdir(exist_ok=True)
        self.config_writer(self)
        app = self.app
        try:
            if self.kind in ("lighttpd", "lighttpd-unix", "apache-proxy-fcgi"):
                self._start_spawn_fcgi(app)
            if self.kind.startswith("lighttpd"):
                self._start_lighttpd()
            else:
                self._start_apache()
            wait_until(lambda: http_status(self.base_url + "/healthz") == 200, 60,
                       "%s: GET %s/healthz -> 200" % (self.kind, self.base_url),
                       interval=0.2, check=self._check_server)
        except Exception as e:
            details = "\n".join("--- %s\n%s" % (n, tail(p)) for n, p in self.logs().items())
            self.stop()
            raise StackError("%s: %s\n%s" % (self.kind, e, details)) from e
        return self

    def _start_spawn_fcgi(self, app):
        log = self.dir / "spawn-fcgi.log"
        pid_file = self.dir / "paygate.pid"
        if self.kind == "lighttpd-unix":
            self.socket_path = self.dir / "paygate.sock"
            self.fcgi_pids = spawn_fcgi(app, ["-c", self.config], pid_file,
                                        socket_path=self.socket_path,
                                        children=self.fcgi_children, env=self.env,
                                        log=log, registry=self.registry)
        else:
            if not self.fcgi_port:
                self.fcgi_port = free_port()
            self.fcgi_pids = spawn_fcgi(app, ["-c", self.config], pid_file,
                                        host="127.0.0.1", port=self.fcgi_port,
                                        children=self.fcgi_children, env=self.env,
                                        log=log, registry=self.registry)

    def _children_can_reach(self, app):
        """Root only: Apache's children run as self.user. Give them a stack
        folder they can reach (children_dir) and, for mod_fcgid, a
        paygate.fcgi and a sanitizer log folder they can use: the config
        and everything it names must be in the stack folder (config_writer
        puts private copies there)."""
        self._set_dir(children_dir(self.home, self.user, self.group))
        self.app = app
        self.asan_options, self._asan_home = self._asan_options_asked, None
        if self.kind != "apache-fcgid":
            return
        if not user_can(self.user, self.group, "-x", app):
            bindir = self.dir / "bin"
            bindir.mkdir(exist_ok=True)
            self.app = bindir / "paygate.fcgi"
            shutil.copy2(app, self.app)
        m = re.search(r"log_path=([^:]*)/[^/:]*", self.asan_options)
        if m and not user_can(self.user, self.group, "-w", m.group(1), "-a", "-x", m.group(1)):
            self._asan_home = Path(m.group(1))
            asan = self.dir / "asan"
            asan.mkdir(exist_ok=True)
            os.chmod(asan, 0o1777)
            self.asan_options = self.asan_options.replace("log_path=%s/" % m.group(1),
                                                          "log_path=%s/" % asan)

    def _release_dir(self):
        """Sanitizer reports back where the caller looks for them; the stack
        folder back where it was asked for."""
        home = self._asan_home
        if home is not None and (self.dir / "asan").is_dir():
            for f in sorted((self.dir / "asan").glob("*")):
                shutil.move(str(f), str(home / f.name))
        if self.dir != self.home:
            release_children_dir(self.home)
            self._set_dir(self.home)

    def _check_server(self):
        if self.server_proc is not None and self.server_proc.poll() is not None:
            raise StackError("web server exited with %s" % self.server_proc.returncode)

    def _start_lighttpd(self):
        if self.kind == "lighttpd-unix":
            backend = '"socket" => "%s"' % self.socket_path
        else:
            backend = '"host" => "127.0.0.1", "port" => %d' % self.fcgi_port
        snippet = render(CONF_DIR / "lighttpd-paygate.conf", self.dir / "lighttpd-paygate.conf",
                         {"MOUNT": self.mount, "FCGI_BACKEND": backend})
        conf = render(CONF_DIR / "lighttpd-test.conf", self.dir / "lighttpd.conf",
                      {"PORT": self.port, "RUN_DIR": self.dir, "PAYGATE_SNIPPET": snippet})
        t = subprocess.run([LIGHTTPD_BIN, "-tt", "-f", str(conf)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if t.returncode != 0:
            raise StackError("lighttpd -tt: %s" % t.stdout)
        with open(self.dir / "lighttpd.out", "ab") as out:
            self.server_proc = subprocess.Popen([LIGHTTPD_BIN, "-D", "-f", str(conf)],
                                                stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=out, start_new_session=True)
        if self.registry:
            self.registry.add(self.server_proc.pid)
        wait_until(lambda: tcp_open(self.port), 20, "lighttpd on port %d" % self.port,
                   check=self._check_server)

    def _start_apache(self):
        if self.kind == "apache-proxy-fcgi":
            mode = "PAYGATE_PROXY_FCGI"
            snippet = render(CONF_DIR / "apache-proxy-fcgi.conf", self.dir / "paygate-snippet.conf",
                             {"MOUNT": self.mount, "FCGI_ADDR": "127.0.0.1:%d" % self.fcgi_port})
        else:
            mode = "PAYGATE_FCGID"
            app = self.app.resolve()
            snippet = render(CONF_DIR / "apache-fcgid.conf", self.dir / "paygate-snippet.conf",
                             {"MOUNT": self.mount, "PAYGATE_FCGI": app, "BINDIR": app.parent,
                              "CONFIG": self.config})
            (self.dir / "fcgid").mkdir(exist_ok=True)
        conf = render(CONF_DIR / "apache-test.conf", self.dir / "httpd.conf",
                      {"PORT": self.port, "RUN_DIR": self.dir, "USER": self.user,
                       "GROUP": self.group, "MODULES": APACHE_MODULES, "SNIPPET": snippet,
                       "ASAN_OPTIONS": self.asan_options})
        if os.geteuid() == 0:
            # Apache's children (and mod_fcgid's paygate processes) run as
            # www-data: they write logs, sockets and mutexes under the run dir
            # (reachable: _children_can_reach) and read the config and the
            # key it names.
            chown_tree(self.dir, self.user, self.group)
        env = dict(self.env)
        env.pop("ASAN_OPTIONS", None)  # Apache itself is not instrumented
        args = [APACHE_BIN, "-f", str(conf), "-D", mode]
        t = subprocess.run(args + ["-t"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if t.returncode != 0:
            raise StackError("apache2 -t: %s" % t.stdout)
        with open(self.dir / "apache.out", "ab") as out:
            self.server_proc = subprocess.Popen(args + ["-DFOREGROUND"], env=env,
                                                stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=out, start_new_session=True)
        if self.registry:
            self.registry.add(self.server_proc.pid)
        wait_until(lambda: tcp_open(self.port), 20, "apache on port %d" % self.port,
                   check=self._check_server)

    def paygate_pids(self):
        """PIDs of the living paygate.fcgi processes of this stack."""
        if self.kind == "apache-fcgid":
            if not self.server_proc:
                return []
            app = str(self.app.resolve())
            return [p for p in descendants(self.server_proc.pid)
                    if (_cmdline(p) or "").split(" ")[0] == app]
        return [p for p in self.fcgi_pids if alive(p)]

    def stop(self):
        extra = []
        if self.server_proc is not None:
            # mod_fcgid's paygate processes: stopped by Apache, else by us
            extra = self.paygate_pids() if self.kind == "apache-fcgid" else []
            stop_pids([self.server_proc.pid], grace=20)
            try:
                self.server_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.server_proc = None
        stop_pids(list(self.fcgi_pids) + extra, grace=20)
        self.fcgi_pids = []
        self._release_dir()


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "render":
        vals = dict(a.split("=", 1) for a in sys.argv[4:])
        render(sys.argv[2], sys.argv[3], vals)
    elif len(sys.argv) == 3 and sys.argv[1] == "keys":
        for k, v in gen_app_keys(sys.argv[2]).items():
            print("%s %s" % (k, v))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
