#!/bin/sh
# Writes a C project with recursive make into DIR, for `kite make` tests and benchmarks:
#   DIR/Makefile            links `app` from main.o and one archive per library
#   DIR/libL/Makefile       $(MAKE)s each of its subdirectories, then archives their objects
#   DIR/libL/sS/Makefile    generates gen.h with a script, compiles fN.c into fN.o
# Usage: gen_make_project.sh DIR [LIBS SUBDIRS FILES]   (default 4 3 20: 240 C files)
# Make variables: TRACE=FILE appends "<real host> <time> <object>" per compile; SLOW=SECONDS
# sleeps before each compile; BREAK=1 adds, in lib2/s2, a recipe that makes its target and then
# fails (status 3), so .DELETE_ON_ERROR must remove it.
set -eu
dir=${1:?usage: gen_make_project.sh DIR [LIBS SUBDIRS FILES]}
libs=${2:-4} subs=${3:-3} files=${4:-20}
mkdir -p "$dir"
cd "$dir"

lib_names=""
archives=""
decls=""
calls=""
l=1
while [ "$l" -le "$libs" ]; do
  lib=lib$l
  lib_names="$lib_names $lib"
  archives="$archives $lib/$lib.a"
  mkdir -p "$lib"
  sub_names=""
  s=1
  while [ "$s" -le "$subs" ]; do
    sub=s$s
    sub_names="$sub_names $sub"
    mkdir -p "$lib/$sub"
    cat >"$lib/$sub/gen.sh" <<EOS
# A code generator: its output depends only on its input.
printf '#define GEN_SEED %d\n' $((l * 100 + s))
printf '#define GEN_NAME "%s"\n' "$lib/$sub"
EOS
    f=1
    while [ "$f" -le "$files" ]; do
      fn=${lib}_${sub}_f$f
      cat >"$lib/$sub/f$f.c" <<EOS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gen.h"

static unsigned mix(unsigned h, unsigned v) { return (h ^ v) * 16777619u + (unsigned)GEN_SEED; }

unsigned $fn(unsigned x) {
  char buf[64];
  unsigned h = 2166136261u + $f;
  snprintf(buf, sizeof buf, "%s:%u", GEN_NAME, x);
  for (size_t i = 0; i < strlen(buf); ++i) h = mix(h, (unsigned char)buf[i]);
  for (unsigned i = 0; i < (x % 7u) + $f; ++i) h = mix(h, i * $f);
  return h;
}
EOS
      decls="${decls}unsigned $fn(unsigned);
"
      calls="${calls}  h ^= $fn(h);
"
      f=$((f + 1))
    done
    cat >"$lib/$sub/Makefile" <<'EOS'
SRCS := $(sort $(wildcard f*.c))
OBJS := $(SRCS:.c=.o)
CFLAGS ?= -O2
TRACE_CMD = $(if $(TRACE),echo "$$(cat /proc/sys/kernel/hostname) $$(date +%s.%N) $(CURDIR)/$@" >> $(TRACE);)
SLOW_CMD = $(if $(SLOW),sleep $(SLOW);)
.DELETE_ON_ERROR:
all: $(OBJS)
gen.h: gen.sh
	sh gen.sh > $@
%.o: %.c gen.h
	$(TRACE_CMD)$(SLOW_CMD)$(CC) $(CFLAGS) -c $< -o $@
EOS
    if [ "$lib/$sub" = lib2/s2 ]; then
      cat >>"$lib/$sub/Makefile" <<'EOS'
ifdef BREAK
all: broken.o
broken.o: f1.c gen.h
	$(CC) $(CFLAGS) -c f1.c -o $@ && echo "injected failure in $@" >&2 && exit 3
endif
EOS
    fi
    s=$((s + 1))
  done
  cat >"$lib/Makefile" <<EOS
SUBS :=$sub_names
EOS
  cat >>"$lib/Makefile" <<'EOS'
LIB := $(notdir $(CURDIR)).a
.DELETE_ON_ERROR:
all: $(LIB)
$(LIB): $(SUBS)
	rm -f $@
	ar rcsD $@ $(foreach s,$(SUBS),$(sort $(wildcard $(s)/f*.o)))
$(SUBS):
	$(MAKE) -C $@
.PHONY: all $(SUBS)
EOS
  l=$((l + 1))
done

{
  echo "#include <stdio.h>"
  printf '%s' "$decls"
  echo "int main(void) {"
  echo "  unsigned h = 1;"
  printf '%s' "$calls"
  printf '%s\n' '  printf("%u\n", h);'
  echo "  return 0;"
  echo "}"
} >main.c

cat >Makefile <<EOS
LIBS :=$lib_names
ARCHIVES :=$archives
EOS
cat >>Makefile <<'EOS'
CFLAGS ?= -O2
.DELETE_ON_ERROR:
all: app
app: main.o $(LIBS)
	$(CC) -o $@ main.o $(ARCHIVES)
main.o: main.c
	$(CC) $(CFLAGS) -c main.c -o $@
$(LIBS):
	$(MAKE) -C $@
.PHONY: all $(LIBS)
EOS
