#!/usr/bin/env python3
"""The delivery client's socket to the next hop has Nagle's algorithm off (issue 18).

A 100 KB body leaves in several writes (libevent writes at most 16 KB at a time); with Nagle
on, the last short write, the one with the final dot, waited for the ACK of the one before,
which a receiver may delay by up to 40 ms, on every message. This checks the behaviour, not
a speed: while the sink holds its reply to the final dot, the test takes a duplicate of the
node's socket to the sink (pidfd_getfd, Linux 5.6; the node is this process's child) and
reads TCP_NODELAY from it. Then the sink answers and the message must arrive intact.
Without pidfd_getfd (an older kernel, or no permission) the check is a failure, not a skip.
"""
import ctypes
import os
import socket
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
import smtpsink  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

CRM = "127.0.2.55"          # the example's CRM Application connector: may relay anywhere
SYS_PIDFD_GETFD = 438       # one number on every architecture (Linux's unified table)
NAME = "TCP_NODELAY on the socket to the next hop; 100 KB delivered intact"


class HoldSink(smtpsink.Sink):
    """A sink that, once a message's data has arrived, waits for release before it answers
    the final dot, so the client's connection is open and mid-transaction meanwhile."""

    def __init__(self, directory):
        super().__init__(directory)
        self.in_data = threading.Event()
        self.release = threading.Event()

    def _data(self, st):
        data = super()._data(st)
        self.in_data.set()
        self.release.wait(60)
        return data


def dup_from(pid, fd):
    """A duplicate of fd in process pid (pidfd_getfd), or raise OSError."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        r = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return r
    finally:
        os.close(pidfd)


def sockets_to(pid, port):
    """Duplicates of pid's TCP sockets connected to 127.0.0.1:port, as socket objects."""
    out = []
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            if not os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                continue
        except OSError:
            continue                      # closed meanwhile
        dup = dup_from(pid, int(name))
        s = socket.socket(fileno=dup)
        try:
            ok = s.family == socket.AF_INET and s.type == socket.SOCK_STREAM and \
                s.getpeername() == ("127.0.0.1", port)
        except OSError:
            ok = False                    # a listener or an unconnected socket
        if ok:
            out.append(s)
        else:
            s.close()
    return out


class Skip(Exception):
    pass


def case_nodelay(E, sink):
    c = Check()
    body = "".join("%06d %s\r\n" % (i, "x" * 90) for i in range(1000))    # ~100 KB
    subject = "nodelay-%d" % os.getpid()
    with Client("127.0.0.1", E.smtp_port, source=CRM) as cl:
        r = cl.send_message("app@crm.example", ["a@sink.test"],
                            "From: <app@crm.example>\r\nTo: <a@sink.test>\r\nSubject: %s\r\n"
                            "\r\n%s" % (subject, body))
    c.true(queued_id(r[-1]), "accepted", r)
    if not c.true(sink.in_data.wait(30), "the node sent the message's data to the sink"):
        sink.release.set()
        return c.result()
    try:
        socks = sockets_to(E.node.pid, sink.port)
    except OSError as e:
        sink.release.set()
        raise Skip("pidfd_getfd: %s" % e)
    try:
        c.eq(len(socks), 1, "one connection from the node to the sink")
        for s in socks:
            c.true(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
                   "TCP_NODELAY set on the node's socket to the next hop")
    finally:
        for s in socks:
            s.close()
        sink.release.set()
    got = eventually(lambda: [m for m in sink.messages()
                              if ("Subject: %s" % subject).encode() in m["data"]], 20)
    c.true(got and got[0]["data"].endswith(body.encode()), "the 100 KB message arrived intact")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="delivery_nodelay.")
    sink = HoldSink(os.path.join(work, "sink")).start()
    try:
        with rnnode.Env("delivery_nodelay") as E:
            E.ldapmodify("dn: cn=To sink,cn=Send Connectors,ou=Relay,dc=example,dc=com\n"
                         "changetype: add\nobjectClass: relaySendConnector\ncn: To sink\n"
                         "relayEnabled: TRUE\nrelayAddressSpace: sink.test\n"
                         "relaySmartHost: 127.0.0.1:%d\nrelayCost: 1\n" % sink.port)
            E.node.stop()
            E.node.start()
            try:
                ok, diag = case_nodelay(E, sink)
                t.ok(ok, NAME, diag)
            except Skip as e:
                # A missing part is a failure: without pidfd_getfd the option cannot be read.
                t.ok(False, NAME, "cannot inspect the node's socket: %s" % e)
    finally:
        sink.release.set()
        sink.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
