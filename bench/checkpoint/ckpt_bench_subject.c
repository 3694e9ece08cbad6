/* Benchmark subject: touches MIB MiB of heap with non-zero data, says ready (./ready), sleeps
 * in 100 us naps until ./go exists, then writes CLOCK_MONOTONIC (ns) to ./running and exits.
 * Restored with ./go already present, its first loop iteration reports "running".
 * Usage: ckpt_bench_subject MIB */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  size_t bytes = (size_t)atol(argv[1]) << 20;
  uint64_t* heap = malloc(bytes);
  for (size_t i = 0; i < bytes / 8; i++) heap[i] = i * 0x9e3779b97f4a7c15ull + 1;
  int out = open("running", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  close(open("ready", O_WRONLY | O_CREAT, 0644));
  while (access("go", F_OK) != 0) {
    struct timespec nap = {0, 100000};
    nanosleep(&nap, NULL);
  }
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  char line[32];
  int n = snprintf(line, sizeof line, "%lld\n", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
  if (write(out, line, (size_t)n) != n) return 1;
  return heap[bytes / 16] == (bytes / 16) * 0x9e3779b97f4a7c15ull + 1 ? 0 : 1;
}
