# shellcheck shell=bash
# The Linux kernel tree that scripts/demo.sh and bench/make/kernel.sh build: Debian's
# linux-source, unpacked once and reused, placed in a cluster's shared directory, built with
# the variables that would make two builds differ fixed, and two builds compared file by file.
# Sourced; the caller sets $cache (where the unpacked tree is kept) and defines die().

# The tarball Debian's linux-source package ships (scripts/install-deps.sh installs it).
kernel_tarball() {
  local t
  t=$(find /usr/src -maxdepth 1 -name 'linux-source-*.tar.xz' | sort -V | tail -n 1)
  [[ -n $t ]] || die "no /usr/src/linux-source-*.tar.xz: scripts/install-deps.sh installs linux-source"
  echo "$t"
}

# The same environment for every build, with the time, user, host and build counter that would
# go into the kernel fixed, so that two builds can be equal.
kernel_build_env() {
  unset ARCH SUBARCH CROSS_COMPILE LLVM KBUILD_OUTPUT KCFLAGS KCPPFLAGS KAFLAGS KBUILD_EXTRA_WARN \
        MAKEFLAGS MFLAGS MAKELEVEL
  export KBUILD_BUILD_TIMESTAMP='Mon Jan  1 00:00:00 UTC 2024' KBUILD_BUILD_USER=kite \
         KBUILD_BUILD_HOST=kite-demo KBUILD_BUILD_VERSION=1
}

# The kernel tree is unpacked once into $cache and reused while the tarball is the same. A build
# only adds files to its tree, so the hosts get hard links (cheap); should anything ever write
# into a linked file, its mtime is newer than the stamp and the tree is unpacked again.
prepare_cache() {
  local tarball=$1 key tmp top
  key="$tarball $(stat -c '%s %Y' "$tarball")"
  mkdir -p "$cache"
  if [[ -d $cache/linux && -f $cache/linux.stamp && $(<"$cache/linux.stamp") == "$key" &&
        -z $(find "$cache/linux" -type f -newer "$cache/linux.stamp" -print -quit) ]]; then
    echo "unpacked tree cached in $cache/linux (from $tarball)"
    return 0
  fi
  echo "unpacking $tarball into $cache/linux (once: later runs reuse it)"
  rm -rf "$cache/linux" "$cache/linux.stamp" "$cache"/unpack.*
  tmp=$(mktemp -d "$cache/unpack.XXXXXX")
  tar -C "$tmp" -xJf "$tarball"
  top=$(find "$tmp" -mindepth 1 -maxdepth 1)
  [[ $(wc -l <<<"$top") -eq 1 && -f $top/Makefile ]] || die "$tarball does not hold one kernel tree"
  mv "$top" "$cache/linux"
  rmdir "$tmp"
  echo "$key" >"$cache/linux.stamp"
}

# place_tree DEST: the cached tree at DEST (in a cluster's shared tree). On the same file system
# as the cache: hard links. Else (kitefs) a copy in 4 streams of second-level entries: a copy
# to a network file system waits on round trips more than on the CPU, and overlaps well. (The
# top-level directories are made, not copied: their times are not the cache's.)
place_tree() {
  local dest=$1
  if [[ $(stat -c %d "$cache") == "$(stat -c %d "$(dirname "$dest")")" ]]; then
    cp -al "$cache/linux" "$dest"
    return
  fi
  mkdir "$dest"
  (
    cd "$cache/linux"
    find . -mindepth 1 -maxdepth 1 -type d -printf '%P\0' | (cd "$dest" && xargs -0 -r mkdir)
    find . -mindepth 1 -maxdepth 1 ! -type d -printf '%P\0' | xargs -0 -r cp -a -t "$dest"
    find . -mindepth 2 -maxdepth 2 -printf '%P\0' | xargs -0 -r -P 4 -n 32 cp -a --parents -t "$dest"
  )
}

# compare_builds A B IMAGE: vmlinux, IMAGE and every object of tree A against tree B, with cmp.
compare_builds() {
  local a=$1 b=$2 image=$3 f n=0
  local -a diffs=()
  while IFS= read -r f; do
    [[ -n $f ]] && diffs+=("$f: made by only one of the builds")
  done < <(comm -3 <(cd "$a" && find . -name '*.o' -type f | sort) \
                   <(cd "$b" && find . -name '*.o' -type f | sort) | tr -d '\t')
  while IFS= read -r f; do
    n=$((n + 1))
    if [[ ! -f $a/$f || ! -f $b/$f ]]; then
      diffs+=("$f: missing from $([[ -f $a/$f ]] && echo "$b" || echo "$a")")
    elif ! cmp -s "$a/$f" "$b/$f"; then
      diffs+=("$f: $(cmp "$a/$f" "$b/$f" 2>&1 | head -n 1)")
    fi
  done < <(printf '%s\n' vmlinux "$image"; comm -12 <(cd "$a" && find . -name '*.o' -type f | sort) \
                                                    <(cd "$b" && find . -name '*.o' -type f | sort))
  if ((${#diffs[@]} == 0)); then
    echo "identical: vmlinux, $image and all $((n - 2)) objects, byte for byte (cmp)"
    return 0
  fi
  echo "DIFFERENT: ${#diffs[@]} of $n files differ between the kite make and the plain make build:"
  printf '  %s\n' "${diffs[@]:0:20}"
  ((${#diffs[@]} <= 20)) || echo "  ... and $((${#diffs[@]} - 20)) more"
  return 1
}
