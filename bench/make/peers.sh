# Debian's distcc and icecc on a simulated cluster: the peer tools kite make is measured against
# (issue 4). Sourced by bench/make/run.sh and bench/make/kernel.sh, which set `repo` (the
# checkout) and `name` (the cluster instance, up). Every daemon runs inside its host (its
# network, mount and PID namespaces and its CPU cap), so `scripts/cluster down` ends it.
#
#   distcc_start HOSTS...   distccd (2 jobs, user nobody) on each host; log in its /run/kite
#   distcc_hosts            DISTCC_HOSTS for plain mode: node1 itself (2) and every distccd (2)
#   distcc_pump_hosts       the same for pump mode (ADDR/2,cpp,lzo)
#   distcc_counts           "nodeK N ..." compiles each distccd finished; resets the logs
#   icecc_start HOSTS...    icecc-scheduler on node1 and iceccd (2 jobs) on each host
#   icecc_env               the environment icecc's client needs on a host (its daemon socket)
#   icecc_counts            "nodeK N ..." compiles each iceccd ran for another host's client;
#                           resets the logs
#
# The hosts share one root file system: what a daemon keeps (its socket, its log, icecc's
# unpacked compiler environments) is put where only its host sees it, or in a directory of its
# own below /var/tmp/kite-icecc-NAME (icecc_cleanup removes it).
# shellcheck shell=bash disable=SC2154  # repo and name are the sourcing script's

peer_on() { local host=$1; shift; "$repo/scripts/cluster" --name "$name" exec "$host" -- sh -c "$*"; }
peer_addr() { awk -v h="$1" '$1 == h {print $2}' "/run/kite-sim/$name/hosts"; }
peer_distccd_hosts=()
peer_iceccd_hosts=()

distcc_start() {
  local subnet h
  subnet=$(<"/run/kite-sim/$name/subnet")
  for h in "$@"; do
    # The log goes where distccd's user (nobody) may write it: the counts come from it.
    peer_on "$h" "touch /run/kite/distccd.log && chown nobody /run/kite/distccd.log &&
      distccd --daemon --allow $subnet.0/24 --listen $(peer_addr "$h") --jobs 2 --user nobody \
        --log-level info --log-file /run/kite/distccd.log"
    peer_distccd_hosts+=("$h")
  done
  sleep 1
  # DISTCC_DIR must exist: without its lock directory distcc silently compiles everything locally.
  peer_on node1 'mkdir -p /tmp/distcc-bench'
}

distcc_hosts() {
  local h out="localhost/2"
  for h in "${peer_distccd_hosts[@]}"; do out+=" $(peer_addr "$h")/2"; done
  echo "DISTCC_HOSTS='$out' DISTCC_DIR=/tmp/distcc-bench"
}

distcc_pump_hosts() {
  local h out="localhost/2"
  for h in "${peer_distccd_hosts[@]}"; do out+=" $(peer_addr "$h")/2,cpp,lzo"; done
  echo "DISTCC_HOSTS='$out' DISTCC_DIR=/tmp/distcc-bench"
}

distcc_counts() {
  local h out=""
  for h in "${peer_distccd_hosts[@]}"; do
    out+=" $h $(peer_on "$h" 'grep -c COMPILE_OK /run/kite/distccd.log || true; : > /run/kite/distccd.log')"
  done
  echo "${out# }"
}

icecc_start() {
  local envs=/var/tmp/kite-icecc-$name sched h n=0
  sched=$(peer_addr node1)
  # Both daemons drop root for user icecc once started: what they write must be icecc's.
  peer_on node1 "mkdir -p /run/kite/icecc && chown icecc:icecc /run/kite/icecc &&
    icecc-scheduler -d -n $name -l /run/kite/icecc/scheduler.log -vv"
  for h in "$@"; do
    # ICECC_TEST_SOCKET moves the daemon's local socket (which iceccd and icecc both read) onto
    # the host's own tmpfs; -b keeps its unpacked environments apart from the other hosts'.
    peer_on "$h" "mkdir -p /run/kite/icecc $envs/$h && chown icecc:icecc /run/kite/icecc $envs/$h &&
      ICECC_TEST_SOCKET=/run/kite/icecc/iceccd.socket iceccd -d -m 2 -n $name -s $sched -N $h -b $envs/$h \
        -l /run/kite/icecc/iceccd.log -vv"
    peer_iceccd_hosts+=("$h")
  done
  # Until every daemon is connected to the scheduler (a build before that compiles at home);
  # they look for it every few seconds.
  for _ in $(seq 100); do
    n=0
    for h in "$@"; do
      peer_on "$h" 'grep -q "Connected to scheduler" /run/kite/icecc/iceccd.log 2>/dev/null' && n=$((n + 1))
    done
    ((n == $#)) && return 0
    sleep 0.2
  done
  echo "peers.sh: only $n of $# iceccd connected to icecc-scheduler in 20 s" >&2
  return 1
}

icecc_env() { echo "ICECC_TEST_SOCKET=/run/kite/icecc/iceccd.socket"; }

icecc_counts() {  # compiles a daemon ran for a client elsewhere (a job placed on the client's
  local h out=""  # own host is compiled by the client and logs nothing there)
  for h in "${peer_iceccd_hosts[@]}"; do
    out+=" $h $(peer_on "$h" 'grep -c "Remote compilation completed" /run/kite/icecc/iceccd.log || true; : > /run/kite/icecc/iceccd.log')"
  done
  echo "${out# }"
}

icecc_cleanup() { [[ -z ${name:-} ]] || rm -rf "/var/tmp/kite-icecc-$name"; }
