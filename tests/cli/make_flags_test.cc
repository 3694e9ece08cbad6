// make_flags: -j detection in make's arguments and MAKEFLAGS, jobserver parsing and stripping,
// the serial-make fallback that spots a sub-make by its text.
#include "cli/make_flags.h"

#include <gtest/gtest.h>

namespace kite {
namespace {

TEST(MakeArgsSetJobs, SeesEverySpellingOfJobs) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"-j"}, {"-j8"}, {"-j", "8"}, {"all", "-j4"}, {"-kj"}, {"-kj8"}, {"--jobs"}, {"--jobs=3"},
           {"-s", "--jobs", "2"}, {"-C", "dir", "-j2"}}) {
    EXPECT_TRUE(MakeArgsSetJobs(args)) << ::testing::PrintToString(args);
  }
}

TEST(MakeArgsSetJobs, IgnoresValuesTargetsAndVariables) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {},
           {"all"},
           {"-C", "-j"},            // -j is -C's directory
           {"-Cj"},                 // attached value of -C
           {"-f", "-j4"},           // a makefile named -j4
           {"--file", "-j"},
           {"-Ojob"},               // -O's attached value contains a j
           {"-l2", "jobs"},
           {"J=-j4", "CFLAGS=-j"},  // variables
           {"-k", "--", "-j4"},     // after --, targets
           {"--just-print"}}) {
    EXPECT_FALSE(MakeArgsSetJobs(args)) << ::testing::PrintToString(args);
  }
}

TEST(MakeFlagsSetJobs, JobsWordOrJobserver) {
  EXPECT_TRUE(MakeFlagsSetJobs(" -j4 --jobserver-auth=3,4"));
  EXPECT_TRUE(MakeFlagsSetJobs("k -j"));
  EXPECT_TRUE(MakeFlagsSetJobs(" --jobserver-auth=fifo:/tmp/GMfifo1"));
  EXPECT_TRUE(MakeFlagsSetJobs(" --jobserver-fds=5,6 -j"));
  EXPECT_FALSE(MakeFlagsSetJobs(""));
  EXPECT_FALSE(MakeFlagsSetJobs("ks --no-print-directory"));
  EXPECT_FALSE(MakeFlagsSetJobs(" -- X=-j4"));  // a variable's value
  EXPECT_FALSE(MakeFlagsSetJobs("k -jobs"));    // not a number
}

TEST(ParseJobserver, PipeFifoNoneAndMalformed) {
  Jobserver js = ParseJobserver(" -j4 --jobserver-auth=3,4 --no-print-directory");
  EXPECT_EQ(js.kind, Jobserver::Kind::kPipe);
  EXPECT_EQ(js.read_fd, 3);
  EXPECT_EQ(js.write_fd, 4);
  js = ParseJobserver("-j --jobserver-fds=7,8");
  EXPECT_EQ(js.kind, Jobserver::Kind::kPipe);
  EXPECT_EQ(js.read_fd, 7);
  js = ParseJobserver(" -j2 --jobserver-auth=fifo:/tmp/GMfifo12");
  EXPECT_EQ(js.kind, Jobserver::Kind::kFifo);
  EXPECT_EQ(js.fifo, "/tmp/GMfifo12");
  // A sub-make's own jobserver word comes last and wins.
  js = ParseJobserver(" -j4 --jobserver-auth=3,4 --jobserver-auth=5,6");
  EXPECT_EQ(js.read_fd, 5);
  for (const char* bad : {"", " -j4", " --jobserver-auth=", " --jobserver-auth=3", " --jobserver-auth=a,b",
                          " --jobserver-auth=3,", " --jobserver-auth=fifo:", " -- X=--jobserver-auth=3,4"}) {
    EXPECT_EQ(ParseJobserver(bad).kind, Jobserver::Kind::kNone) << bad;
  }
}

TEST(StripJobserver, RemovesOnlyJobsAndJobserverBeforeTheVariables) {
  EXPECT_EQ(StripJobserver(" -j4 --jobserver-auth=3,4 --no-print-directory"), " --no-print-directory");
  EXPECT_EQ(StripJobserver("k -j --jobserver-auth=3,4"), "k");
  EXPECT_EQ(StripJobserver(" -j4 --jobserver-auth=3,4"), "");
  EXPECT_EQ(StripJobserver("ks -j8 --jobserver-auth=3,4 -- SHELL=/x/sh CC=gcc\\ -j4"),
            "ks -- SHELL=/x/sh CC=gcc\\ -j4");
  EXPECT_EQ(StripJobserver("w -- X=1"), "w -- X=1");
  EXPECT_EQ(StripJobserver(""), "");
}

TEST(CommandRunsMake, WordsAndPaths) {
  EXPECT_TRUE(CommandRunsMake("make -C sub all", "make"));
  EXPECT_TRUE(CommandRunsMake("cd sub && /usr/bin/make all", "make"));
  EXPECT_TRUE(CommandRunsMake("(cd sub; make)", "/usr/bin/make"));
  EXPECT_TRUE(CommandRunsMake("for d in a b; do gmake -C $d; done", "gmake"));
  EXPECT_FALSE(CommandRunsMake("gcc -c makefile.c -o make.o", "make"));
  EXPECT_FALSE(CommandRunsMake("echo remake", "make"));
  EXPECT_FALSE(CommandRunsMake("cmake ..", "make"));
  EXPECT_FALSE(CommandRunsMake("true", ""));
}

}  // namespace
}  // namespace kite
