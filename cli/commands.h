// The `kite` subcommands other than `run` (cli/deputy.h) and `cluster` (cli/admin_main.cc):
// each returns the process exit code and prints its own errors ("kite: ..." on stderr).
#pragma once

#include <map>
#include <string>

namespace kite {

int RunHosts(const std::string& socket_path, bool json);
int RunPs(const std::string& socket_path, bool all_users, bool json);
int RunOwner(const std::string& socket_path, const std::string& host, const std::string& mode);
// kite migrate VPID [--to HOST]: moves one of the caller's jobs (home: this host). Prints where
// from and to, the freeze time and image size; on failure why, and the job runs on.
int RunMigrate(const std::string& socket_path, int vpid, const std::string& to);
// kite checkpoint VPID --to FILE: checkpoints one of the caller's jobs where it runs (it runs
// on) and moves the checkpoint to FILE (cli/checkpoint_file.h). Prints what was saved.
int RunCheckpoint(const std::string& socket_path, int vpid, const std::string& file);
// kite evict HOST: every guest leaves HOST (root); prints how many and the time to clear.
int RunEvict(const std::string& socket_path, const std::string& host);

}  // namespace kite
