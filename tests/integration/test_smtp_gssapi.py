#!/usr/bin/env python3
"""AUTH GSSAPI (Kerberos, RFC 4752) on an Integrated connector, against a throwaway MIT KDC.

The test writes its own krb5.conf and kdc.conf in a temp dir, creates the realm EXAMPLE.TEST
(principals alice -- uid=alice in the example directory --, nosuchuser -- in no directory --
and the service smtp/node1.example.com, whose key goes to a keytab), runs krb5kdc -n on a free
loopback port and stops it by pid. The node gets KRB5_CONFIG in its environment and
gssapi_keytab / gssapi_realm / hostname in its bootstrap; "Client node1" gets Integrated.
The client side is python3-gssapi over a raw SMTP socket (rnnode.Client), with alice's TGT
from kinit in a temp ccache. Cases: no keytab -> GSSAPI offered nowhere; a realm other than
gssapi_realm -> 535 5.7.3; alice -> 235 and her rights (relay through Client node1); a
principal not in the directory -> 535 5.7.3; a connector without Integrated -> not in EHLO
and 504 5.7.4; the directory down during the mapping -> 454 4.7.0.
"""
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import AUTH_BAD, AUTH_TEMP, NOMECH, OK_AUTH, Client, b64, eventually  # noqa: E402

REALM = "EXAMPLE.TEST"
FQDN = "node1.example.com"
PW = {"alice": "alice-Krb-2026", "nosuchuser": "nosuch-Krb-2026"}
src = rnnode.Sources("127.0.6")


