#!/usr/bin/env bash
# Builds kite and runs every test the way CI does (.ci/run): dependencies, configure (once),
# build, remove simulated clusters left by crashed tests, ctest. Extra arguments go to ctest
# (e.g. `scripts/test.sh -L unit`, `scripts/test.sh -R cluster_test`). Integration tests need root.
set -euo pipefail

cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.."
readonly BUILD=build
readonly BUILD_LOCK=/tmp/kite-build.lock  # one build at a time on this machine

section() { printf '\n==== %s ====\n' "$*"; }

section "dependencies"
scripts/install-deps.sh
echo "all present"

section "configure"
if [[ -f $BUILD/build.ninja ]]; then
  echo "$BUILD/ is configured"
elif [[ -f $BUILD/CMakeCache.txt ]]; then
  echo "test.sh: $BUILD/ was configured with another generator than Ninja; remove it first" >&2
  exit 1
else
  flock "$BUILD_LOCK" cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKITE_BUILD_TESTS=ON -DKITE_BUILD_BENCHMARKS=ON
fi

section "build"
flock "$BUILD_LOCK" cmake --build "$BUILD" -j"$(nproc)"

ctest_args=(--test-dir "$BUILD" --output-on-failure --timeout 600 --no-tests=error)
section "stale simulated clusters"
if [[ $(id -u) -eq 0 ]]; then
  scripts/cluster down --stale
else
  echo "test.sh: not root: integration tests (label 'integration') are skipped" >&2
  ctest_args+=(-LE integration)
fi

section "tests"
status=0
ctest "${ctest_args[@]}" "$@" || status=$?
section "done: ctest exited with status $status"
exit "$status"
