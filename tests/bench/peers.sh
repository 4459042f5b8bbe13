# Peers of tests/bench/smtp_bench.sh besides Postfix: OpenSMTPD and Exim, from Debian's packages.
# Sourced by smtp_bench.sh (uses its W, B, SINK, say, die, and stop_pid from tests/bench/sink.sh);
# not run alone.
#
# Why unpacked, not installed: postfix, opensmtpd and exim4-daemon-light all provide Debian's
# "mail-transport-agent" and conflict (`apt-get -s install opensmtpd` removes postfix), so only
# Postfix, already the bench's first peer, is installed. The other two are fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` into $B/bench-peers/ (binaries only: no
# maintainer script runs, no user is added, no service is configured or started). The one
# library they need that is not already on a relaynode build machine (libidn12, for exim4) is
# unpacked there too and found through LD_LIBRARY_PATH. Idempotent: an unpacked tree is reused.
#
# Why a mount namespace: both binaries have compiled-in paths and users. OpenSMTPD wants users
# opensmtpd and opensmtpq, its queue in /var/spool/smtpd, its chroot /var/lib/opensmtpd/empty
# and its control socket /var/run/smtpd.sock; Exim wants user Debian-exim. Each peer is run
# by `unshare --mount --propagation private`, in which private copies of /etc/passwd and
# /etc/group (the system's, plus those users) and directories of the temp dir are bind-mounted
# over those paths. Outside that process nothing changes: no user, no directory, no service
# on the system. Queues stay on the same file system as relaynode's and Postfix's (the temp
# dir), so the fsyncs are comparable.
#
# Durability: each one's own default, kept (nothing here turns fsync on or off). Checked with
# `strace -f -e trace=fsync,fdatasync,write,rename` on every process of each, one message:
#   Exim       fsync()s its spool files (3 calls) before it writes "250 OK id=..."; then a
#              child delivers at once. Durable before 250, like relaynode and Postfix.
#   OpenSMTPD  (6.8.0p2) calls neither fsync nor fdatasync anywhere on the way to its 250: the
#              message is written, then renamed from incoming/ into queue/. It has no option to
#              sync its queue, so its figures are for a relay that may lose acknowledged mail
#              on a power cut: not like for like, and the report says so.
# What is changed is capacity only, as for Postfix: Exim's cap of 20 concurrent sessions raised
# to 1000 (smtp-source opens up to 50 from one address) and its per-connection caps (1000
# messages; immediate delivery only for the first 10) lifted, which matters only to a client
# that sends many messages a session (smtp-source opens one session a message). No DNS, no
# ident, no TLS towards the sink (smtp-sink offers no STARTTLS); OpenSMTPD still looks up the
# client's PTR in each session (not configurable), and Exim, after QUIT, corks the socket and
# waits up to 200 ms for more pipelined input before its 221 (seen with strace), which bounds
# one smtp-source session (which waits for the 221) to about 4 a second.
#
# Exim re-execs itself for each delivery as Debian-exim. The unpacked exim4 has its setuid bit
# cleared (the bench starts it as root; a setuid binary would make the loader ignore
# LD_LIBRARY_PATH) and exim_path names a two-line wrapper that sets the library path. Tried
# with libidn12 installed and exim_path on the binary itself: no faster (11.8 s wrapped,
# 14.2 s direct, 200 messages from 10 clients, load average 8-9), so the wrapper stays.

