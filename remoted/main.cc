// kite-remoted: runs the remote daemon until SIGTERM/SIGINT, which kill every guest job before
// it exits (common/daemon_main.h). Guest jobs get a clean signal mask from the launcher.
#include "common/daemon_main.h"
#include "remoted/remoted.h"

int main(int argc, char** argv) {
  return kite::RunDaemonMain<kite::RemoteDaemon>(
      argc, argv, "remoted", "kite-remoted: the remote daemon of a kite cluster (runs guest jobs; see kite(1))");
}
