// The one mapping between the two halves of a move in the Remote protocol (common/kite.thrift):
// what checkpoint_job returned is what restore_job needs, field for field. Header-only.
#pragma once

#include "kite/rpc/kite_types.h"

namespace kite {

// A restore_job request that continues the job `ck` describes: same image, identity, home,
// vpid, stream offsets, terminal mask, window size and terminal settings.
inline rpc::RestoreSpec RestoreSpecFor(const rpc::CheckpointReply& ck) {
  rpc::RestoreSpec rs;
  rs.image_path = ck.image_path;
  rs.creds = ck.creds;
  rs.home_host = ck.home_host;
  rs.vpid = ck.vpid;
  rs.home_ppid = ck.home_ppid;
  rs.stdout_offset = ck.stdout_offset;
  rs.stderr_offset = ck.stderr_offset;
  rs.stdin_offset = ck.stdin_offset;
  rs.tty_mask = ck.tty_mask;
  if (ck.__isset.winsize) rs.__set_winsize(ck.winsize);
  if (ck.__isset.termios) rs.__set_termios(ck.termios);
  rs.command = ck.command;
  rs.image_host = ck.image_host;
  return rs;
}

}  // namespace kite
