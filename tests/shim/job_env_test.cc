// JobEnv::Parse: the KITE_JOB / KITE_HOME / KITE_SOCK contract, good and bad values.
#include "syscall-shim/job_env.h"

#include <string>

#include <gtest/gtest.h>

namespace kite::shim {
namespace {

TEST(JobEnvTest, ParsesTheContract) {
  JobEnv env;
  ASSERT_TRUE(env.Parse("4242:4000:17", "homebox", "/tmp/x/homed.sock"));
  EXPECT_EQ(env.vpid(), 4242);
  EXPECT_EQ(env.home_ppid(), 4000);
  EXPECT_EQ(env.real_root_pid(), 17);
  EXPECT_STREQ(env.home(), "homebox");
  EXPECT_STREQ(env.sock(), "/tmp/x/homed.sock");
}

TEST(JobEnvTest, SockDefaultsWhenUnsetOrEmpty) {
  JobEnv env;
  ASSERT_TRUE(env.Parse("1:0:2", "h", nullptr));
  EXPECT_STREQ(env.sock(), kDefaultSock);
  ASSERT_TRUE(env.Parse("1:0:2", "h", ""));
  EXPECT_STREQ(env.sock(), kDefaultSock);
  EXPECT_EQ(env.home_ppid(), 0);  // a parent outside the home's pid namespace
}

TEST(JobEnvTest, AcceptsLimits) {
  JobEnv env;
  ASSERT_TRUE(env.Parse("2147483647:2147483647:2147483647", std::string(64, 'h').c_str(),
                        ("/" + std::string(106, 's')).c_str()));
  EXPECT_EQ(env.vpid(), 2147483647);
  EXPECT_EQ(std::string(env.home()).size(), 64u);
}

TEST(JobEnvTest, RejectsMalformedJob) {
  for (const char* job :
       {"", "abc", "1:2", "1:2:3:4", "1:2:", ":1:2", "1::2", "-5:1:2", "+5:1:2", "5:-1:2",
        " 1:2:3", "1:2:3 ", "1:2:3\n", "0:1:2", "1:2:0", "2147483648:1:2", "1:2:99999999999",
        "00000000001:1:2", "1:2:3x", "0x10:1:2", "1;2;3"}) {
    JobEnv env;
    EXPECT_FALSE(env.Parse(job, "h", nullptr)) << "KITE_JOB=\"" << job << "\"";
    EXPECT_EQ(env.vpid(), 0) << "a failed parse must leave the object unchanged";
  }
  JobEnv env;
  EXPECT_FALSE(env.Parse(nullptr, "h", nullptr));
}

TEST(JobEnvTest, RejectsMalformedHome) {
  JobEnv env;
  EXPECT_FALSE(env.Parse("1:2:3", nullptr, nullptr));
  EXPECT_FALSE(env.Parse("1:2:3", "", nullptr));
  EXPECT_FALSE(env.Parse("1:2:3", std::string(65, 'h').c_str(), nullptr));
  EXPECT_FALSE(env.Parse("1:2:3", "home box", nullptr));
  EXPECT_FALSE(env.Parse("1:2:3", "home\n", nullptr));
  EXPECT_FALSE(env.Parse("1:2:3", "home\x7f", nullptr));
}

TEST(JobEnvTest, RejectsMalformedSock) {
  JobEnv env;
  EXPECT_FALSE(env.Parse("1:2:3", "h", "relative/homed.sock"));
  EXPECT_FALSE(env.Parse("1:2:3", "h", ("/" + std::string(107, 's')).c_str()));
}

TEST(JobEnvTest, FailedParseKeepsEarlierValue) {
  JobEnv env;
  ASSERT_TRUE(env.Parse("7:8:9", "h", nullptr));
  EXPECT_FALSE(env.Parse("1:2", "other", nullptr));
  EXPECT_EQ(env.vpid(), 7);
  EXPECT_STREQ(env.home(), "h");
}

}  // namespace
}  // namespace kite::shim
