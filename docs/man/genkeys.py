#!/usr/bin/python3
"""Generate the KEYS section of relaynode.conf(5) from the bootstrap table, so the page
cannot drift from the keys the node accepts.

  docs/man/genkeys.py RELAYNODE [--page FILE]            rewrite the section in FILE
  docs/man/genkeys.py RELAYNODE [--page FILE] --check    exit 1 (with a diff) if it differs

RELAYNODE is a built relaynode binary; FILE defaults to docs/man/relaynode.conf.5. The
section is the text between the `.\\" BEGIN KEYS` and `.\\" END KEYS` comment lines.

How it works: read_keys() runs `RELAYNODE --help-config` (no -c, so every value printed is
the built-in default) and parses each line `key = value # doc` into a Key. The table
(directory/bootstrap.c) gives key, default and doc; the type and range of each key come from
TYPES below until the table itself carries them: then read_keys() should take them from the
binary's output and TYPES shrink to nothing. A key the binary prints that TYPES lacks, or a
TYPES entry the binary does not print (and PENDING does not excuse), is an error, so a new,
renamed or removed key fails `--check` (tests/integration/test_packaging.py) until this file
and the page are updated. PENDING documents keys announced for the next version (their
daemon side is not in every build); each is rendered from its entry here until the binary
prints it, after which the binary's default and doc win and the entry should be removed.
"""
import argparse
import difflib
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN = '.\\" BEGIN KEYS'
END = '.\\" END KEYS'

# key: (type shown in the page, range or allowed values or None). Ranges are what the node
# accepts today (node/daemon.c parse_num, directory/ldap/ldapdir.c, node/delivery/).
TYPES = {
    "uri": ("URI list", "ldap://, ldaps:// or ldapi:// URIs, space-separated"),
    "bind_dn": ("DN", None),
    "bind_password_file": ("path", None),
    "sasl_mech": ("word", "empty or EXTERNAL"),
    "base_dn": ("DN", None),
    "user_base": ("DN", None),
    "user_filter": ("LDAP filter", "RFC 4515; every %s is replaced"),
    "node": ("name", None),
    "hostname": ("FQDN", None),
    "spool_dir": ("path", None),
    "log": ("target", "stderr, syslog or an absolute file path"),
    "user": ("user name", None),
    "group": ("group name", None),
    "ldap_ca_file": ("path", None),
    "ldap_starttls": ("boolean", "yes or no"),
    "allow_cleartext_directory": ("boolean", "yes or no"),
    "ldap_timeout": ("seconds", "1..3600"),
    "tls_cert": ("path", None),
    "tls_key": ("path", None),
    "tls_ca_file": ("path", None),
    "tls_cert_dir": ("path", None),
    "cluster_bind": ("ZeroMQ endpoint", "tcp://HOST:PORT"),
    "protocol_log_dir": ("path", None),
    "max_command_line": ("octets", "64..1048576"),
    "max_text_line": ("octets", "64..1048576"),
    "drain_timeout": ("seconds", "0..86400"),
    "max_sessions": ("integer", "0..1000000"),
    "dns_server": ("address list", "IP[:PORT], comma-separated"),
    "queue_lifetime": ("seconds", "1..31536000"),
    "retry_min": ("seconds", "1..86400"),
    "retry_max": ("seconds", "1..604800"),
    "delivery_concurrency": ("integer", "1..10000"),
    "mx_port": ("port", "1..65535"),
    "queue_hold": ("boolean", "yes or no"),
    "smarthost_auth_file": ("path", None),
    "spool_reserve": ("bytes", "0..18446744073709551615"),
    "max_stale": ("seconds", "0..31536000"),
    "cluster_secret_key_file": ("path", None),
    "cluster_heartbeat_ms": ("milliseconds", "50..60000"),
    "directory_watch": ("word", "auto, persist, poll or off"),
    "directory_poll_interval": ("seconds", "1..3600"),
    "gssapi_keytab": ("path", None),
    "gssapi_service": ("name", None),
    "gssapi_realm": ("realm", None),
    "metrics_listen": ("address", "PORT, IPv4:PORT or [IPv6]:PORT; empty = off"),
    "milter": ("endpoints", None),
    "milter_connect_timeout": ("seconds", "1..300"),
    "milter_command_timeout": ("seconds", "1..3600"),
    "milter_default_action": ("word", "tempfail, accept or reject"),
    "directory_profile": ("word", "relay or ad"),
    "ad_server": ("name", None),
    "directory_ad_poll_ms": ("milliseconds", "50..60000"),
}

# Defaults the table computes at run time: the binary prints this host's value.
COMPUTED = {"hostname": "the system host name (gethostname(2))"}

# key: (type, range, default, doc, after which key it is listed). Announced keys whose
# daemon side comes with the next version (see the module docstring).
PENDING = {}


class Key:
    def __init__(self, name, default, doc, typ=None, rng=None, computed=None):
        self.name, self.default, self.doc = name, default, doc
        self.typ, self.rng, self.computed = typ, rng, computed


