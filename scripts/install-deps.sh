#!/usr/bin/env bash
# Installs the system packages that building and testing rkube need, through apt.
# Idempotent: when everything is present it returns at once without touching apt.
# This is the only place where anything is installed; CI runs it on a fresh machine.
set -euo pipefail

# package:command-that-proves-it-is-installed
packages=(
  "etcd-server:etcd"            # the etcd backend's tests and benchmark
  "etcd-client:etcdctl"         # debugging the etcd tests
  "protobuf-compiler:protoc"    # etcd-client generates its gRPC code at build time
)

missing=()
for entry in "${packages[@]}"; do
  pkg="${entry%%:*}"
  cmd="${entry#*:}"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
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
