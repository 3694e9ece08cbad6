// HostIdentity: the home's name in uname/gethostname, glibc's short-buffer semantics.
#include "syscall-shim/identity/host_identity.h"

#include <sys/utsname.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace kite::shim {
namespace {

TEST(HostIdentityTest, WithoutNameReportsTheHost) {
  HostIdentity id;
  utsname mine, got;
  ASSERT_EQ(::uname(&mine), 0);
  ASSERT_EQ(id.Uname(&got), 0);
  EXPECT_STREQ(got.nodename, mine.nodename);
  char buf[128];
  ASSERT_EQ(id.Gethostname(buf, sizeof buf), 0);
  EXPECT_STREQ(buf, mine.nodename);
}

TEST(HostIdentityTest, ReplacesOnlyTheNodename) {
  HostIdentity id;
  id.SetNodename("homebox");
  utsname mine, got;
  ASSERT_EQ(::uname(&mine), 0);
  ASSERT_EQ(id.Uname(&got), 0);
  EXPECT_STREQ(got.nodename, "homebox");
  EXPECT_STREQ(got.sysname, mine.sysname);
  EXPECT_STREQ(got.release, mine.release);
  EXPECT_STREQ(got.version, mine.version);
  EXPECT_STREQ(got.machine, mine.machine);
}

TEST(HostIdentityTest, LongestNameFits) {
  HostIdentity id;
  std::string name(64, 'n');
  id.SetNodename(name.c_str());
  utsname got;
  ASSERT_EQ(id.Uname(&got), 0);
  EXPECT_EQ(std::string(got.nodename), name);
}

TEST(HostIdentityTest, GethostnameShortBuffers) {
  HostIdentity id;
  id.SetNodename("homebox");  // 7 characters + NUL
  char buf[16];
  memset(buf, 'X', sizeof buf);
  EXPECT_EQ(id.Gethostname(buf, 8), 0);
  EXPECT_STREQ(buf, "homebox");

  memset(buf, 'X', sizeof buf);
  EXPECT_EQ(id.Gethostname(buf, 7), ENAMETOOLONG);
  EXPECT_EQ(std::string(buf, 8), "homeboxX");  // 7 bytes copied, not terminated

  memset(buf, 'X', sizeof buf);
  EXPECT_EQ(id.Gethostname(buf, 3), ENAMETOOLONG);
  EXPECT_EQ(std::string(buf, 4), "homX");

  EXPECT_EQ(id.Gethostname(buf, 0), ENAMETOOLONG);
  EXPECT_EQ(buf[0], 'h');  // untouched by the 0-byte call
}

TEST(HostIdentityTest, BadPointerIsEfault) {
  HostIdentity id;
  id.SetNodename("homebox");
  EXPECT_EQ(id.Uname(reinterpret_cast<utsname*>(8)), EFAULT);
}

}  // namespace
}  // namespace kite::shim