class KDC:
    """An MIT KDC for EXAMPLE.TEST in a temp dir, on a free 127.0.0.1 port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rn-krb5-")
        self.port = rntest.free_port()
        self.proc = None
        self.conf = os.path.join(self.dir, "krb5.conf")
        # The same realms, default realm OTHER.TEST: the gssapiv2 plugin then names alice
        # "alice@EXAMPLE.TEST" (it drops only the default realm).
        self.conf_other = os.path.join(self.dir, "krb5-other.conf")
        self.kdc_conf = os.path.join(self.dir, "kdc.conf")
        self.keytab = os.path.join(self.dir, "smtp.keytab")
        self.env = dict(os.environ, KRB5_CONFIG=self.conf, KRB5_KDC_PROFILE=self.kdc_conf,
                        KRB5RCACHETYPE="none", KRB5_TRACE="/dev/null")

    def ccache(self, user):
        return "FILE:" + os.path.join(self.dir, "cc." + user)

    def _run(self, args, input=None):
        p = subprocess.run(args, input=input, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("%s failed (rc %d): %s" % (" ".join(args), p.returncode,
                                                          p.stdout.decode(errors="replace")))
        return p.stdout.decode(errors="replace")

    def start(self):
        d, port = self.dir, self.port
        for path, default in ((self.conf, REALM), (self.conf_other, "OTHER.TEST")):
            with open(path, "w") as f:
                f.write("[libdefaults]\n default_realm = %s\n dns_lookup_kdc = false\n"
                        " dns_lookup_realm = false\n rdns = false\n"
                        " dns_canonicalize_hostname = false\n udp_preference_limit = 1\n\n"
                        "[realms]\n %s = {\n  kdc = 127.0.0.1:%d\n }\n\n"
                        "[domain_realm]\n %s = %s\n" % (default, REALM, port, FQDN, REALM))
        with open(self.kdc_conf, "w") as f:
            f.write("[kdcdefaults]\n kdc_listen = 127.0.0.1:%d\n kdc_tcp_listen = 127.0.0.1:%d\n\n"
                    "[realms]\n %s = {\n  database_name = %s/principal\n"
                    "  key_stash_file = %s/stash\n  acl_file = %s/kadm5.acl\n"
                    "  supported_enctypes = aes256-cts-hmac-sha1-96:normal\n }\n\n"
                    "[logging]\n kdc = FILE:%s/kdc.log\n" % (port, port, REALM, d, d, d, d))
        # The in-process client (python3-gssapi's libkrb5) reads the same configuration.
        os.environ.update(KRB5_CONFIG=self.conf, KRB5RCACHETYPE="none")
        self._run(["/usr/sbin/kdb5_util", "create", "-s", "-r", REALM, "-P", "master-pw"])
        for user, pw in PW.items():
            self._run(["/usr/sbin/kadmin.local", "-r", REALM, "-q",
                       "addprinc -pw %s %s@%s" % (pw, user, REALM)])
        svc = "smtp/%s@%s" % (FQDN, REALM)
        self._run(["/usr/sbin/kadmin.local", "-r", REALM, "-q", "addprinc -randkey " + svc])
        self._run(["/usr/sbin/kadmin.local", "-r", REALM, "-q",
                   "ktadd -k %s %s" % (self.keytab, svc)])
        self.proc = subprocess.Popen(["/usr/sbin/krb5kdc", "-n", "-r", REALM], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        if not rnnode.wait_port("127.0.0.1", port, timeout=10):
            raise RuntimeError("krb5kdc never listened on %d" % port)
        return self

    def kinit(self, user):
        env = dict(self.env, KRB5CCNAME=self.ccache(user))
        p = subprocess.run(["/usr/bin/kinit", "%s@%s" % (user, REALM)],
                           input=(PW[user] + "\n").encode(), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("kinit %s: %s" % (user, p.stdout.decode(errors="replace")))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def gssapi_auth(port, kdc, user, authzid=b""):
    """AUTH GSSAPI as user (TGT in its ccache) on a fresh session, asking for authzid in the
    RFC 4752 final message: (final reply, client). The caller closes the client."""
    import gssapi
    creds = gssapi.Credentials(usage="initiate", store={"ccache": kdc.ccache(user)})
    target = gssapi.Name("smtp@" + FQDN, gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=target, creds=creds, usage="initiate",
                                 flags=gssapi.RequirementFlag.mutual_authentication
                                 | gssapi.RequirementFlag.integrity)
    cl = Client("127.0.0.1", port, source=src(), timeout=10)
    cl.ehlo()
    r = cl.cmd("AUTH GSSAPI " + b64(ctx.step()))
    for _ in range(6):
        if not r.startswith("334"):
            return r, cl
        data = base64.b64decode(r[4:].strip())
        if not ctx.complete:
            out = ctx.step(data) or b""
        elif data:
            # RFC 4752 §3.1: the server's 4 octets (layers, max size); we take no layer.
            layers = ctx.unwrap(data).message
            if len(layers) != 4 or not layers[0] & 1:
                return "server offers no 'no security layer': %r" % layers, cl
            out = ctx.wrap(b"\x01\x00\x00\x00" + authzid, False).message
        else:
            out = b""
        r = cl.cmd(b64(out))
    return r, cl


def auth_reply(port, kdc, user, authzid=b""):
    r, cl = gssapi_auth(port, kdc, user, authzid)
    cl.close()
    return r


def ehlo_auth(port, source=None):
    with Client("127.0.0.1", port, source=source or src(), timeout=10) as cl:
        lines = cl.cmd_lines("EHLO client.test")
        auth = [ln[4:] for ln in lines if ln[4:].upper().startswith("AUTH")]
        r = cl.cmd("AUTH GSSAPI")
    return (auth[0] if auth else None), r


def restart(E, kdc, extra, krb5_conf=None):
    """Restart the node with the bootstrap's gssapi keys replaced by extra and KRB5_CONFIG
    (kdc.conf unless krb5_conf)."""
    E.node.stop()
    E.save_log()
    with open(E.conf) as f:
        lines = [ln for ln in f.read().splitlines()
                 if not ln.split("=")[0].strip() in ("gssapi_keytab", "gssapi_realm", "hostname")]
    lines += ["%s = %s" % kv for kv in extra.items()]
    with open(E.conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    E.node = rnnode.Node(E.conf, ports=[E.smtp_port, E.sub_port],
                         env={"KRB5_CONFIG": krb5_conf or kdc.conf, "KRB5RCACHETYPE": "none"})
    E.node.start()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    kdc = KDC()
    try:
        kdc.start()
        kdc.kinit("alice")
        kdc.kinit("nosuchuser")
        with rnnode.Env("smtp_gssapi") as E:
            mechs = E.connector_attr("Client node1", "relayAuthMechanism")
            E.modify_connector("Client node1", {"relayAuthMechanism": mechs + ["Integrated"]})
            E.node.reload()

            # 1. No keytab: GSSAPI is offered nowhere, even on an Integrated connector.
            restart(E, kdc, {"hostname": FQDN})
            auth, r = ehlo_auth(E.sub_port)
            t.eq(auth, None, "no gssapi_keytab: Client node1 (Integrated) offers no AUTH "
                             "before STARTTLS")
            t.eq(r, NOMECH, "no gssapi_keytab: AUTH GSSAPI gets 504 5.7.4")

            # 2. A keytab but a realm other than the principal's: 535, fail closed -- whether
            # the plugin names alice with her realm (node default realm OTHER.TEST) or
            # without it (node default realm EXAMPLE.TEST).
            other = {"hostname": FQDN, "gssapi_keytab": kdc.keytab, "gssapi_realm": "OTHER.TEST"}
            restart(E, kdc, other, krb5_conf=kdc.conf_other)
            ok = eventually(lambda: ehlo_auth(E.sub_port)[0] == "AUTH GSSAPI", 10, 0.3)
            t.ok(ok, "keytab set: Client node1 offers AUTH GSSAPI", ehlo_auth(E.sub_port))
            t.eq(auth_reply(E.sub_port, kdc, "alice"), AUTH_BAD,
                 "alice@EXAMPLE.TEST with gssapi_realm = OTHER.TEST: 535 5.7.3")
            t.ok(eventually(lambda: "principal alice@EXAMPLE.TEST is not in realm OTHER.TEST" in E.node.log(), 10),
                 "logged: not in realm OTHER.TEST", E.node.log_tail(5))
            restart(E, kdc, dict(other, gssapi_realm=REALM), krb5_conf=kdc.conf_other)
            t.eq(auth_reply(E.sub_port, kdc, "alice"), OK_AUTH,
                 "alice@EXAMPLE.TEST with gssapi_realm = EXAMPLE.TEST, node default realm "
                 "OTHER.TEST: 235")
            restart(E, kdc, other)
            t.eq(auth_reply(E.sub_port, kdc, "alice"), AUTH_BAD,
                 "alice of the node's default realm EXAMPLE.TEST, gssapi_realm = OTHER.TEST: "
                 "535 5.7.3")
            restart(E, kdc, {"hostname": FQDN, "gssapi_keytab": kdc.keytab})
            t.eq(auth_reply(E.sub_port, kdc, "alice"), AUTH_BAD,
                 "gssapi_realm empty: GSSAPI logins are refused (535 5.7.3)")

            # 3. The right realm.
            restart(E, kdc, {"hostname": FQDN, "gssapi_keytab": kdc.keytab,
                             "gssapi_realm": REALM})
            auth, r = ehlo_auth(E.sub_port)
            t.eq(auth, "AUTH GSSAPI", "Client node1 EHLO: AUTH GSSAPI (PLAIN LOGIN need TLS)")
            r, cl = gssapi_auth(E.sub_port, kdc, "alice")
            t.eq(r, OK_AUTH, "alice: AUTH GSSAPI succeeds")
            if r == OK_AUTH:
                t.eq(cl.cmd("AUTH GSSAPI"), "503 5.5.2 Auth command already specified",
                     "a second AUTH: 503")
                t.eq(cl.cmd("MAIL FROM:<alice@example.com>"), "250 2.1.0 Sender OK",
                     "alice: MAIL accepted")
                t.eq(cl.cmd("RCPT TO:<someone@outside.example>"), "250 2.1.5 Recipient OK",
                     "alice may relay through Client node1 (Authenticated Users' rights)")
            cl.close()
            # The log is written by its own thread: wait for the line.
            t.ok(eventually(lambda: 'login=alice@EXAMPLE.TEST mechanism=GSSAPI user="uid=alice,'
                            in E.node.log(), 10),
                 "logged: smtp auth login=alice@EXAMPLE.TEST mechanism=GSSAPI user=<dn>",
                 E.node.log_tail(10))
            t.eq(auth_reply(E.sub_port, kdc, "alice", b"alice"), OK_AUTH,
                 "alice with authzid 'alice' (her own name): 235")
            t.eq(auth_reply(E.sub_port, kdc, "alice", b"bob"), AUTH_BAD,
                 "alice asking to act as bob (authzid 'bob', no proxy authorization): 535")
            t.eq(auth_reply(E.sub_port, kdc, "nosuchuser"), AUTH_BAD,
                 "a principal of the realm that is not in the directory: 535 5.7.3")
            auth, r = ehlo_auth(E.smtp_port)
            t.ok(auth is None or "GSSAPI" not in auth.upper(),
                 "Default node1 (no Integrated): no GSSAPI in EHLO", auth)
            t.eq(r, NOMECH, "Default node1: AUTH GSSAPI gets 504 5.7.4")
            t.eq(auth_reply(E.smtp_port, kdc, "alice"), NOMECH,
                 "Default node1: AUTH GSSAPI with a valid initial token gets 504 5.7.4")

            # 4. The directory unreachable during the mapping: 454, not 535.
            # slapd stopped by its pid (the fixture's dir, with the node's log, stays; Env's
            # __exit__ still runs the fixture's stop).
            pid = int(open(os.path.join(E.dir, "slapd.pid")).read().strip())
            os.kill(pid, signal.SIGTERM)
            t.ok(eventually(lambda: not rntest.pid_alive(pid), 10), "slapd stopped")
            t.eq(auth_reply(E.sub_port, kdc, "alice"), AUTH_TEMP,
                 "directory down during the mapping: 454 4.7.0")
            t.ok(eventually(lambda: "auth-tempfail" in E.node.log(), 10),
                 "logged: smtp auth-tempfail",
                 E.node.log_tail(5))
            rc = E.node.stop()
            t.ok(rc == 0, "node exits 0", E.node.log_tail(5))
    except Exception as e:  # noqa: BLE001 -- reported as a TAP failure
        import traceback
        t.ok(False, "no exception", "%s\n%s" % (e, traceback.format_exc()))
    finally:
        kdc.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
