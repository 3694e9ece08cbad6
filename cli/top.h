// `kite top`: every host of the cluster — state, owner idle time, load, slots — with the guest
// jobs it runs (home, vpid, uid, elapsed time, command), as this home's homed last heard from
// each host (about once a second). Live in ncurses, refreshed every second, `q` quits; with
// --once (or when stdout is not a terminal) one plain snapshot.
#pragma once

#include <string>
#include <vector>

#include "common/wire.h"

namespace kite {

// Returns the exit code; errors are printed ("kite: ...").
int RunTop(const std::string& socket_path, bool once);

// The view as lines of at most `width` characters (0: no limit): a summary line, the host
// table, each host's guests indented under it.
std::vector<std::string> RenderTop(const wire::TopReply& reply, size_t width);

}  // namespace kite