LINE = re.compile(r"^(\S+)\s+= (.*?)\s*# (.*)$")
TYPED = re.compile(r"^(.*?)\s*\[([^\[\]]*);[^\[\]]*\]$")


def read_keys(binary):
    """The keys in table order, with type and range filled in from TYPES (and PENDING
    appended after their anchor). Raises ValueError on any mismatch."""
    r = subprocess.run([binary, "--help-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        raise ValueError("%s --help-config exited %d: %s" % (binary, r.returncode,
                                                              r.stderr.decode(errors="replace")))
    keys, errors = [], []
    for line in r.stdout.decode().splitlines():
        if not line.strip():
            continue
        m = LINE.match(line)
        if not m:
            raise ValueError("cannot parse --help-config line: %r" % line)
        name, default, doc = m.group(1), m.group(2).strip(), m.group(3).strip()
        # The binary's typed table ends each line with "[TYPE RANGE; READERS]": its range is
        # the one the page shows, so the page cannot drift from what the node accepts.
        bm = TYPED.match(doc)
        brange = None
        if bm:
            doc = bm.group(1).strip()
            rm = re.search(r"(\d+\.\.\d+)", bm.group(2))
            brange = rm.group(1) if rm else None
        if name not in TYPES:
            if name in PENDING:
                typ, rng = PENDING[name][0], PENDING[name][1]
            else:
                errors.append("key %s has no entry in TYPES (docs/man/genkeys.py)" % name)
                continue
        else:
            typ, rng = TYPES[name]
        if brange:
            rng = brange
        keys.append(Key(name, default, doc, typ, rng, COMPUTED.get(name)))
    names = {k.name for k in keys}
    for name in TYPES:
        if name not in names:
            errors.append("TYPES names %s, which %s --help-config does not print"
                          % (name, binary))
    if errors:
        raise ValueError("\n".join(errors))
    for name, (typ, rng, default, doc, after) in PENDING.items():
        if name in names:
            continue
        at = next((i for i, k in enumerate(keys) if k.name == after), len(keys) - 1)
        keys.insert(at + 1, Key(name, default, doc, typ, rng))
    return keys


def roff_text(s, width=80):
    """Text lines of at most width octets (roff fills them again), each sentence on a new
    line: backslashes escaped, an abbreviation's period marked as not ending a sentence, no
    control character at the start of a line."""
    s = s.replace("\\", "\\e")
    for abbr in ("e.g.", "i.e.", "etc."):
        s = s.replace(abbr + " ", abbr + "\\& ")
    lines = []
    for sentence in re.split(r"(?<=[.!?]) +(?=[A-Z])", s):      # new sentence, new line
        cur = ""
        for word in sentence.split():
            if cur and len(cur) + 1 + len(word) > width:
                lines.append(cur)
                cur = word
            else:
                cur = cur + " " + word if cur else word
        if cur:
            lines.append(cur)
    return ["\\&" + l if l[:1] in (".", "'") else l for l in lines]


def roff_arg(s):
    """One quoted macro argument."""
    return '"%s"' % s.replace("\\", "\\e").replace('"', '\\(dq')


def render(keys):
    out = [BEGIN + ": generated by docs/man/genkeys.py from `relaynode --help-config`;",
           '.\\" do not edit by hand: run docs/man/genkeys.py build/relaynode',
           ".Bl -tag -width Ds"]
    for k in keys:
        out.append(".It Cm %s No = Ar %s" % (k.name, roff_arg(k.typ)))
        out += roff_text(k.doc.rstrip(".") + ".")
        if k.rng:
            out += roff_text("Values: %s." % k.rng)
        if k.computed:
            out += roff_text("Default: %s." % k.computed)
        elif k.default:
            out.append("Default:")
            out.append(".Ql %s ." % roff_arg(k.default))
        else:
            out.append("Default: empty.")
    out += [".El", END]
    return out


def splice(page_lines, section):
    try:
        b = next(i for i, l in enumerate(page_lines) if l.startswith(BEGIN))
        e = next(i for i, l in enumerate(page_lines) if i > b and l.startswith(END))
    except StopIteration:
        raise ValueError("no %r ... %r lines in the page" % (BEGIN, END))
    return page_lines[:b] + section + page_lines[e + 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("relaynode")
    ap.add_argument("--page", default=os.path.join(HERE, "relaynode.conf.5"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    try:
        keys = read_keys(a.relaynode)
        with open(a.page) as f:
            old = f.read().splitlines()
        new = splice(old, render(keys))
    except (ValueError, OSError) as e:
        sys.stderr.write("genkeys: %s\n" % e)
        return 2
    if a.check:
        if new != old:
            sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(
                old, new, a.page, "generated", lineterm=""))
            sys.stderr.write("genkeys: %s is out of date: run docs/man/genkeys.py %s\n"
                             % (a.page, a.relaynode))
            return 1
        return 0
    if new != old:
        with open(a.page + ".new", "w") as f:
            f.write("\n".join(new) + "\n")
        os.replace(a.page + ".new", a.page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
