// Table and JSON formatting for `kite hosts` and `kite ps`.
#include "cli/table.h"

#include <algorithm>
#include <cstdio>

namespace kite {

std::string FormatTable(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) line += "  ";
      size_t pad = width[i] - r[i].size();
      bool last = i + 1 == r.size();
      if (i < right.size() && right[i]) line += std::string(pad, ' ') + r[i];
      else line += r[i] + (last ? "" : std::string(pad, ' '));
    }
    out += line + "\n";
  }
  return out;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c >= 0x80) {
          // Keep valid UTF-8 sequences; escape stray bytes as U+FFFD's neighbours would lose
          // information, so write them as \u00XX (Latin-1), which round-trips byte values.
          int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
          bool valid = len > 0 && i + len <= s.size();
          for (int k = 1; valid && k < len; ++k) valid = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
          if (valid) {
            out.append(s, i, static_cast<size_t>(len));
            i += static_cast<size_t>(len - 1);
          } else {
            char buf[8];
            snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          }
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string FormatDuration(int64_t ms) {
  char buf[32];
  if (ms < 0) return "-";
  if (ms < 60'000) snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  else if (ms < 3'600'000) snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000), static_cast<long long>(ms / 1000 % 60));
  else snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000), static_cast<long long>(ms / 60'000 % 60));
  return buf;
}

}  // namespace kite
