# shellcheck shell=bash
# Part of scripts/test-hosts.sh (sourced by it): the test PKI (a CA, server and client certificates; made once).

# ------------------------------------------------------- certificates (once)
PKI_FILES=(ca/ca.pem ca/ca-key.pem
    h2-server/ca.pem h2-server/cert.pem h2-server/key.pem
    h2-client/ca.pem h2-client/cert.pem h2-client/key.pem
    wrong-ca/ca.pem wrong-ca/ca-key.pem
    wrong-ca-client/ca.pem wrong-ca-client/cert.pem wrong-ca-client/key.pem)
PKI_CHANGED=0

pki_complete() {
    local f
    [ -e "$STATE/.pki-ok" ] || return 1
    for f in "${PKI_FILES[@]}"; do [ -s "$STATE/$f" ] || return 1; done
}

# make_ca DIR CN
make_ca() {
    mkdir -p "$1"
    cat >"$1/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout "$1/ca-key.pem" -out "$1/ca.pem" -subj "/CN=$2" \
        -config "$1/ca.cnf" -extensions v3_ca 2>/dev/null
    rm -f "$1/ca.cnf"
}

# make_leaf CA_DIR OUT_DIR CN server|client [SAN]
make_leaf() {
    local ca=$1 out=$2 cn=$3 kind=$4 san=${5:-}
    mkdir -p "$out"
    {
        echo "basicConstraints = CA:FALSE"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid"
        if [ "$kind" = server ]; then
            echo "keyUsage = critical, digitalSignature, keyEncipherment"
            echo "extendedKeyUsage = serverAuth"
            echo "subjectAltName = $san"
        else
            echo "keyUsage = critical, digitalSignature"
            echo "extendedKeyUsage = clientAuth"
        fi
    } >"$out/ext.cnf"
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$out/key.pem" \
        -out "$out/req.csr" -subj "/CN=$cn" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "$out/req.csr" \
        -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" \
        -set_serial "0x$(openssl rand -hex 12)" \
        -extfile "$out/ext.cnf" -out "$out/cert.pem" 2>/dev/null
    cp "$ca/ca.pem" "$out/ca.pem"
    rm -f "$out/ext.cnf" "$out/req.csr"
    chmod 600 "$out/key.pem"
}

ensure_pki() {
    pki_complete && return 0
    log "generating certificates in $STATE"
    local tmp d
    tmp=$(mktemp -d "$STATE/.pki-new.XXXXXX")
    make_ca "$tmp/ca" "launcher test-hosts CA"
    make_leaf "$tmp/ca" "$tmp/h2-server" "$(ns_ip h2)" server \
        "IP:$(ns_ip h2), DNS:h2, DNS:launcher-h2"
    make_leaf "$tmp/ca" "$tmp/h2-client" "launcher test client" client
    # A complete foreign PKI: its ca.pem cannot verify h2's server certificate
    # (and h2 would not accept its client certificate either).
    make_ca "$tmp/wrong-ca" "launcher test-hosts WRONG CA"
    make_leaf "$tmp/wrong-ca" "$tmp/wrong-ca-client" "launcher wrong-ca client" client
    chmod 600 "$tmp/ca/ca-key.pem" "$tmp/wrong-ca/ca-key.pem"
    for d in ca h2-server h2-client wrong-ca wrong-ca-client; do
        rm -rf "${STATE:?}/$d"
        mv "$tmp/$d" "$STATE/$d"
    done
    rmdir "$tmp"
    touch "$STATE/.pki-ok"
    PKI_CHANGED=1
}

