// kite-homed: runs the home-node daemon until SIGTERM/SIGINT (common/daemon_main.h).
#include "common/daemon_main.h"
#include "homed/homed.h"

int main(int argc, char** argv) {
  return kite::RunDaemonMain<kite::HomeDaemon>(argc, argv, "homed",
                                               "kite-homed: the home-node daemon of a kite cluster (see kite(1))");
}
