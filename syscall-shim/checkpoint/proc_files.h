// File reading for the checkpoint handler with raw system calls (see raw_syscall.h): /proc
// files are read whole into caller buffers.
#pragma once

#include <sys/stat.h>

#include <cstddef>

namespace kite::shim {

// Reads `path` into buf[0, cap - 1) and NUL-terminates it. Returns the length, or -errno;
// -EFBIG when the file does not fit.
long ReadWholeFile(const char* path, char* buf, size_t cap);
// stat(2)/fstat(2) without errno: 0 or -errno.
long StatPath(const char* path, struct stat* st);
long StatFd(int fd, struct stat* st);
// Opens with O_CLOEXEC added; fd or -errno.
long OpenFile(const char* path, int flags, int mode = 0);
void CloseFd(int fd);
// readlink into buf (NUL-terminated); length or -errno (-ENAMETOOLONG when it does not fit).
long ReadLink(const char* path, char* buf, size_t cap);

}  // namespace kite::shim
