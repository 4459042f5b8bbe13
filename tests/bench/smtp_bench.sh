#!/usr/bin/env bash
# Throughput of relaynode against Postfix in the same run (issue #5). A benchmark, never a
# test: it prints figures and ratios and asserts nothing.
#
#   tests/bench/smtp_bench.sh [BUILD_DIR]      (default build/, the -O2 tree)
#   BENCH_N=2000 BENCH_CLIENTS="1 10 50"      messages per run, concurrency levels
#
# Both relays get the same load from Postfix's smtp-source (2 KB messages) and relay to the
# same smtp-sink on loopback. Both keep their durability: relaynode commits with fsync
# (group commit) before 250, Postfix fsyncs its queue files by default. "acknowledged/s" is
# N over smtp-source's wall time; "delivered/s" is N over the time until the relay's queue
# is empty again (first message sent to last one handed to the sink).
# Postfix runs as a private instance (its own config and queue directories under a temp
# dir; the system's Postfix is never touched). Debian's postfix is installed if missing.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-build}
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
N=${BENCH_N:-2000}
CLIENTS=${BENCH_CLIENTS:-"1 10 50"}
FREEPORT="/usr/bin/python3 $ROOT/deploy/slapd/freeport.py"
W=$(mktemp -d /tmp/smtp_bench.XXXXXX)
chmod 755 "$W"          # postfix (its own user) must reach its data directory
NODE_PID= SINK_PID=

cleanup() {
  [ -n "$NODE_PID" ] && kill -TERM "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
  [ -f "$W/pf/etc/main.cf" ] && postfix -c "$W/pf/etc" stop >/dev/null 2>&1
  bash "$ROOT/deploy/slapd/fixture.sh" stop "$W/dir" >/dev/null 2>&1
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v smtp-source >/dev/null || ! [ -x /usr/sbin/postfix ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null || {
    echo "smtp_bench: cannot install postfix"; exit 1; }
fi
[ -x "$B/relaynode" ] || { echo "smtp_bench: no $B/relaynode (make first)"; exit 1; }

read -r SINK PF_PORT < <($FREEPORT 0 0)
/usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$SINK" 1000 >/dev/null 2>&1 &
SINK_PID=$!

# -- Postfix, private instance ---------------------------------------------------------
PF=$W/pf
mkdir -p "$PF/etc" "$PF/spool" "$PF/data"
chown postfix "$PF/data"
cp /etc/postfix/master.cf "$PF/etc/master.cf"
sed -i "s|^smtp      inet  n       -       y       -       -       smtpd|127.0.0.1:$PF_PORT inet n - n - - smtpd|" "$PF/etc/master.cf"
cat >"$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.test
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK
smtpd_recipient_restrictions = permit_mynetworks, reject
smtp_dns_support_level = disabled
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
EOF
postfix -c "$PF/etc" start >/dev/null 2>&1 || { echo "smtp_bench: postfix did not start"; tail "$PF/maillog"; exit 1; }

# -- relaynode -------------------------------------------------------------------------
bash "$ROOT/deploy/slapd/fixture.sh" start "$W/dir" >/dev/null || exit 1
. "$W/dir/env"
ldapmodify -x -H "$SLAPD_URI" -D "$ADMIN_DN" -y "$ADMIN_PW_FILE" >/dev/null <<EOF
dn: cn=Bench sink,cn=Send Connectors,$RELAY_BASE
changetype: add
objectClass: relaySendConnector
cn: Bench sink
relayEnabled: TRUE
relayAddressSpace: example.com
relaySmartHost: 127.0.0.1:$SINK
relayCost: 1
EOF
"$B/relaynode" -c "$W/dir/relaynode.conf" --foreground >"$W/node.out" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && break
  sleep 0.1
done

now() { date +%s.%N; }
queue_count() {   # messages still in the relay's queue
  case $1 in
    relaynode) find "$W/dir/spool/queue" -type f 2>/dev/null | wc -l ;;
    postfix) find "$PF/spool/incoming" "$PF/spool/active" "$PF/spool/deferred" \
               "$PF/spool/maildrop" -type f 2>/dev/null | wc -l ;;
  esac
}

declare -A ACK DLV
for relay in relaynode postfix; do
  port=$SMTP_PORT; [ $relay = postfix ] && port=$PF_PORT
  for c in $CLIENTS; do
    t0=$(now)
    /usr/sbin/smtp-source -s "$c" -m "$N" -l 2048 -f bench@outside.example \
      -t alice@example.com "127.0.0.1:$port" >/dev/null 2>&1
    t1=$(now)
    end=$(( $(date +%s) + 120 ))
    while [ "$(queue_count $relay)" -gt 0 ] && [ "$(date +%s)" -lt $end ]; do sleep 0.02; done
    t2=$(now)
    ACK[$relay,$c]=$(echo "$N / ($t1 - $t0)" | bc -l)
    if [ "$(queue_count $relay)" -gt 0 ]; then DLV[$relay,$c]=0; else
      DLV[$relay,$c]=$(echo "$N / ($t2 - $t0)" | bc -l); fi
  done
done

fs=$(df -T "$W" | awk 'NR==2 {print $2}')
echo "# smtp_bench: $N messages of 2 KB per run; $(nproc) cpu(s), kernel $(uname -r), spool fs $fs"
printf '%-10s %8s %14s %12s\n' relay clients acknowledged/s delivered/s
for relay in relaynode postfix; do
  for c in $CLIENTS; do
    printf '%-10s %8s %14.0f %12.0f\n' $relay "$c" "${ACK[$relay,$c]}" "${DLV[$relay,$c]}"
  done
done
echo "# ratios relaynode/postfix"
for c in $CLIENTS; do
  printf 'clients %-3s acknowledged x%.2f   delivered x%.2f\n' "$c" \
    "$(echo "${ACK[relaynode,$c]} / ${ACK[postfix,$c]}" | bc -l)" \
    "$(echo "${DLV[relaynode,$c]} / (${DLV[postfix,$c]} + 0.000001)" | bc -l)"
done
commits=$(grep -c " smtp queued " "$W/dir/relaynode.log" 2>/dev/null)
echo "# relaynode queued $commits messages in total"
