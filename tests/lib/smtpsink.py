#!/usr/bin/python3
"""A test SMTP sink on loopback that records what it receives and fails on demand.

Library: s = Sink(dir).start(); s.port; s.messages(); s.wait(n); s.stop()
CLI:     /usr/bin/python3 tests/lib/smtpsink.py --dir D [--port N] [--tls-cert C --tls-key K]
         [--auth user:password]

Each accepted message is written to DIR/<n>.eml with an envelope header block:
    X-Sink-From: <sender>
    X-Sink-To: <rcpt>            (one per accepted recipient)
    X-Sink-TLS: yes|no
    X-Sink-Auth: <user>|-
    (empty line, then the data exactly as received after dot-unstuffing)

Failures on demand, by recipient local part (so one sink serves every case):
    fail5-...@   RCPT gets 550 5.1.1 <rcpt>: Recipient address rejected
    defer-...@   RCPT gets 451 4.3.0 try again later
    deferN-...@  (N a digit) 451 for the first N attempts for that address, then accepted
    data5-...@   the final dot gets 554 5.6.0 content rejected (whole message)
Commands are CRLF-terminated; a bare LF is answered 500 and the session closed.

Hashing mode (Sink(..., hash_from=b"X-Marker:")), for messages too large to keep: the data
is hashed as it arrives, from its first line starting with hash_from on, and DIR/<n>.eml
holds the envelope block with
    X-Sink-SHA256: <hex>          X-Sink-Hashed: <octets hashed>   X-Sink-Size: <all octets>
and no data; messages() returns them as "sha256", "hashed" and "size".
Observation: s.aborted counts DATA transfers that ended without the final dot; s.hold =
(at_data, go) (threading.Events) holds the next 354 until go is set, after setting at_data.
"""
import argparse
import base64
import hashlib
import os
import re
import socket
import ssl
import sys
import threading
import time


