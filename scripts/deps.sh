#!/usr/bin/env bash
# Installs what building and testing skiff needs on Debian, only when it is missing.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have protoc || need+=(protobuf-compiler)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
[ -x /bin/busybox ] || need+=(busybox-static)
have nft || need+=(nftables)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
have crun || need+=(crun)
have runc || need+=(runc)
have skopeo || need+=(skopeo)
have ip || need+=(iproute2)
have curl || need+=(curl)
have openssl || need+=(openssl)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
