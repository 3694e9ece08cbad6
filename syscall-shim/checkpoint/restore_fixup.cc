// The restore fixup area and restore tail (see restore_fixup.h). The tail is written in
// assembly so its bytes are exactly KITE_RESTORE_TAIL_BYTES, which kite-restore checks.
#include "syscall-shim/checkpoint/restore_fixup.h"

extern "C" {

kite_restore_fixup kite_restore_fixup_area = {KITE_FIXUP_MAGIC, 0, 0, 0, 0, 0, 0};

}  // extern "C"

// Entered with rsp on the restored signal frame; uses no stack.
__asm__(
    ".text\n"
    ".globl kite_restore_tail\n"
    ".hidden kite_restore_tail\n"
    ".type kite_restore_tail, @function\n"
    ".balign 16\n"
    "kite_restore_tail:\n"
    "  movl $11, %eax\n"  // munmap(rdi, rsi): the restorer's range
    "  syscall\n"
    "  movl $15, %eax\n"  // rt_sigreturn: every register and the FPU state from the frame
    "  syscall\n"
    "  ud2\n"
    ".size kite_restore_tail, . - kite_restore_tail\n");
