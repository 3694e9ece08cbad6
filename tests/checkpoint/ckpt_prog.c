/* A checkpoint test subject in CRIU zdtm's shape: it sets up the pieces of state named on its
 * command line, says it is ready (creates ./ready), keeps working until ./go exists, then
 * checks every piece and exits 0 ("PASS") or 1 ("FAIL: why" on stdout).
 *
 * Usage: ckpt_prog PIECE...   (run in the test's own directory, stdout to a regular file)
 * Pieces: counter heap fpu signals itimer pending umask cwd file deleted mmap rlimit name tid stack
 *         brk vpid socket threads shared
 * socket, threads and shared set up state the checkpoint must refuse. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fenv.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int failed;
static void check(int ok, const char* what) {
  if (!ok) {
    printf("FAIL: %s\n", what);
    failed = 1;
  }
}

static int has(int argc, char** argv, const char* piece) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], piece) == 0) return 1;
  }
  return 0;
}

static void nap_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

/* counter: a loop writing numbered lines through a descriptor whose offset matters. */
static int counter_fd = -1;
static long counter;
static char counter_path[600];
static void counter_step(void) {
  char line[32];
  int n = snprintf(line, sizeof line, "%ld\n", counter);
  if (write(counter_fd, line, (size_t)n) != n) check(0, "counter write");
  counter++;
}
static void counter_check(void) {
  /* The file holds 0..counter-1, each once, in order: nothing lost or written twice. */
  int fd = open(counter_path, O_RDONLY);
  check(fd >= 0, "counter file reopen");
  static char buf[1 << 22];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  long expect = 0;
  for (char* p = buf; *p != '\0';) {
    char* end;
    long v = strtol(p, &end, 10);
    if (end == p || *end != '\n' || v != expect) {
      check(0, "counter file sequence broken");
      return;
    }
    expect++;
    p = end + 1;
  }
  check(expect == counter, "counter file length");
  check(lseek(counter_fd, 0, SEEK_CUR) == n, "counter descriptor offset");
}

/* heap: a few MiB of malloc'd pattern, plus a mostly-zero block. */
#define HEAP_BYTES (6u << 20)
static uint32_t* heap;
static char* sparse;
static uint32_t pattern(size_t i) { return (uint32_t)(i * 2654435761u) ^ 0x5a5a5a5au; }

/* signals: handlers with flags and masks, a blocked signal. */
static volatile sig_atomic_t usr1_hits;
static void on_usr1(int sig) { usr1_hits++; }
static volatile sig_atomic_t alarm_hits;
static void on_alarm(int sig) { alarm_hits++; }
static volatile sig_atomic_t usr2_hits;
static void on_usr2(int sig, siginfo_t* info, void* uc) {
  if (info->si_code == SI_QUEUE && info->si_value.sival_int == 4242) usr2_hits++;
}

/* Returns depth, using 4 KiB of stack per level. */
static int recurse(int depth) {
  volatile char pad[4096];
  pad[0] = 1;
  pad[4095] = 0;
  return depth == 0 ? 0 : recurse(depth - 1) + pad[0] + pad[4095];
}

static void* recurse_thread(void* arg) {
  return (void*)(intptr_t)recurse((int)(intptr_t)arg);
}

static void* idle_thread(void* arg) {
  for (;;) pause();
  return arg;
}

