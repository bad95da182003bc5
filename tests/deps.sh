#!/bin/sh
# deps.sh: make sure the Debian packages partisan builds and tests with are
# installed. As root it installs what is missing; otherwise it prints the
# exact apt-get line and fails.
set -eu

pkgs="gcc make pkg-config libevent-dev libmbedtls-dev libprotobuf-c-dev
protobuf-c-compiler libjansson-dev check python3 python3-protobuf
protobuf-compiler iproute2 nftables procps ethtool prometheus graphviz openssl
valgrind"
[ "${1:-}" = "--bench" ] && pkgs="$pkgs erlang-base serf iperf3"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "partisan: missing packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
echo "partisan: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
