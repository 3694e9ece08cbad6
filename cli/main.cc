// kite: the user's command. main() parses and dispatches; the work is in deputy.cc and
// commands.cc.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "cli/checkpoint_file.h"
#include "cli/commands.h"
#include "cli/deputy.h"
#include "cli/make_command.h"
#include "cli/top.h"
#include "common/config.h"
#include "common/wire_io.h"

namespace {

// The socket of this host's homed, from the config when there is one.
std::string SocketPath(const std::string& config_path) {
  auto config = kite::LoadConfig(config_path);
  if (config.ok()) return config->socket_path();
  if (!config_path.empty() || config.status().code() != kite::StatusCode::kNotFound) {
    fprintf(stderr, "kite: %s\n", config.status().message().c_str());
    std::exit(2);
  }
  return kite::wire::kDefaultSocketPath;
}

}  // namespace

int main(int argc, char** argv) {
  // make runs kite as its SHELL under this name: one recipe, as a kite job.
  if (argc > 0 && kite::IsKiteShellName(argv[0])) kite::RunKiteShell(argc, argv);

  // `kite [--config F] make [--quiet] [--] [MAKE ARGS...]`: everything after `make` is make's,
  // except a leading --quiet (make's own --quiet is also spelled -s and --silent).
  {
    int i = 1;
    std::string config;
    if (i + 1 < argc && std::string(argv[i]) == "--config") {
      config = argv[i + 1];
      i += 2;
    } else if (i < argc && std::string(argv[i]).rfind("--config=", 0) == 0) {
      config = std::string(argv[i]).substr(9);
      i += 1;
    }
    if (i < argc && std::string(argv[i]) == "make") {
      kite::MakeOptions m;
      ++i;
      for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--quiet") m.quiet = true;
        else if (a == "--kite-help") {
          printf("Usage: kite make [--quiet] [--] [MAKE ARGS...]\n"
                 "Runs GNU make with every recipe as a kite job on an idle host; sub-makes stay at home.\n"
                 "-j defaults to the free slots of the idle hosts; --quiet drops the summary.\n"
                 "Environment: KITE_MAKE (the make program), KITE_MAKE_SHELL (the recipes' shell, default /bin/sh).\n");
          return 0;
        } else if (a == "--") {
          ++i;
          break;
        } else {
          break;
        }
      }
      m.args.assign(argv + i, argv + argc);
      m.socket_path = SocketPath(config);
      return kite::RunMake(m);
    }
  }

  CLI::App app{"kite: run processes on the idle hosts of a kite cluster as if they ran here"};
  app.require_subcommand(1);
  std::string config_path;
  app.add_option("--config", config_path, "configuration file (default: $KITE_CONFIG or /etc/kite/kite.toml)");

  // kite run
  kite::DeputyOptions run_opts;
  bool no_local = false;
  auto* run = app.add_subcommand("run", "run a command on an idle host; exits as the command did");
  run->add_option("--host", run_opts.host, "run on this host (no fallback to home)");
  run->add_flag("--no-local", no_local, "fail (status 255) instead of running at home when no host has a free slot");
  run->add_flag("-v,--verbose", run_opts.verbose, "say on stderr where the command runs");
  // Everything from the first positional on is the command, options included (`kite run ls -l`).
  run->prefix_command();
  run->allow_extras();
  run->footer("Usage: kite run [OPTIONS] [--] COMMAND [ARGS...]\nExample: kite run -- make -C src all\nStatus 255 with a 'kite:' message means kite itself failed.");

  // kite hosts / ps
  bool json = false, all_users = false;
  auto* hosts = app.add_subcommand("hosts", "list the cluster's hosts: state, load, slots, owner idle time, guests");
  hosts->add_flag("--json", json, "print JSON");
  auto* ps = app.add_subcommand("ps", "list your jobs, cluster-wide: vpid, home, host, state, elapsed, command");
  ps->add_flag("--json", json, "print JSON");
  ps->add_flag("-a,--all", all_users, "every user's jobs (root only)");

  // kite top
  bool top_once = false;
  auto* top = app.add_subcommand("top", "live view of every host: state, owner idle time, load, slots, guest jobs (q quits)");
  top->add_flag("--once", top_once, "print one plain snapshot and exit");

  // kite make (parsed above; listed here for --help)
  app.add_subcommand("make", "run GNU make with each recipe as a job on an idle host (kite make --kite-help)")
      ->allow_extras();

  // kite owner HOST active|idle|auto
  std::string owner_host, owner_mode;
  auto* owner = app.add_subcommand("owner", "force a host's owner state (for tests and demos): active, idle or auto");
  owner->add_option("host", owner_host, "the host")->required();
  owner->add_option("state", owner_mode, "active: the owner is back, the host takes no guests; idle; auto: detect")
      ->required()
      ->check(CLI::IsMember({"active", "idle", "auto"}));

  // kite migrate VPID [--to HOST] / kite evict HOST
  int migrate_vpid = 0;
  std::string migrate_to, evict_host;
  auto* migrate = app.add_subcommand(
      "migrate", "move a running job of yours (its vpid, from kite ps) to another host; it goes on where it was");
  migrate->add_option("vpid", migrate_vpid, "the job's vpid (its pid at home)")->required()->check(CLI::PositiveNumber);
  migrate->add_option("--to", migrate_to, "the host to move it to (default: the least-loaded other idle host, else home)");
  migrate->footer("The job is checkpointed and stopped where it runs, restored on the target, and only then killed\n"
                  "where it was; when it cannot move (threads, sockets, ...) kite says why and the job runs on where it was.");
  int checkpoint_vpid = 0;
  std::string checkpoint_to, restart_file, restart_host;
  auto* checkpoint = app.add_subcommand(
      "checkpoint", "save a running job of yours to a file it can be restarted from (it runs on)");
  checkpoint->add_option("vpid", checkpoint_vpid, "the job's vpid (from kite ps)")->required()->check(CLI::PositiveNumber);
  checkpoint->add_option("--to", checkpoint_to, "the checkpoint file, *.job, on the cluster file system (its images "
                                               "are written beside it)")
      ->required();
  checkpoint->footer("Every process of the job is stopped for as long as its memory takes to write, then goes on.\n"
                     "The file outlives the host the job ran on: `kite restart FILE` runs it again from there.");
  auto* restart = app.add_subcommand("restart", "run a job again from a checkpoint file (kite checkpoint --to)");
  restart->add_option("file", restart_file, "the checkpoint file (*.job)")->required();
  restart->add_option("--host", restart_host, "the host to run it on (default: an idle host, else home)");
  restart->footer("kite restart is the restored job's deputy, as kite run is a job's: its output, input, signals\n"
                  "and exit status are the job's. The job goes on from the checkpoint; its files are as they are\n"
                  "now. Restart it from the home it was checkpointed at: its processes still know that home.");
  auto* evict = app.add_subcommand("evict", "send every guest job away from a host and keep it free of guests (root)");
  evict->add_option("host", evict_host, "the host")->required();
  evict->footer("Like the owner coming back: guests migrate home (config [homed] evict_to); build recipes that\n"
                "cannot migrate are rerun elsewhere. `kite owner HOST auto` lets the host take guests again.");

  // kite cluster ...: handled by kite-admin (it needs OpenSSL; see cli/admin_main.cc).
  app.add_subcommand("cluster", "cluster administration: `kite cluster init --help`")->allow_extras()->prefix_command();
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--config") { ++i; continue; }
    if (std::string(argv[i]) != "cluster") break;
    std::string admin = kite::ExecutableDir() + "/kite-admin";
    std::vector<char*> args = {const_cast<char*>(admin.c_str())};
    for (int k = i + 1; k < argc; ++k) args.push_back(argv[k]);
    args.push_back(nullptr);
    execv(admin.c_str(), args.data());
    fprintf(stderr, "kite: cannot run %s: %s\n", admin.c_str(), strerror(errno));
    return 2;
  }

  // `kite run [OPTIONS] -- CMD...`: everything after the first `--` is the command, untouched
  // by option parsing (CLI11 would take it as positionals of `run`).
  std::vector<std::string> command_after_dashes;
  bool saw_dashes = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--config") { ++i; continue; }
    if (std::string(argv[i]) != "run") break;
    for (int d = i + 1; d < argc; ++d) {
      if (std::string(argv[d]) == "--") {
        command_after_dashes.assign(argv + d + 1, argv + argc);
        saw_dashes = true;
        argc = d;
        break;
      }
    }
    break;
  }
  CLI11_PARSE(app, argc, argv);

  if (*run) {
    run_opts.allow_local = !no_local;
    run_opts.argv = saw_dashes ? command_after_dashes : run->remaining();
    if (run_opts.argv.empty()) {
      fprintf(stderr, "kite run: no command given\n%s", run->help().c_str());
      return 2;
    }
    run_opts.socket_path = SocketPath(config_path);
    kite::RunDeputy(run_opts);
  }
  if (*hosts) return kite::RunHosts(SocketPath(config_path), json);
  if (*ps) return kite::RunPs(SocketPath(config_path), all_users, json);
  if (*top) return kite::RunTop(SocketPath(config_path), top_once);
  if (*owner) return kite::RunOwner(SocketPath(config_path), owner_host, owner_mode);
  if (*migrate) return kite::RunMigrate(SocketPath(config_path), migrate_vpid, migrate_to);
  if (*evict) return kite::RunEvict(SocketPath(config_path), evict_host);
  if (*checkpoint) return kite::RunCheckpoint(SocketPath(config_path), checkpoint_vpid, checkpoint_to);
  if (*restart) {
    kite::DeputyOptions d;
    d.socket_path = SocketPath(config_path);
    d.host = restart_host;
    d.allow_local = false;
    auto path = kite::AbsolutePath(restart_file);
    if (!path.ok()) {
      fprintf(stderr, "kite: %s\n", path.status().message().c_str());
      return 2;
    }
    d.restart = *path;
    d.argv = {"kite-restart", *path};
    kite::RunDeputy(d);
  }
  return 0;
}
