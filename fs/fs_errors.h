// kitefs errors: a Status that also carries the errno the kernel must see.
//
// kite's StatusCode says what a program should do about an error; a file system must also tell
// ENOTEMPTY from EISDIR from ENAMETOOLONG. So every kitefs error is made by FsError(), which
// takes the code from the one errno → Status table (PosixError, common/status.h) and ends the
// message with the errno's name, "(ENOTEMPTY)"; ErrnoOf() is the one Status → errno table the
// FUSE handlers and the server's exceptions use. A Status made elsewhere (no errno name) maps by
// its code (kNotFound → ENOENT, kUnavailable → EIO, ...).
#pragma once

#include <string_view>

#include "common/status.h"

namespace kite::fs {

// "<context>: <strerror(err)> (<ENAME>)", with the StatusCode PosixError gives `err`.
Status FsError(int err, std::string_view context);

// The errno for `s`: the one named at the end of its message, else one chosen by its code.
// 0 for OK.
int ErrnoOf(const Status& s);

}  // namespace kite::fs
