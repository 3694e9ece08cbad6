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
  # bench/fs/run.sh compares kitefs with local disk and with sshfs (to a private sshd of its own
  # on 127.0.0.1, never the system's), and times sequential I/O with fio.
  fio sshfs
  # bench/make/{run,kernel}.sh compare kite make with distcc (plain and pump mode) and icecc
  # over the same hosts (their daemons run inside the simulated hosts, never on the machine).
  distcc distcc-pump icecc
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
# A daemon a package just installed here must not run on the real host: kite's ssh baseline
# runs its own sshd, and icecc's iceccd would broadcast for a scheduler on every network it
# sees (the benchmarks start their own inside the simulated hosts). Only units of packages this
# run installed are stopped: an sshd that was already here is the machine's owner's.
just_installed() { [[ " ${missing[*]} " == *" $1 "* ]]; }
if command -v systemctl >/dev/null 2>&1; then
  units=()
  just_installed openssh-server && units+=(ssh)
  just_installed icecc && units+=(iceccd icecc-scheduler)
  for unit in "${units[@]}"; do
    if systemctl is-active --quiet "$unit" 2>/dev/null || systemctl is-enabled --quiet "$unit" 2>/dev/null; then
      $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi
# Without systemd (a container, sysvinit) the package's init script may have started sshd on
# port 22 instead: stop that one, by its pid file, and keep it from starting at boot.
if just_installed openssh-server && [[ ! -d /run/systemd/system ]]; then
  if [[ -s /run/sshd.pid ]]; then
    $SUDO start-stop-daemon --stop --quiet --oknodo --pidfile /run/sshd.pid --exec /usr/sbin/sshd || true
  fi
  if command -v update-rc.d >/dev/null 2>&1 && [[ -e /etc/init.d/ssh ]]; then
    $SUDO update-rc.d ssh disable >/dev/null 2>&1 || true
  fi
fi
