#!/usr/bin/env bash
# A throwaway CA and a server certificate for a test or demo node (never for production).
#   mkcerts.sh DIR [NAME...]   -> DIR/ca.pem, DIR/ca.key, DIR/node.pem (chain: leaf + CA),
#                                 DIR/node.key; subjectAltName = the NAMEs (default
#                                 node1.example.com localhost) plus IP 127.0.0.1 and ::1.
# Idempotent: existing files are kept. EC P-256 keys (fast to make), 2 days validity.
set -euo pipefail
dir=${1:?usage: mkcerts.sh DIR [NAME...]}; shift
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(node1.example.com localhost)
mkdir -p "$dir"
cd "$dir"
[ -s node.pem ] && [ -s node.key ] && [ -s ca.pem ] && exit 0
umask 077
san="IP:127.0.0.1,IP:::1"
for n in "${names[@]}"; do san="DNS:$n,$san"; done
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=Relaynode test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out node.key 2>/dev/null
openssl req -new -key node.key -subj "/CN=${names[0]}" -out node.csr 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" >node.ext
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
  -extfile node.ext -out node.crt 2>/dev/null
cat node.crt ca.pem >node.pem
rm -f node.csr node.ext node.crt ca.srl
chmod 600 node.key ca.key
chmod 644 node.pem ca.pem
