"""A TCP proxy between paygate and the test MariaDB that can lose a COMMIT's
reply: it follows the MySQL client/server protocol packet by packet (no TLS,
no compression in the test setup), knows the text of every prepared
statement (COM_STMT_PREPARE's OK carries the statement id), and when armed
it forwards the next COMMIT of a transaction that executed a statement
containing a given text, waits for the server's reply to it (so the server
HAS committed), drops that reply and closes both sides. The client sees
"Lost connection to server during query" after sending COMMIT.

COMMIT is recognised both as COM_QUERY "COMMIT" (mysql_commit) and as the
execution of a prepared "COMMIT" (what older paygate builds sent)."""

import socket
import struct
import threading

COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE = 0x03, 0x16, 0x17


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_packet(sock):
    """(header bytes, seq, payload) or None at EOF."""
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    length = head[0] | head[1] << 8 | head[2] << 16
    payload = _recv_exact(sock, length) if length else b""
    if payload is None:
        return None
    return head, head[3], payload


class _Conn:
    def __init__(self, proxy, client, server):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.stmts = {}              # statement id -> SQL text
        self.pending_prepare = None  # SQL text of a COM_STMT_PREPARE awaiting its OK
        self.tx_texts = []           # statements executed since the last COMMIT
        self.cutting = False
        self.closed = False
        self.lock = threading.Lock()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def statement_text(self, seq, payload):
        """The SQL text of a command packet (None when it is no statement)."""
        if seq != 0 or not payload:
            return None
        if payload[0] == COM_QUERY:
            return payload[1:].decode("utf-8", "replace")
        if payload[0] == COM_STMT_EXECUTE and len(payload) >= 5:
            return self.stmts.get(struct.unpack("<I", payload[1:5])[0])
        return None

    def client_to_server(self):
        try:
            while True:
                pkt = _read_packet(self.client)
                if pkt is None:
                    break
                head, seq, payload = pkt
                if seq == 0 and payload and payload[0] == COM_STMT_PREPARE:
                    self.pending_prepare = payload[1:].decode("utf-8", "replace")
                text = self.statement_text(seq, payload)
                if text is not None:
                    norm = text.strip().upper()
                    if norm == "COMMIT":
                        if self.proxy._take_cut(self.tx_texts):
                            self.cutting = True
                        self.tx_texts = []
                    elif norm.startswith("START TRANSACTION"):
                        self.tx_texts = []
                    else:
                        self.tx_texts.append(text)
                self.server.sendall(head + payload)
        except OSError:
            pass
        finally:
            if not self.cutting:
                self.close()

    def server_to_client(self):
        try:
            while True:
                pkt = _read_packet(self.server)
                if pkt is None:
                    break
                head, seq, payload = pkt
                if self.cutting:
                    # the server answered the COMMIT (it committed): the reply is lost
                    self.proxy._note_cut()
                    break
                if self.pending_prepare is not None and seq == 1:
                    if payload and payload[0] == 0x00 and len(payload) >= 5:
                        self.stmts[struct.unpack("<I", payload[1:5])[0]] = self.pending_prepare
                    self.pending_prepare = None
                self.client.sendall(head + payload)
        except OSError:
            pass
        finally:
            self.close()


class CommitProxy:
    """proxy = CommitProxy(db_port); proxy.port is where paygate connects.
    proxy.lose_commit_reply("INSERT INTO refunds"): the next COMMIT of a
    transaction that executed such a statement is lost (once).
    proxy.cuts: how many replies were lost."""

    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.armed = []      # texts: one cut each
        self.cuts = 0
        self.cut_done = threading.Event()
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def lose_commit_reply(self, containing):
        with self.lock:
            self.armed.append(containing)
            self.cut_done.clear()

    def disarm(self):
        with self.lock:
            left = list(self.armed)
            self.armed = []
        return left

    def _take_cut(self, tx_texts):
        with self.lock:
            for i, want in enumerate(self.armed):
                if any(want in t for t in tx_texts):
                    del self.armed[i]
                    return True
        return False

    def _note_cut(self):
        with self.lock:
            self.cuts += 1
        self.cut_done.set()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                break
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            conn = _Conn(self, client, server)
            self.conns.append(conn)
            threading.Thread(target=conn.client_to_server, daemon=True).start()
            threading.Thread(target=conn.server_to_client, daemon=True).start()

    def stop(self):
        self.stopped = True
        try:
            self.listener.close()
        except OSError:
            pass
        for c in self.conns:
            c.close()