class Sink:
    def __init__(self, directory, port=0, tls_cert=None, tls_key=None, auth=None,
                 host="127.0.0.1", eightbit=True, size_max=52428800, hash_from=None):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.host = host
        self.req_port = port
        self.tls = None
        if tls_cert:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(tls_cert, tls_key)
        self.auth = auth              # (user, password) or None
        self.eightbit = eightbit      # advertise 8BITMIME and SMTPUTF8
        self.size_max = size_max      # advertised as SIZE (not enforced: a client must)
        self.lock = threading.Lock()
        self.count = 0
        self.attempts = {}            # rcpt -> RCPT attempts seen
        self.sessions = 0
        self.active = 0               # sessions open now, and the most at once
        self.max_active = 0
        self.slow = 0.0               # seconds to sleep before answering the final dot
        self.hash_from = hash_from    # bytes: hashing mode (module doc), None: keep the data
        self.aborted = 0              # DATA transfers that ended without the final dot
        self.hold = None              # (at_data, go) Events: hold the next 354 until go
        self.stopping = False

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.req_port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    # -- one session ---------------------------------------------------------------------
    def _session(self, c):
        with self.lock:
            self.sessions += 1
        st = {"sock": c, "buf": b"", "pos": 0, "tls": False, "user": None, "busy": False}
        try:
            self._converse(st)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            self._idle(st)
            try:
                st["sock"].close()
            except OSError:
                pass

    def _send(self, st, line):
        st["sock"].sendall(line.encode() + b"\r\n")

    def _line(self, st):
        """The next line without its CRLF. The buffer is consumed by offset, so a line costs
        its own length, never the buffer's (hashing mode reads hundreds of MiB)."""
        buf, pos = st["buf"], st["pos"]
        i = buf.find(b"\n", pos)
        while i < 0:
            d = st["sock"].recv(65536)
            if not d:
                raise ValueError("eof")
            buf, pos = buf[pos:] + d, 0
            i = buf.find(b"\n")
        st["buf"], st["pos"] = buf, i + 1
        if i == pos or buf[i - 1:i] != b"\r":
            raise ValueError("bare LF")
        return buf[pos:i - 1]

    def _converse(self, st):
        self._send(st, "220 sink.test ESMTP test sink")
        sender, rcpts = None, []
        while True:
            raw = self._line(st)
            cmd = raw.decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                sender, rcpts = None, []
                ext = ["PIPELINING", "SIZE %d" % self.size_max, "ENHANCEDSTATUSCODES"]
                if self.eightbit:
                    ext += ["8BITMIME", "SMTPUTF8"]
                if self.tls and not st["tls"]:
                    ext.append("STARTTLS")
                if self.auth and (st["tls"] or not self.tls):
                    ext.append("AUTH PLAIN LOGIN")
                lines = ["sink.test"] + ext
                for i, l in enumerate(lines):
                    self._send(st, "250%s%s" % ("-" if i < len(lines) - 1 else " ", l))
            elif verb == "STARTTLS" and self.tls and not st["tls"]:
                self._send(st, "220 2.0.0 go ahead")
                st["buf"], st["pos"] = b"", 0
                st["sock"] = self.tls.wrap_socket(st["sock"], server_side=True)
                st["tls"] = True
            elif verb == "AUTH" and self.auth:
                parts = cmd.split(" ")
                ok = False
                if len(parts) == 3 and parts[1].upper() == "PLAIN":
                    try:
                        _, u, p = base64.b64decode(parts[2]).split(b"\0")
                        ok = (u.decode(), p.decode()) == self.auth
                        st["user"] = u.decode() if ok else None
                    except ValueError:
                        ok = False
                self._send(st, "235 2.7.0 ok" if ok else "535 5.7.8 bad credentials")
            elif verb == "MAIL":
                if self.auth and not st["user"]:
                    self._send(st, "530 5.7.0 authentication required")
                    continue
                m = re.match(r"MAIL FROM:<([^>]*)>", cmd, re.I)
                sender, rcpts = (m.group(1) if m else ""), []
                self._busy(st)
                self._send(st, "250 2.1.0 ok")
            elif verb == "RCPT":
                m = re.match(r"RCPT TO:<([^>]*)>", cmd, re.I)
                r = m.group(1) if m else ""
                self._send(st, self._rcpt_reply(r))
                if not self._rcpt_reply_is_fail(r):
                    rcpts.append(r)
            elif verb == "DATA":
                if not rcpts:
                    self._send(st, "554 5.5.1 no valid recipients")
                    continue
                hold, self.hold = self.hold, None
                if hold:
                    hold[0].set()
                    hold[1].wait(30)
                self._send(st, "354 go ahead")
                data = self._data(st)
                if self.slow:
                    time.sleep(self.slow)
                if any(r.split("@")[0].startswith("data5-") for r in rcpts):
                    self._send(st, "554 5.6.0 content rejected")
                else:
                    self._store(st, sender, rcpts, data)
                    # Busy until the message is answered: a client may close (or start the
                    # next message) right after that.
                    self._idle(st)
                    self._send(st, "250 2.0.0 Ok: queued")
                sender, rcpts = None, []
            elif verb == "RSET":
                sender, rcpts = None, []
                self._send(st, "250 2.0.0 ok")
            elif verb == "NOOP":
                self._send(st, "250 2.0.0 ok")
            elif verb == "QUIT":
                self._send(st, "221 2.0.0 bye")
                return
            else:
                self._send(st, "500 5.5.1 unknown command")

    def _busy(self, st):
        """A transaction started on this connection (counted in active/max_active)."""
        with self.lock:
            if not st["busy"]:
                st["busy"] = True
                self.active += 1
                self.max_active = max(self.max_active, self.active)

    def _idle(self, st):
        with self.lock:
            if st["busy"]:
                st["busy"] = False
                self.active -= 1

    def _rcpt_decision(self, r, count):
        local = r.split("@")[0]
        if local.startswith("fail5-"):
            return "550 5.1.1 <%s>: Recipient address rejected" % r
        if local.startswith("defer-"):
            return "451 4.3.0 try again later"
        m = re.match(r"defer(\d)-", local)
        if m and count <= int(m.group(1)):
            return "451 4.3.0 try again later (%d)" % count
        return "250 2.1.5 ok"

    def _rcpt_reply(self, r):
        with self.lock:
            self.attempts[r] = self.attempts.get(r, 0) + 1
            n = self.attempts[r]
        return self._rcpt_decision(r, n)

    def _rcpt_reply_is_fail(self, r):
        with self.lock:
            n = self.attempts.get(r, 0)
        return not self._rcpt_decision(r, n).startswith("250")

    def _data(self, st):
        """The data after dot-unstuffing: bytes, or in hashing mode a dict (sha256, hashed,
        size). A transfer that ends without the final dot is counted in aborted."""
        h = hashlib.sha256() if self.hash_from is not None else None
        out, hashing, hashed, size = [], False, 0, 0
        while True:
            try:
                line = self._line(st)
            except (OSError, ssl.SSLError, ValueError):
                with self.lock:
                    self.aborted += 1
                raise
            if line == b".":
                break
            if line.startswith(b"."):
                line = line[1:]
            line += b"\r\n"
            size += len(line)
            if h is None:
                out.append(line)
                continue
            hashing = hashing or line.startswith(self.hash_from)
            if hashing:
                h.update(line)
                hashed += len(line)
        if h is None:
            return b"".join(out)
        return {"sha256": h.hexdigest(), "hashed": hashed, "size": size}

    def _store(self, st, sender, rcpts, data):
        with self.lock:
            self.count += 1
            n = self.count
        head = ["X-Sink-From: <%s>" % sender] + ["X-Sink-To: <%s>" % r for r in rcpts]
        head += ["X-Sink-TLS: %s" % ("yes" if st["tls"] else "no"),
                 "X-Sink-Auth: %s" % (st["user"] or "-")]
        if isinstance(data, dict):      # hashing mode: the digest instead of the data
            head += ["X-Sink-SHA256: %s" % data["sha256"], "X-Sink-Hashed: %d" % data["hashed"],
                     "X-Sink-Size: %d" % data["size"]]
            data = b""
        path = os.path.join(self.dir, "%06d.eml" % n)
        with open(path + ".tmp", "wb") as f:
            f.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        os.rename(path + ".tmp", path)

    # -- observation ---------------------------------------------------------------------
    def messages(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".eml"):
                continue
            with open(os.path.join(self.dir, name), "rb") as f:
                raw = f.read()
            head, _, data = raw.partition(b"\r\n\r\n")
            env = {"from": None, "to": [], "tls": None, "auth": None, "data": data}
            for l in head.decode().split("\r\n"):
                k, _, v = l.partition(": ")
                if k == "X-Sink-From":
                    env["from"] = v[1:-1]
                elif k == "X-Sink-To":
                    env["to"].append(v[1:-1])
                elif k == "X-Sink-TLS":
                    env["tls"] = v == "yes"
                elif k == "X-Sink-Auth":
                    env["auth"] = None if v == "-" else v
                elif k == "X-Sink-SHA256":
                    env["sha256"] = v
                elif k in ("X-Sink-Hashed", "X-Sink-Size"):
                    env[k[7:].lower()] = int(v)
            out.append(env)
        return out

    def wait(self, n, timeout=20.0, pred=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = [m for m in self.messages() if pred is None or pred(m)]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return [m for m in self.messages() if pred is None or pred(m)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--auth")
    a = ap.parse_args()
    auth = tuple(a.auth.split(":", 1)) if a.auth else None
    s = Sink(a.dir, a.port, a.tls_cert, a.tls_key, auth).start()
    print(s.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
