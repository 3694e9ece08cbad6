// The shim's side of a restore: the fixup area kite-restore fills in (struct
// kite_restore_fixup in image_format.h) and the tail it jumps to, both at addresses the image
// records. Hidden symbols: nothing outside the shim links against them.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "syscall-shim/image/image_format.h"

extern "C" {
// Written by kite-restore only, read by the shim (volatile reads: the compiler cannot know).
extern kite_restore_fixup kite_restore_fixup_area __attribute__((visibility("hidden")));
// Machine code (KITE_RESTORE_TAIL_BYTES): munmap(rdi, rsi), then rt_sigreturn at rsp.
void kite_restore_tail() __attribute__((visibility("hidden")));
}

namespace kite::shim {

class RestoreFixup {
 public:
  // How many times this process's memory has been restored (0: it never was).
  static uint32_t count() { return Read().restore_count; }
  // The process's real pid after the last restore (valid when count() > 0).
  static pid_t real_pid() { return Read().real_pid; }
  static uint64_t area_address() { return reinterpret_cast<uint64_t>(&kite_restore_fixup_area); }
  static uint64_t tail_address() { return reinterpret_cast<uint64_t>(&kite_restore_tail); }

 private:
  static kite_restore_fixup Read() {
    kite_restore_fixup f;
    const volatile kite_restore_fixup* a = &kite_restore_fixup_area;
    f.restore_count = a->restore_count;
    f.real_pid = a->real_pid;
    return f;
  }
};

}  // namespace kite::shim
