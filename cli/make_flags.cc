// make_flags: option scanning after GNU make's own getopt table (main.c `switches`).
#include "cli/make_flags.h"

#include <cstdlib>

namespace kite {
namespace {

// Short options of make that take a required value (attached or as the next argument).
bool ShortTakesValue(char c) { return c == 'C' || c == 'f' || c == 'I' || c == 'o' || c == 'W' || c == 'E'; }
// Short options whose value is optional and can only be attached (-l2.5, -Oline).
bool ShortTakesOptional(char c) { return c == 'l' || c == 'O'; }

bool LongTakesValue(std::string_view name) {
  for (std::string_view n : {"--file", "--makefile", "--directory", "--include-dir", "--old-file", "--assume-old",
                             "--new-file", "--assume-new", "--what-if", "--eval"}) {
    if (name == n) return true;
  }
  return false;
}

// The words of MAKEFLAGS before its " -- " (variable definitions follow it), and that tail.
void SplitFlags(std::string_view makeflags, std::vector<std::string_view>* words, std::string_view* tail) {
  size_t start = 0;
  *tail = {};
  while (start <= makeflags.size()) {
    size_t end = makeflags.find(' ', start);
    if (end == std::string_view::npos) end = makeflags.size();
    std::string_view w = makeflags.substr(start, end - start);
    if (w == "--") {
      *tail = makeflags.substr(start);
      return;
    }
    words->push_back(w);
    start = end + 1;
  }
}

bool IsJobsWord(std::string_view w) {
  if (w.size() < 2 || w[0] != '-' || w[1] != 'j') return false;
  for (char c : w.substr(2))
    if (c < '0' || c > '9') return false;
  return true;
}

bool ParseInt(std::string_view s, int* out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

bool MakeArgsSetJobs(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") return false;
    if (a.rfind("--", 0) == 0) {
      if (a == "--jobs" || a.rfind("--jobs=", 0) == 0) return true;
      if (LongTakesValue(a)) ++i;  // "--file F"; "--file=F" has no '=' match here
      continue;
    }
    if (a.size() < 2 || a[0] != '-') continue;  // a target or VAR=value
    for (size_t k = 1; k < a.size(); ++k) {
      const char c = a[k];
      if (c == 'j') return true;
      if (ShortTakesValue(c)) {
        if (k + 1 == a.size()) ++i;  // the value is the next argument
        break;
      }
      if (ShortTakesOptional(c)) break;
    }
  }
  return false;
}

bool MakeFlagsSetJobs(std::string_view makeflags) {
  std::vector<std::string_view> words;
  std::string_view tail;
  SplitFlags(makeflags, &words, &tail);
  for (std::string_view w : words) {
    if (IsJobsWord(w) || w.rfind("--jobserver-auth=", 0) == 0 || w.rfind("--jobserver-fds=", 0) == 0) return true;
  }
  return false;
}

Jobserver ParseJobserver(std::string_view makeflags) {
  std::vector<std::string_view> words;
  std::string_view tail;
  SplitFlags(makeflags, &words, &tail);
  Jobserver js;
  for (std::string_view w : words) {
    std::string_view value;
    if (w.rfind("--jobserver-auth=", 0) == 0) value = w.substr(17);
    else if (w.rfind("--jobserver-fds=", 0) == 0) value = w.substr(16);
    else continue;
    // The last one counts, as in make (a sub-make appends its own).
    js = Jobserver{};
    if (value.rfind("fifo:", 0) == 0) {
      if (value.size() > 5) {
        js.kind = Jobserver::Kind::kFifo;
        js.fifo = std::string(value.substr(5));
      }
      continue;
    }
    size_t comma = value.find(',');
    int r, wr;
    if (comma != std::string_view::npos && ParseInt(value.substr(0, comma), &r) &&
        ParseInt(value.substr(comma + 1), &wr)) {
      js.kind = Jobserver::Kind::kPipe;
      js.read_fd = r;
      js.write_fd = wr;
    }
  }
  return js;
}

std::string StripJobserver(std::string_view makeflags) {
  std::vector<std::string_view> words;
  std::string_view tail;
  SplitFlags(makeflags, &words, &tail);
  std::string out;
  bool first = true;
  for (std::string_view w : words) {
    if (IsJobsWord(w) || w.rfind("--jobserver-auth=", 0) == 0 || w.rfind("--jobserver-fds=", 0) == 0) continue;
    if (!first) out += ' ';
    out += w;
    first = false;
  }
  if (!tail.empty()) {
    if (!out.empty()) out += ' ';
    out += tail;
  }
  return out;
}

bool CommandRunsMake(std::string_view command, std::string_view make_name) {
  auto base = [](std::string_view p) {
    size_t slash = p.rfind('/');
    return slash == std::string_view::npos ? p : p.substr(slash + 1);
  };
  const std::string_view want = base(make_name);
  if (want.empty()) return false;
  constexpr std::string_view kSeparators = " \t\n;&|()`'\"<>";
  size_t start = 0;
  while (start < command.size()) {
    size_t end = command.find_first_of(kSeparators, start);
    if (end == std::string_view::npos) end = command.size();
    if (end > start && base(command.substr(start, end - start)) == want) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace kite
