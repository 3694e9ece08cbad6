// Start-up cost of libkite-shim.so: fork + execve + waitpid of /bin/true with no preload, with
// the shim preloaded but inert (no KITE_JOB: every compiler process of a build pays this) and
// with the shim active (a job process). Target: under 0.3 ms added per process.
//
// Each benchmark reports the mean of its iterations per repetition; compare the *_median
// rows. Run when the machine is otherwise idle: flock /tmp/kite-build.lock kite_shim_startup_bench
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

enum Mode { kNoPreload = 0, kInert = 1, kActive = 2 };

std::vector<std::string> EnvFor(Mode mode) {
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LANG=C"};
  if (mode != kNoPreload) env.push_back(std::string("LD_PRELOAD=") + KITE_BENCH_SHIM_PATH);
  if (mode == kActive) {
    // The child is not the job's root (its pid is unknown before fork); the constructor does the
    // same work either way: parse, fill the table, set the name.
    env.push_back("KITE_JOB=4242:4000:" + std::to_string(getpid()));
    env.push_back("KITE_HOME=benchhome");
    env.push_back("KITE_SOCK=/run/kite/homed.sock");
  }
  return env;
}

void BM_SpawnTrue(benchmark::State& state) {
  std::vector<std::string> env_s = EnvFor(static_cast<Mode>(state.range(0)));
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  char path[] = "/bin/true";
  char* argv[] = {path, nullptr};

  for (auto _ : state) {
    pid_t pid = fork();
    if (pid == 0) {
      execve(path, argv, envp.data());
      _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      state.SkipWithError("spawning /bin/true failed");
      break;
    }
  }
  state.SetLabel(state.range(0) == kNoPreload ? "no preload"
                 : state.range(0) == kInert   ? "shim, inert"
                                              : "shim, active");
}

BENCHMARK(BM_SpawnTrue)
    ->ArgName("mode")
    ->Arg(kNoPreload)
    ->Arg(kInert)
    ->Arg(kActive)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->MinTime(1.0)
    ->Repetitions(9)
    ->ReportAggregatesOnly(true);

}  // namespace

BENCHMARK_MAIN();
