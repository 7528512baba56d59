#!/usr/bin/env bash
# Installs the system packages that building and testing rkube need, through apt.
# Idempotent: when everything is present it returns at once without touching apt.
# This is the only place where anything is installed; CI runs it on a fresh machine.
set -euo pipefail

# package:command-that-proves-it-is-installed (or an absolute path to a file it installs)
packages=(
  "etcd-server:etcd"            # the etcd backend's tests and benchmark
  "etcd-client:etcdctl"         # debugging the etcd tests
  "protobuf-compiler:protoc"    # etcd-client generates its gRPC code at build time
  "libprotobuf-dev:/usr/include/google/protobuf/descriptor.proto"  # protoc's well-known types
  "openssl:openssl"             # the tutorial's certificate, made as the tutorial makes it
  "runc:runc"                   # the agent runs pods' containers with it
  "busybox-static:busybox"      # the runtime tests' root filesystem
  "dnsutils:dig"                # the DNS conformance test queries with the real dig
  "dnsperf:dnsperf"             # ./bench dns load generator
  "nsd:/usr/sbin/nsd"           # ./bench dns reference authoritative server
  "nftables:nft"                # the service proxy programs its rules with nft -f
  "conntrack:conntrack"         # the service proxy flushes stale UDP conntrack entries
  "iptables:iptables-nft"       # the proxy benchmark's kube-proxy iptables-mode baseline
  "iputils-arping:arping"       # the LoadBalancer speaker announces moved IPs with gratuitous ARP
  "iproute2:ip"                 # network namespaces in tests, and the agent's address set-up
  "curl:curl"                   # the e2e tests curl pods and Services from nodes and outside
  "iputils-ping:ping"           # the cluster tests ping across the fabric
)

missing=()
for entry in "${packages[@]}"; do
  pkg="${entry%%:*}"
  cmd="${entry#*:}"
  case "$cmd" in
    /*) [ -e "$cmd" ] || missing+=("$pkg") ;;
    *) command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done

install_python_env() {
  # The official Python client, in a virtualenv of our own so the system stays untouched.
  local venv="${RKUBE_PYENV:-target/pyenv}"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import kubernetes, pytest" 2>/dev/null; then
    echo "install-deps: creating $venv with the kubernetes client and pytest" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes pytest
  fi
}

if [ "${#missing[@]}" -eq 0 ]; then
  install_python_env
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_python_env
