/* A job process for the shim tests: calls what libkite-shim.so wraps and prints the results as
 * "key=value" lines. Built with _FORTIFY_SOURCE so `hostname N` goes through
 * __gethostname_chk, and exits through alarm() if anything hangs. Usage: shim_probe CMD [ARGS]. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static int ids(void) {
  struct utsname u;
  char host[256];
  if (uname(&u) != 0 || gethostname(host, sizeof host) != 0) return 1;
  printf("pid=%d\nppid=%d\npgrp=%d\npgid0=%d\nsid0=%d\n", getpid(), getppid(), getpgrp(),
         getpgid(0), getsid(0));
  printf("nodename=%s\nhostname=%s\nsysname=%s\nrelease=%s\nmachine=%s\n", u.nodename, host,
         u.sysname, u.release, u.machine);
  return 0;
}

/* getpgid/getsid of a pid given on the command line. */
static int pgid(pid_t pid) {
  errno = 0;
  pid_t g = getpgid(pid);
  int ge = errno;
  errno = 0;
  pid_t s = getsid(pid);
  printf("getpgid=%d\ngetpgid_errno=%d\ngetsid=%d\ngetsid_errno=%d\n", g, ge, s, errno);
  return 0;
}

/* The child prints what it sees, then joins its parent's group by the id getpgrp() gave. */
static int do_fork(void) {
  fflush(stdout);
  pid_t c = fork();
  if (c < 0) return 1;
  if (c == 0) {
    int rc = setpgid(0, getpgrp());
    printf("child_pid=%d\nchild_ppid=%d\nchild_pgrp=%d\nchild_setpgid=%d\n", getpid(), getppid(),
           getpgrp(), rc);
    fflush(stdout);
    _exit(0);
  }
  int status;
  if (waitpid(c, &status, 0) != c) return 1;
  printf("forked=%d\nchild_status=%d\n", c, status);
  return 0;
}

/* gethostname into a buffer of `len` bytes pre-filled with 'X'; prints the buffer as hex. */
static int hostname(size_t len) {
  char buf[300];
  if (len > sizeof buf) return 1;
  memset(buf, 'X', sizeof buf);
  /* Hide the bound just checked, or the compiler proves the call safe and skips the _chk. */
  __asm__("" : "+r"(len));
  errno = 0;
  int rc = gethostname(buf, len);
  printf("rc=%d\nerrno=%d\nbytes=", rc, rc == 0 ? 0 : errno);
  for (size_t i = 0; i < len; ++i) printf("%02x", (unsigned char)buf[i]);
  printf("\n");
  return 0;
}

static int do_kill(pid_t pid, int sig, int group) {
  errno = 1234;  /* the shim must leave errno alone on success */
  int rc = group ? killpg(pid, sig) : kill(pid, sig);
  printf("rc=%d\nerrno=%d\n", rc, errno);
  return 0;
}

/* kill(getpid(), SIGUSR1): the vpid must reach this very process. */
static int killself(void) {
  signal(SIGUSR1, on_usr1);
  int rc = kill(getpid(), SIGUSR1);
  printf("rc=%d\ngot_usr1=%d\n", rc, (int)got_usr1);
  return 0;
}

/* kill() of the real pid of a child: a job member, signalled here. */
static int killchild(void) {
  pid_t c = fork();
  if (c < 0) return 1;
  if (c == 0) {
    /* Do not hold the test's pipe open, and do not outlive a kill that never arrives. */
    close(1);
    alarm(20);
    pause();
    _exit(0);
  }
  int rc = kill(c, SIGKILL);
  int status = 0;
  waitpid(c, &status, 0);
  printf("rc=%d\nsignaled=%d\ntermsig=%d\n", rc, WIFSIGNALED(status),
         WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return 0;
}

/* Acquire a pty as controlling terminal (we are a session leader), then look at its group. */
static int tty(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) return 1;
  int s = open(ptsname(m), O_RDWR);
  if (s < 0) return 1;
  pid_t fg = tcgetpgrp(s);
  int rc = tcsetpgrp(s, getpgrp());
  printf("tcgetpgrp=%d\ntcsetpgrp=%d\ntcsetpgrp_errno=%d\n", fg, rc, rc == 0 ? 0 : errno);
  return 0;
}

int main(int argc, char** argv) {
  alarm(20);
  if (argc < 2) return 2;
  const char* cmd = argv[1];
  int rc = 2;
  if (strcmp(cmd, "ids") == 0) rc = ids();
  else if (strcmp(cmd, "pgid") == 0 && argc == 3) rc = pgid(atoi(argv[2]));
  else if (strcmp(cmd, "fork") == 0) rc = do_fork();
  else if (strcmp(cmd, "hostname") == 0 && argc == 3) rc = hostname((size_t)atoi(argv[2]));
  else if (strcmp(cmd, "kill") == 0 && argc == 4) rc = do_kill(atoi(argv[2]), atoi(argv[3]), 0);
  else if (strcmp(cmd, "killpg") == 0 && argc == 4) rc = do_kill(atoi(argv[2]), atoi(argv[3]), 1);
  else if (strcmp(cmd, "killself") == 0) rc = killself();
  else if (strcmp(cmd, "killchild") == 0) rc = killchild();
  else if (strcmp(cmd, "tty") == 0) rc = tty();
  fflush(stdout);
  return rc;
}
