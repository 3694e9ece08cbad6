// The checkpoint handler's scratch memory (see dump_arena.h).
#include "syscall-shim/checkpoint/dump_arena.h"

#include <sys/mman.h>

#include "syscall-shim/checkpoint/raw_syscall.h"

namespace kite::shim {

DumpArena::~DumpArena() {
  if (base_ != nullptr) raw::Syscall(SYS_munmap, raw::Arg(base_), static_cast<long>(kReserve));
}

bool DumpArena::Init(long* err) {
  long r = raw::Syscall(SYS_mmap, 0, static_cast<long>(kReserve), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw::Failed(r)) {
    *err = r;
    return false;
  }
  base_ = reinterpret_cast<char*>(r);
  return true;
}

void* DumpArena::Alloc(size_t size, size_t align) {
  size_t at = (used_ + align - 1) & ~(align - 1);
  if (at > kReserve || size > kReserve - at) return nullptr;
  used_ = at + size;
  return base_ + at;
}

}  // namespace kite::shim
