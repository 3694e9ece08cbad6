/* ckpt_nsinit CMD [ARG...]: runs CMD as PID 2 of a new PID namespace, under a minimal init
 * (PID 1) that reaps every process and exits with CMD's status (128 + signal when CMD was
 * killed). A restored process must not be PID 1: there, signals with the default action are
 * ignored and its exit tears the namespace down. The outermost process waits for the init
 * and exits with its status. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int status_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ckpt_nsinit CMD [ARG...]\n");
    return 64;
  }
  if (unshare(CLONE_NEWPID) != 0) {
    perror("ckpt_nsinit: unshare(CLONE_NEWPID)");
    return 70;
  }
  pid_t init = fork();
  if (init < 0) return 71;
  if (init == 0) {
    pid_t child = fork();
    if (child < 0) _exit(71);
    if (child == 0) {
      execv(argv[1], argv + 1);
      perror("ckpt_nsinit: exec");
      _exit(127);
    }
    for (;;) {
      int status;
      pid_t p = wait(&status);
      if (p == child) _exit(status_code(status));
      if (p < 0 && errno != EINTR) _exit(72);
    }
  }
  int status;
  while (waitpid(init, &status, 0) < 0) {
    if (errno != EINTR) return 73;
  }
  return status_code(status);
}
