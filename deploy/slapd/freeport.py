#!/usr/bin/python3
"""Free TCP ports for fixtures: `freeport.py [PREFERRED...]` prints one port per argument
(or one port with no argument). A preferred port is kept when nothing listens on it;
otherwise, and for 0, a random port in 20000-32767 is taken: below Linux's ephemeral range
(32768+), so an outgoing connection's local port cannot collide with a listener the node
opens later. A port counts as free when it can be bound on 0.0.0.0 and on [::] (the
example connectors bind both). Ports printed by one call are distinct."""
import random
import socket
import sys

LOW, HIGH = 20000, 32767


def is_free(port):
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
        except OSError:
            if fam == socket.AF_INET6 and not socket.has_ipv6:
                continue
            return False
        finally:
            s.close()
    return True


def free_port(prefer=0, exclude=()):
    """prefer if it is free (and not excluded), else a free random port in LOW..HIGH."""
    if prefer and prefer not in exclude and is_free(prefer):
        return prefer
    rng = random.SystemRandom()
    for _ in range(200):
        p = rng.randint(LOW, HIGH)
        if p not in exclude and is_free(p):
            return p
    raise OSError("no free TCP port found in %d-%d" % (LOW, HIGH))


if __name__ == "__main__":
    taken = []
    for arg in sys.argv[1:] or ["0"]:
        taken.append(free_port(int(arg), taken))
    print(" ".join(str(p) for p in taken))
