// Checkpoint and restore times of one process with 16 MiB and 256 MiB of touched heap, the
// image size, and memcpy of the same size measured in the same run (issue 6's physical
// limit). Prints a Markdown table of medians. Run it only while nobody builds:
//   flock /tmp/kite-build.lock build/bin/kite_checkpoint_bench [REPS] [MIB...]
//
// checkpoint (continue): sigqueue -> <pid>.img renamed into place (no fsync).
// checkpoint (exit):     sigqueue -> the original dead (image fsync'd, then SIGKILL).
// restore to running:    fork+exec of kite-restore -> the restored subject's first
//                        clock_gettime after it found ./go (written to ./running).
// freeze = checkpoint (exit) + restore to running: stopped -> running again, same host.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "syscall-shim/checkpoint/checkpoint_protocol.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int64_t MonotonicNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

bool Exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }

void WaitFor(const std::string& p) {
  auto end = Clock::now() + std::chrono::seconds(60);
  while (!Exists(p)) {
    if (Clock::now() > end) {
      fprintf(stderr, "timeout waiting for %s\n", p.c_str());
      exit(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

pid_t Spawn(const std::string& dir, const std::vector<std::string>& argv, bool shim) {
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(120);
    int null_fd = open("/dev/null", O_RDWR);
    int log = open((dir + "/log.txt").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(null_fd, 0);
    dup2(log, 1);
    dup2(log, 2);
    syscall(SYS_close_range, 3, ~0u, 0);
    if (shim) {
      setenv("LD_PRELOAD", KITE_BENCH_SHIM_PATH, 1);
      setenv(KITE_CKPT_DIR_VAR, dir.c_str(), 1);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

struct Sample {
  double ckpt_continue_ms, ckpt_exit_ms, restore_ms, image_mib, memcpy_fresh_ms, memcpy_warm_ms;
};

Sample RunOnce(size_t mib, const std::string& base) {
  Sample s{};
  std::string dir = base + "/run";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  pid_t pid = Spawn(dir, {KITE_BENCH_SUBJECT_PATH, std::to_string(mib)}, true);
  WaitFor(dir + "/ready");
  std::string img = dir + "/" + std::to_string(pid) + ".img";
  sigval v;

  // Continue mode first (the process keeps running), then exit mode for the migration image.
  v.sival_int = KITE_CKPT_CONTINUE;
  auto t0 = Clock::now();
  sigqueue(pid, KITE_CKPT_SIGNAL, v);
  WaitFor(img);
  s.ckpt_continue_ms = Ms(Clock::now() - t0);
  unlink(img.c_str());

  v.sival_int = KITE_CKPT_EXIT;
  t0 = Clock::now();
  sigqueue(pid, KITE_CKPT_SIGNAL, v);
  int status;
  waitpid(pid, &status, 0);
  s.ckpt_exit_ms = Ms(Clock::now() - t0);
  if (!Exists(img)) {
    fprintf(stderr, "no image; log:\n");
    system(("cat " + dir + "/log.txt " + dir + "/*.err").c_str());
    exit(1);
  }
  s.image_mib = double(std::filesystem::file_size(img)) / (1 << 20);

  // Restore with ./go present: the subject reports on its first loop iteration.
  close(open((dir + "/go").c_str(), O_WRONLY | O_CREAT, 0644));
  int64_t start = MonotonicNs();
  pid_t r = Spawn(dir, {KITE_BENCH_RESTORE_PATH, "--allow-root", img}, false);
  waitpid(r, &status, 0);
  std::ifstream running(dir + "/running");
  int64_t ran = 0;
  running >> ran;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || ran == 0) {
    fprintf(stderr, "restore failed (status %d)\n", status);
    system(("cat " + dir + "/log.txt").c_str());
    exit(1);
  }
  s.restore_ms = double(ran - start) / 1e6;

  // memcpy of the same size: into fresh memory (page faults included, as a restore pays) and
  // into memory already faulted in.
  size_t bytes = mib << 20;
  char* src = static_cast<char*>(malloc(bytes));
  memset(src, 1, bytes);
  char* dst = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  t0 = Clock::now();
  memcpy(dst, src, bytes);
  s.memcpy_fresh_ms = Ms(Clock::now() - t0);
  t0 = Clock::now();
  memcpy(dst, src, bytes);
  s.memcpy_warm_ms = Ms(Clock::now() - t0);
  munmap(dst, bytes);
  free(src);
  std::filesystem::remove_all(dir);
  return s;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  std::vector<size_t> sizes;
  for (int i = 2; i < argc; ++i) sizes.push_back(size_t(atol(argv[i])));
  if (sizes.empty()) sizes = {16, 256};
  char tmpl[] = "/tmp/kite-ckpt-bench-XXXXXX";
  std::string base = mkdtemp(tmpl);

  printf("| touched heap | image | checkpoint (continue) | checkpoint (exit, fsync) | restore to running | freeze | memcpy fresh | memcpy warm |\n");
  printf("|---|---|---|---|---|---|---|---|\n");
  for (size_t mib : sizes) {
    std::vector<Sample> samples;
    for (int i = 0; i < reps; ++i) samples.push_back(RunOnce(mib, base));
    auto med = [&](double Sample::*f) {
      std::vector<double> v;
      for (const Sample& s : samples) v.push_back(s.*f);
      return Median(v);
    };
    double ckpt = med(&Sample::ckpt_exit_ms), restore = med(&Sample::restore_ms);
    printf("| %zu MiB | %.1f MiB | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms |\n", mib,
           med(&Sample::image_mib), med(&Sample::ckpt_continue_ms), ckpt, restore, ckpt + restore,
           med(&Sample::memcpy_fresh_ms), med(&Sample::memcpy_warm_ms));
    fflush(stdout);
  }
  printf("\nmedians of %d runs; image in %s (page cache; exit mode fsyncs it); same host.\n", reps, base.c_str());
  std::filesystem::remove_all(base);
  return 0;
}
