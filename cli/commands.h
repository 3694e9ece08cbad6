// The `kite` subcommands other than `run` (cli/deputy.h): each returns the process exit code
// and prints its own errors ("kite: ..." on stderr).
#pragma once

#include <map>
#include <string>

#include "common/certs.h"

namespace kite {

int RunHosts(const std::string& socket_path, bool json);
int RunPs(const std::string& socket_path, bool all_users, bool json);
int RunOwner(const std::string& socket_path, const std::string& host, const std::string& mode);
int RunClusterInit(const ClusterInitOptions& options);

}  // namespace kite
