#!/usr/bin/env bash
# Throwaway certificates for Domain Secure tests and demos (never for production).
#   mkpartner.sh DIR [DOMAIN]   (DOMAIN default partner.example)
# makes, each leaf as NAME.pem (leaf + its CA) and NAME.key, EC P-256:
#   ca.pem, ca.key         the partner CA (the node's tls_ca_file)
#   partner                CN mail.DOMAIN, SAN mail.DOMAIN, DOMAIN, IP 127.0.0.1: valid 2 days
#   wrongname              CN mail.wrong.example (same CA): verifies, names another domain
#   expired                like partner, valid 2020-01-01 to 2020-01-02 (same CA)
#   otherca                like partner, signed by otherca/ca.pem, a CA the node does not trust
# Idempotent: an existing DIR/partner.pem keeps everything as it is.
set -euo pipefail
dir=${1:?usage: mkpartner.sh DIR [DOMAIN]}
dom=${2:-partner.example}
mkdir -p "$dir"
cd "$dir"
[ -s partner.pem ] && [ -s otherca.pem ] && exit 0
umask 077

mkca() {   # DIR NAME
  mkdir -p "$1"
  openssl ecparam -name prime256v1 -genkey -noout -out "$1/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$1/ca.key" -sha256 -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1/ca.pem" 2>/dev/null
  : >"$1/index.txt"
  echo 01 >"$1/serial"
  cat >"$1/ca.cnf" <<EOF
[ ca ]
default_ca = d
[ d ]
dir = $PWD/$1
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
default_md = sha256
policy = p
unique_subject = no
[ p ]
commonName = supplied
EOF
}

leaf() {   # CADIR NAME CN SAN [openssl ca validity options...]
  local cadir=$1 name=$2 cn=$3 san=$4
  shift 4
  openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" 2>/dev/null
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' \
    "$san" >"$name.ext"
  openssl ca -batch -notext -config "$cadir/ca.cnf" -in "$name.csr" -out "$name.crt" \
    -extfile "$name.ext" "$@" 2>/dev/null
  cat "$name.crt" "$cadir/ca.pem" >"$name.pem"
  rm -f "$name.csr" "$name.ext" "$name.crt"
  chmod 600 "$name.key"
  chmod 644 "$name.pem"
}

mkca . "Relaynode test partner CA"
mkca otherca "Relaynode test other CA"
good="DNS:mail.$dom,DNS:$dom,IP:127.0.0.1"
leaf . partner "mail.$dom" "$good" -days 2
leaf . wrongname mail.wrong.example "DNS:mail.wrong.example" -days 2
leaf . expired "mail.$dom" "$good" -startdate 20200101000000Z -enddate 20200102000000Z
leaf otherca otherca "mail.$dom" "$good" -days 2
chmod 644 ca.pem otherca/ca.pem
