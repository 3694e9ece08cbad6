// Config: defaults, every section, and clear errors for typos and wrong types.
#include "common/config.h"

#include <gtest/gtest.h>

namespace kite {
namespace {

TEST(ConfigTest, MinimalFileGetsDefaults) {
  auto c = ParseConfig("[hosts]\nnode1 = \"10.0.0.1\"\n", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->home_port, 7070);
  EXPECT_EQ(c->remote_port, 7071);
  EXPECT_GT(c->slots, 0);
  EXPECT_FALSE(c->host_name.empty());
  EXPECT_FALSE(c->allow_root);
  EXPECT_EQ(c->socket_path(), "/run/kite/homed.sock");
  EXPECT_EQ(*c->AddressOf("node1"), "10.0.0.1");
}

TEST(ConfigTest, EverySectionIsRead) {
  auto c = ParseConfig(R"(
[cluster]
name = "lab"
allow_root = true
shared_paths = ["/kite", "/home"]
[host]
name = "node2"
slots = 3
[ports]
home = 9000
remote = 9001
[remoted]
owner_detect = "none"
idle_after_s = 5
guest_memory_limit_mb = 512
[paths]
run_dir = "/tmp/x"
)", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster_name, "lab");
  EXPECT_TRUE(c->allow_root);
  EXPECT_EQ(c->shared_paths.size(), 2u);
  EXPECT_EQ(c->host_name, "node2");
  EXPECT_EQ(c->slots, 3);
  EXPECT_EQ(c->home_port, 9000);
  EXPECT_EQ(c->owner_detect, "none");
  EXPECT_EQ(c->guest_memory_limit_mb, 512);
  EXPECT_EQ(c->socket_path(), "/tmp/x/homed.sock");
}

TEST(ConfigTest, TyposAndWrongTypesAreErrorsNamingTheKey) {
  auto c = ParseConfig("[host]\nslot = 3\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown key 'slot'"), std::string::npos) << c.status().message();
  c = ParseConfig("[hots]\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown section"), std::string::npos);
  c = ParseConfig("[host]\nslots = \"three\"\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("slots must be an integer"), std::string::npos);
  c = ParseConfig("[remoted]\nowner_detect = \"maybe\"\n", "t.toml");
  EXPECT_FALSE(c.ok());
  c = ParseConfig("[ports]\nhome = 70000\n", "t.toml");
  EXPECT_FALSE(c.ok());
}

TEST(ConfigTest, SyntaxErrorsSayWhere) {
  auto c = ParseConfig("[host]\nname = \n", "bad.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().rfind("bad.toml:2:", 0), 0u) << c.status().message();
}

TEST(ConfigTest, UnknownHostNamesTheKnownOnes) {
  auto c = ParseConfig("[hosts]\na = \"1.1.1.1\"\nb = \"1.1.1.2\"\n", "t.toml");
  ASSERT_TRUE(c.ok());
  auto addr = c->AddressOf("zz");
  ASSERT_FALSE(addr.ok());
  EXPECT_EQ(addr.status().code(), StatusCode::kNotFound);
  EXPECT_NE(addr.status().message().find("a, b"), std::string::npos);
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto c = LoadConfig("/nonexistent/kite.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kite
