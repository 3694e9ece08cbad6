#!/usr/bin/env bash
# Installs everything kite needs to build, test and run its demo, from Debian 12's packages
# (test-only and demo-only packages included: one list, one script).
# Idempotent: packages already present are not touched, and apt is not even asked.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libthrift-dev thrift-compiler libboost-dev libssl-dev
  libfuse3-dev fuse3 librocksdb-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libncurses-dev
  iproute2 util-linux procps psmisc openssl python3 openssh-server openssh-client
  hyperfine make gcc
  # bench/make/run.sh compares kite make with distcc (plain and pump mode) over the same hosts.
  distcc distcc-pump
  # scripts/demo.sh builds a tinyconfig Linux kernel from Debian's linux-source (the metapackage
  # pulls in the current linux-source-6.1 tarball, /usr/src/linux-source-6.1.tar.xz).
  linux-source xz-utils flex bison bc libelf-dev perl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# openssh-server must not start a listener on the real host: kite's ssh baseline runs its own sshd.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ssh 2>/dev/null; then
  $SUDO systemctl disable --now ssh >/dev/null 2>&1 || true
fi