int main(int argc, char** argv) {
  pid_t pid0 = getpid();
  char cwd0[512];
  if (getcwd(cwd0, sizeof cwd0) == NULL) return 2;
  setvbuf(stdout, NULL, _IONBF, 0);

  if (has(argc, argv, "counter")) {
    snprintf(counter_path, sizeof counter_path, "%s/counter.txt", cwd0);
    counter_fd = open(counter_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (counter_fd < 0) return 2;
  }
  if (has(argc, argv, "heap")) {
    heap = malloc(HEAP_BYTES);
    for (size_t i = 0; i < HEAP_BYTES / 4; i++) heap[i] = pattern(i);
    sparse = mmap(NULL, 64u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sparse[0] = 1;
    sparse[(32u << 20) + 5] = 2;
    memset(sparse + (8u << 20), 0, 1u << 20); /* touched but zero: skipped in the image */
  }
  if (has(argc, argv, "fpu")) fesetround(FE_UPWARD);
  if (has(argc, argv, "signals")) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGWINCH);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, NULL);
  }
  if (has(argc, argv, "itimer")) {
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct itimerval virt = {{100, 0}, {100, 0}};
    setitimer(ITIMER_VIRTUAL, &virt, NULL);
  }
  if (has(argc, argv, "pending")) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGRTMIN + 3);
    sigprocmask(SIG_BLOCK, &block, NULL);
    union sigval v = {.sival_int = 4242};
    sigqueue(getpid(), SIGUSR2, v);
    signal(SIGRTMIN + 3, SIG_DFL);
    v.sival_int = 1;
    sigqueue(getpid(), SIGRTMIN + 3, v);
    v.sival_int = 2;
    sigqueue(getpid(), SIGRTMIN + 3, v);
  }
  if (has(argc, argv, "umask")) umask(027);
  if (has(argc, argv, "cwd")) {
    mkdir("sub", 0755);
    if (chdir("sub") != 0) return 2;
  }
  int half_fd = -1;
  if (has(argc, argv, "file")) {
    FILE* f = fopen("data.txt", "w");
    for (int i = 0; i < 1000; i++) fprintf(f, "line %04d\n", i);
    fclose(f);
    half_fd = open("data.txt", O_RDONLY);
    char skip[5000];
    if (half_fd < 0 || read(half_fd, skip, 5000) != 5000) return 2;
  }
  int gone_fd = -1, tmp_fd = -1;
  if (has(argc, argv, "deleted")) {
    /* An open file whose name is gone, half read, and an O_TMPFILE one, written. */
    FILE* f = fopen("gone.txt", "w");
    for (int i = 0; i < 1000; i++) fprintf(f, "gone %04d\n", i);
    fclose(f);
    gone_fd = open("gone.txt", O_RDWR);
    char skip[3000];
    if (gone_fd < 0 || read(gone_fd, skip, 3000) != 3000 || unlink("gone.txt") != 0) return 2;
    tmp_fd = open(".", O_TMPFILE | O_RDWR, 0600);
    if (tmp_fd < 0 || write(tmp_fd, "anonymous temporary", 19) != 19) return 2;
  }
  char* mapped = NULL;
  if (has(argc, argv, "mmap")) {
    FILE* f = fopen("mapped.bin", "w");
    for (int i = 0; i < 3 * 4096; i++) fputc('a' + i % 26, f);
    fclose(f);
    int fd = open("mapped.bin", O_RDONLY);
    mapped = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
  }
  if (has(argc, argv, "rlimit")) {
    struct rlimit r = {200, 4000};
    setrlimit(RLIMIT_NOFILE, &r);
  }
  if (has(argc, argv, "name")) prctl(PR_SET_NAME, "kite-zdtm");
  if (has(argc, argv, "socket")) {
    if (socket(AF_UNIX, SOCK_STREAM, 0) < 0) return 2;
  }
  if (has(argc, argv, "shared")) {
    char* shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) return 2;
    shm[0] = 1;
  }
  if (has(argc, argv, "threads")) {
    pthread_t t;
    pthread_create(&t, NULL, idle_thread, NULL);
  }

  close(open("ready", O_WRONLY | O_CREAT, 0644));
  if (has(argc, argv, "cwd")) close(open("../ready", O_WRONLY | O_CREAT, 0644));
  const char* go = has(argc, argv, "cwd") ? "../go" : "go";
  double x = 1.0;
  while (access(go, F_OK) != 0) {
    if (counter_fd >= 0) counter_step();
    x = x * 1.0000001 + 1e-9;
    nap_ms(1);
  }

  /* ---- checks ---- */
  if (counter_fd >= 0) {
    for (int i = 0; i < 50; i++) counter_step();
    counter_check();
  }
  if (heap != NULL) {
    size_t bad = 0;
    for (size_t i = 0; i < HEAP_BYTES / 4; i++) bad += heap[i] != pattern(i);
    check(bad == 0, "heap pattern");
    check(sparse[0] == 1 && sparse[(32u << 20) + 5] == 2 && sparse[(8u << 20) + 77] == 0 &&
              sparse[(60u << 20)] == 0, "sparse mapping");
    void* more = malloc(1 << 20); /* brk or mmap after restore */
    memset(more, 7, 1 << 20);
    free(more);
  }
  if (has(argc, argv, "brk")) {
    void* cur = sbrk(0);
    check(sbrk(1 << 20) == cur && sbrk(0) == (char*)cur + (1 << 20), "brk grows");
    memset(cur, 1, 1 << 20);
  }
  if (has(argc, argv, "fpu")) {
    check(fegetround() == FE_UPWARD, "FPU rounding mode");
    /* The division in asm: the compiler may not move it across fesetround. */
    double q = 1.0, r = 1.0, three = 3.0;
    __asm__ volatile("divsd %1, %0" : "+x"(q) : "x"(three));
    fesetround(FE_DOWNWARD);
    __asm__ volatile("divsd %1, %0" : "+x"(r) : "x"(three));
    check(q > r, "rounding behaves");
    fesetround(FE_UPWARD);
  }
  if (has(argc, argv, "signals")) {
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    check(sa.sa_handler == on_usr1, "SIGUSR1 handler");
    check((sa.sa_flags & (SA_RESTART | SA_NODEFER)) == (SA_RESTART | SA_NODEFER), "SIGUSR1 flags");
    check(sigismember(&sa.sa_mask, SIGWINCH), "SIGUSR1 mask");
    sigaction(SIGPIPE, NULL, &sa);
    check(sa.sa_handler == SIG_IGN, "SIGPIPE ignored");
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    check(sigismember(&now, SIGHUP) && !sigismember(&now, SIGUSR1), "signal mask");
    raise(SIGUSR1);
    check(usr1_hits == 1, "raise reaches the handler");
  }
  if (has(argc, argv, "itimer")) {
    int before = alarm_hits;
    for (int i = 0; i < 50 && alarm_hits < before + 3; i++) nap_ms(10);
    check(alarm_hits >= before + 3, "itimer keeps ticking");
    struct itimerval it;
    getitimer(ITIMER_REAL, &it);
    check(it.it_interval.tv_usec == 20000, "itimer interval");
    getitimer(ITIMER_VIRTUAL, &it);
    check(it.it_interval.tv_sec == 100 && it.it_value.tv_sec <= 100 &&
              (it.it_value.tv_sec > 0 || it.it_value.tv_usec > 0), "virtual itimer armed");
  }
  if (has(argc, argv, "pending")) {
    sigset_t p;
    sigpending(&p);
    check(sigismember(&p, SIGUSR2) && sigismember(&p, SIGRTMIN + 3), "signals still pending");
    siginfo_t info;
    sigset_t rt;
    sigemptyset(&rt);
    sigaddset(&rt, SIGRTMIN + 3);
    struct timespec zero = {0, 0};
    int a = sigtimedwait(&rt, &info, &zero) == SIGRTMIN + 3 ? info.si_value.sival_int : -1;
    int b = sigtimedwait(&rt, &info, &zero) == SIGRTMIN + 3 ? info.si_value.sival_int : -1;
    check(a == 1 && b == 2, "queued RT signals in order with their values");
    sigset_t u;
    sigemptyset(&u);
    sigaddset(&u, SIGUSR2);
    sigprocmask(SIG_UNBLOCK, &u, NULL);
    check(usr2_hits == 1, "pending SIGUSR2 delivered with its siginfo");
  }
  if (has(argc, argv, "umask")) {
    mode_t m = umask(022);
    check(m == 027, "umask");
  }
  if (has(argc, argv, "cwd")) {
    char now[512];
    check(getcwd(now, sizeof now) != NULL && strlen(now) > 4 &&
              strcmp(now + strlen(now) - 4, "/sub") == 0, "cwd");
  }
  if (half_fd >= 0) {
    check(lseek(half_fd, 0, SEEK_CUR) == 5000, "file offset");
    char rest[6000];
    ssize_t n = read(half_fd, rest, sizeof rest);
    check(n == 5000 && memcmp(rest, "line 0500\n", 10) == 0 && memcmp(rest + 4990, "line 0999\n", 10) == 0,
          "rest of the file");
  }
  if (gone_fd >= 0) {
    check(lseek(gone_fd, 0, SEEK_CUR) == 3000, "deleted file offset");
    char rest[8000];
    ssize_t n = read(gone_fd, rest, sizeof rest);
    check(n == 7000 && memcmp(rest, "gone 0300\n", 10) == 0 && memcmp(rest + 6990, "gone 0999\n", 10) == 0,
          "rest of the deleted file");
    check(write(gone_fd, "more\n", 5) == 5, "writing to the deleted file");
    check(access("gone.txt", F_OK) != 0, "the deleted file has no name again");
    char buf[32] = {0};
    check(lseek(tmp_fd, 0, SEEK_CUR) == 19 && pread(tmp_fd, buf, 19, 0) == 19 &&
              memcmp(buf, "anonymous temporary", 19) == 0, "O_TMPFILE contents and offset");
  }
  if (mapped != NULL) {
    int ok = 1;
    for (int i = 0; i < 3 * 4096; i++) ok &= mapped[i] == 'a' + i % 26;
    check(ok, "mapped file contents");
  }
  if (has(argc, argv, "rlimit")) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    check(r.rlim_cur == 200 && r.rlim_max == 4000, "RLIMIT_NOFILE");
  }
  if (has(argc, argv, "name")) {
    char name[17] = {0};
    prctl(PR_GET_NAME, name);
    check(strcmp(name, "kite-zdtm") == 0, "process name");
  }
  if (has(argc, argv, "tid")) {
    clockid_t cid;
    struct timespec cpu_time;
    check(pthread_getcpuclockid(pthread_self(), &cid) == 0 && clock_gettime(cid, &cpu_time) == 0,
          "CPU clock of pthread_self (glibc's cached tid)");
    check(pthread_kill(pthread_self(), 0) == 0, "pthread_kill(self) (glibc's cached tid)");
    check(gettid() == syscall(SYS_gettid), "gettid");
    int cpu = sched_getcpu();
    check(cpu >= 0 && cpu < 1024, "sched_getcpu (rseq)");
    struct timespec ts;
    check(clock_gettime(CLOCK_MONOTONIC, &ts) == 0, "clock_gettime (vDSO)");
    pthread_t t;
    check(pthread_create(&t, NULL, recurse_thread, (void*)(intptr_t)8) == 0 &&
              pthread_join(t, NULL) == 0, "a new thread after restore");
  }
  if (has(argc, argv, "stack")) check(recurse(1500) == 1500, "deep recursion (6 MiB) after restore");
  if (has(argc, argv, "vpid")) {
    check(getpid() == pid0, "getpid() is the vpid after restore");
    /* The harness made the subject a session leader: it still leads, under the vpid. */
    check(getsid(0) == pid0 && getpgrp() == pid0, "session and process group led, as the vpid");
  }
  (void)x;
  if (!failed) printf("PASS\n");
  return failed;
}
