/* A migration test subject: prints "1\n" .. "N\n" on stdout, one line every DELAY_MS, then
 * exits 7. With "thread" it first starts a second thread (a checkpoint must refuse it).
 * With N = "cat": copies stdin to stdout a byte at a time (read(2) of 1 byte, so unread input
 * stays in the pipe), sleeping DELAY_MS after each newline, and exits 7 at EOF.
 * Single process, no shell: it is the job's root, so remoted checkpoints it directly.
 * Usage: kite_migrate_counter N|cat DELAY_MS [thread] */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void* idle(void* arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

static void write_all(const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) exit(3);
    p += w;
    n -= (size_t)w;
  }
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  long n = atol(argv[1]), delay_ms = atol(argv[2]);
  if (strcmp(argv[1], "cat") == 0) {
    for (;;) {
      char c;
      ssize_t r = read(0, &c, 1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return 5;
      if (r == 0) return 7;
      write_all(&c, 1);
      struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
      while (c == '\n' && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
      }
    }
  }
  if (argc > 3 && strcmp(argv[3], "thread") == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, idle, NULL) != 0) return 4;
  }
  for (long i = 1; i <= n; i++) {
    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", i);
    write_all(line, (size_t)len);
    /* A checkpoint signal interrupts the sleep (EINTR, also after a restore): sleep on. */
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
  }
  return 7;
}
