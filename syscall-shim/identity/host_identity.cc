// uname()/gethostname() showing the home host's name (see host_identity.h).
#include "syscall-shim/identity/host_identity.h"

#include <cerrno>
#include <cstring>

#include "syscall-shim/sys_calls.h"

namespace kite::shim {

void HostIdentity::SetNodename(const char* name) {
  memset(nodename_, 0, sizeof nodename_);
  strncpy(nodename_, name, sizeof nodename_ - 1);
}

int HostIdentity::Uname(struct utsname* buf) const {
  if (sys::uname(buf) != 0) return errno;
  if (nodename_[0] != '\0') memcpy(buf->nodename, nodename_, sizeof buf->nodename);
  return 0;
}

int HostIdentity::Gethostname(char* name, size_t len) const {
  struct utsname u;
  if (int e = Uname(&u)) return e;
  size_t node_len = strlen(u.nodename) + 1;
  memcpy(name, u.nodename, len < node_len ? len : node_len);
  return node_len > len ? ENAMETOOLONG : 0;
}

}  // namespace kite::shim
