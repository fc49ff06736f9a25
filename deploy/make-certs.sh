#!/bin/sh
# Make a private CA and a server certificate for the broker and the API (PEM files in DIR):
#   ca.crt ca.key server.crt server.key
# Clients trust ca.crt (MINEWATCH_MQTT_CA, or curl --cacert). The server certificate is valid
# for localhost, 127.0.0.1 and every NAME given (host names or IPv4 addresses), e.g. the compose
# service names:  deploy/make-certs.sh deploy/secrets/tls mosquitto api mine-gw.example
# Keep ca.key offline in a real deployment; an existing CA in DIR is reused.
set -eu
dir=${1:?usage: make-certs.sh DIR [NAME...]}
shift
mkdir -p "$dir"
cd "$dir"
san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
  case $name in
    *[!0-9.]*) san="$san,DNS:$name" ;;
    *) san="$san,IP:$name" ;;
  esac
done
umask 077
if [ ! -f ca.crt ] || [ ! -f ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
    -keyout ca.key -out ca.crt -subj "/CN=minewatch private CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
cat > server.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
  -keyout server.key -out server.csr -subj "/CN=minewatch" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
  -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
# The key stays private to its owner and group: a broker in a container runs as its own user
# (uid/gid 1883 in the eclipse-mosquitto image), so `chgrp 1883 server.key` there.
chmod 644 ca.crt server.crt
chmod 640 server.key
echo "certificates for $san in $dir"
