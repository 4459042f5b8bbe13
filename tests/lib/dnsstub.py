#!/usr/bin/python3
"""A tiny authoritative DNS server on loopback UDP for delivery tests (python3-dnspython).

    z = DnsStub({"mx.test.": {"MX": [(10, "mx1.mx.test.")]},
                 "mx1.mx.test.": {"A": ["127.0.0.1"]},
                 "nullmx.test.": {"MX": [(0, ".")]},
                 "broken.test.": "SERVFAIL"}).start()
    z.port  ->  resolver "127.0.0.1:<port>";  z.stop()
Names not in the zone get NXDOMAIN; a name in the zone without the asked type gets an
empty answer (NOERROR/NODATA).
"""
import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsStub:
    def __init__(self, zone, host="127.0.0.1"):
        self.zone = {k.lower(): v for k, v in zone.items()}
        self.host = host
        self.queries = []

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                q = dns.message.from_wire(data)
            except Exception:   # noqa: BLE001 - garbage: ignore
                continue
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            qq = q.question[0]
            name = qq.name.to_text().lower()
            self.queries.append((name, dns.rdatatype.to_text(qq.rdtype)))
            entry = self.zone.get(name)
            if entry is None:
                r.set_rcode(dns.rcode.NXDOMAIN)
            elif entry == "SERVFAIL":
                r.set_rcode(dns.rcode.SERVFAIL)
            else:
                t = dns.rdatatype.to_text(qq.rdtype)
                vals = entry.get(t, [])
                if vals:
                    texts = ["%d %s" % v for v in vals] if t == "MX" else list(vals)
                    r.answer.append(dns.rrset.from_text(qq.name, 60, dns.rdataclass.IN, t,
                                                        *texts))
            try:
                self.sock.sendto(r.to_wire(), peer)
            except OSError:
                return
