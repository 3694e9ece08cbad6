// The `kite` subcommands other than `run` (cli/deputy.h) and `cluster` (cli/admin_main.cc):
// each returns the process exit code and prints its own errors ("kite: ..." on stderr).
#pragma once

#include <map>
#include <string>

namespace kite {

int RunHosts(const std::string& socket_path, bool json);
int RunPs(const std::string& socket_path, bool all_users, bool json);
int RunOwner(const std::string& socket_path, const std::string& host, const std::string& mode);

}  // namespace kite
