// Plain-text tables and JSON strings for the CLI's listings.
#pragma once

#include <string>
#include <vector>

namespace kite {

// Columns padded to their widest cell, two spaces apart; numeric columns (`right`) aligned
// right. The header row is the first row.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right);
// A JSON string literal for arbitrary bytes (control characters and invalid UTF-8 escaped).
std::string JsonString(const std::string& s);
// "1.2s", "3m04s", "2h05m"
std::string FormatDuration(int64_t ms);

}  // namespace kite