PEER_PREFIX=''
peers_install() {
  PEER_PREFIX="$B/bench-peers"
  local want="$PEER_PREFIX/usr/sbin/smtpd $PEER_PREFIX/usr/sbin/exim4" f ok=1
  for f in $want; do [ -x "$f" ] || ok=''; done
  if [ -z "$ok" ]; then
    say "unpacking Debian's opensmtpd and exim4-daemon-light into $PEER_PREFIX (not installed)"
    local dl="$PEER_PREFIX.dl"
    rm -rf "$dl" "$PEER_PREFIX" && mkdir -p "$dl" "$PEER_PREFIX" && chmod 777 "$dl"
    (cd "$dl" && apt-get download -q opensmtpd exim4-daemon-light libidn12 >download.out 2>&1) ||
      die "apt-get download failed: $(tail -n 3 "$dl/download.out")"
    for f in "$dl"/*.deb; do
      dpkg-deb -x "$f" "$PEER_PREFIX" || die "dpkg-deb -x $f failed"
      echo "$(dpkg-deb -f "$f" Package) $(dpkg-deb -f "$f" Version)" >>"$PEER_PREFIX/VERSIONS"
    done
    rm -rf "$dl"
    # Binaries and libraries only: the rest (etc/init.d, cron.d, man pages, ...) is the system
    # MTA's, and a directory named *.d under a build tree would be read by the Makefile.
    find "$PEER_PREFIX" -mindepth 1 -maxdepth 1 ! -name usr ! -name VERSIONS -exec rm -rf {} +
    find "$PEER_PREFIX/usr" -mindepth 1 -maxdepth 1 ! -name sbin ! -name lib -exec rm -rf {} +
    # The package's exim4 is setuid root; as such the loader ignores LD_LIBRARY_PATH when
    # exim re-execs itself as Debian-exim to deliver. The bench starts it as root anyway.
    chmod u-s,g-s "$PEER_PREFIX/usr/sbin/exim4" "$PEER_PREFIX/usr/sbin/smtpctl"
  fi
  for f in $want; do [ -x "$f" ] || die "no $f after unpacking"; done
  export LD_LIBRARY_PATH="$PEER_PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  OS_VERSION=$(awk '$1 == "opensmtpd" {print $2}' "$PEER_PREFIX/VERSIONS")
  EXIM_VERSION=$(awk '$1 == "exim4-daemon-light" {print $2}' "$PEER_PREFIX/VERSIONS")
}

# A uid and gid free in the system's files, from $1 downward.
free_id() {
  local id=$1
  while getent passwd "$id" >/dev/null || getent group "$id" >/dev/null; do id=$((id - 1)); done
  echo "$id"
}

# Private passwd/group under dir $1 with users "$2..." (name:home), each its own group; and a
# private resolv.conf naming 127.0.0.1 only, so no DNS query (OpenSMTPD's PTR lookup of each
# client) leaves loopback: nothing listens there, the query fails at once.
private_users() {
  local d=$1 u name home id=64990
  shift
  cp /etc/passwd "$d/passwd" && cp /etc/group "$d/group" || die "cannot copy /etc/passwd"
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$d/resolv.conf"
  for u in "$@"; do
    name=${u%%:*} home=${u#*:}
    id=$(free_id "$id")
    echo "$name:x:$id:$id::$home:/usr/sbin/nologin" >>"$d/passwd"
    echo "$name:x:$id:" >>"$d/group"
    id=$((id - 1))
  done
}
uid_in() { awk -F: -v u="$2" '$1 == u {print $3}' "$1/passwd"; }

# Run "$@" in a private mount namespace with binds "src:dst ..." from $BINDS; sets PEER_PID.
run_private() {
  local m='' b
  for b in $BINDS; do m="$m mount --bind ${b%%:*} ${b#*:} &&"; done
  unshare --mount --propagation private sh -c "$m exec \"\$@\"" peer "$@" &
  PEER_PID=$!
}

wait_port() {
  local i
  for ((i = 0; i < 150; i++)); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# -- OpenSMTPD -------------------------------------------------------------------------
OS_PID='' OS=''
opensmtpd_start() {
  OS=$W/os
  mkdir -p "$OS/etc" "$OS/spool" "$OS/varlib/opensmtpd/empty" "$OS/run"
  chmod 755 "$OS" "$OS/spool" "$OS/varlib" "$OS/run"
  private_users "$OS/etc" opensmtpd:/var/lib/opensmtpd/empty opensmtpq:/var/lib/opensmtpd/empty
  # Relay everything from loopback to the sink; no TLS, no DNS (a literal host).
  cat >"$OS/etc/smtpd.conf" <<EOF
listen on 127.0.0.1 port $OS_PORT hostname opensmtpd.bench.invalid
action "sink" relay host smtp://127.0.0.1:$SINK
match from local for any action "sink"
EOF
  chmod 644 "$OS/etc/smtpd.conf"
  BINDS="$OS/etc/passwd:/etc/passwd $OS/etc/group:/etc/group $OS/spool:/var/spool"
  BINDS="$BINDS $OS/etc/resolv.conf:/etc/resolv.conf"
  BINDS="$BINDS $OS/varlib:/var/lib $OS/run:/run"
  run_private "$PEER_PREFIX/usr/sbin/smtpd" -d -f "$OS/etc/smtpd.conf" >"$OS/smtpd.log" 2>&1
  OS_PID=$PEER_PID
  wait_port "$OS_PORT" "$OS_PID" || die "opensmtpd did not start: $(tail -n 5 "$OS/smtpd.log")"
}
opensmtpd_stop() { stop_pid "$OS_PID" 100; OS_PID=''; }

# -- Exim ------------------------------------------------------------------------------
EXIM_PID='' EX=''
exim_start() {
  EX=$W/exim
  mkdir -p "$EX/etc" "$EX/spool" "$EX/log"
  chmod 755 "$EX"
  private_users "$EX/etc" Debian-exim:/nonexistent
  local uid; uid=$(uid_in "$EX/etc" Debian-exim)
  chown "$uid:$uid" "$EX/spool" "$EX/log"
  cat >"$EX/etc/exim.conf" <<EOF
primary_hostname = exim.bench.invalid
# Exim re-execs itself to deliver, with an empty environment: a wrapper that sets the
# unpacked library path and runs the unpacked binary.
exim_path = $EX/exim4
keep_environment =
spool_directory = $EX/spool
log_file_path = $EX/log/%slog
pid_file_path = $EX/exim.pid
local_interfaces = 127.0.0.1
daemon_smtp_ports = $EXIM_PORT
hostlist relay_from_hosts = 127.0.0.0/8
acl_smtp_rcpt = acl_rcpt
host_lookup =
rfc1413_hosts =
smtp_accept_max = 1000
smtp_accept_max_per_connection = 0
smtp_accept_queue_per_connection = 0

begin acl
acl_rcpt:
  accept hosts = +relay_from_hosts
  deny message = relay not permitted

begin routers
sink:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = to_sink

begin transports
to_sink:
  driver = smtp
  port = $SINK
  allow_localhost
  hosts_avoid_tls = *

begin retry
* * F,1h,10s
EOF
  chmod 644 "$EX/etc/exim.conf"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$LD_LIBRARY_PATH" \
    "$PEER_PREFIX/usr/sbin/exim4" >"$EX/exim4"
  chmod 755 "$EX/exim4"
  BINDS="$EX/etc/passwd:/etc/passwd $EX/etc/group:/etc/group"
  BINDS="$BINDS $EX/etc/resolv.conf:/etc/resolv.conf"
  # -bdf: daemon in the foreground; -q10s: a queue runner for anything deferred.
  run_private "$EX/exim4" -C "$EX/etc/exim.conf" -bdf -q10s >"$EX/exim.out" 2>&1
  EXIM_PID=$PEER_PID
  wait_port "$EXIM_PORT" "$EXIM_PID" ||
    die "exim did not start: $(tail -n 5 "$EX/exim.out" "$EX/log/paniclog" "$EX/log/mainlog" 2>/dev/null)"
}
exim_stop() { stop_pid "$EXIM_PID" 100; EXIM_PID=''; }
