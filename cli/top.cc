// kite top: one kTopQuery per refresh; RenderTop() is shared by the live and --once views.
#include "cli/top.h"

#include <curses.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "cli/table.h"
#include "common/wire_io.h"

namespace kite {
namespace {

bool Query(const std::string& socket_path, wire::TopReply* reply, std::string* error) {
  int fd = wire::ConnectUnix(socket_path.c_str());
  if (fd < 0) {
    *error = "cannot reach kite-homed at " + socket_path + ": " + strerror(-fd) + " (is kite-homed running?)";
    return false;
  }
  wire::MsgType type;
  std::string body;
  int err = wire::Send(fd, wire::MsgType::kTopQuery);
  if (!err) err = wire::RecvFrame(fd, &type, &body);
  close(fd);
  if (err) {
    *error = std::string("talking to kite-homed: ") + strerror(err);
    return false;
  }
  if (type == wire::MsgType::kError) {
    wire::ErrorMsg e;
    *error = wire::DecodeBody(body, &e) == 0 ? e.message : "malformed error from kite-homed";
    return false;
  }
  if (type != wire::MsgType::kTopReply || wire::DecodeBody(body, reply) != 0) {
    *error = "malformed reply from kite-homed (is it older than this kite?)";
    return false;
  }
  return true;
}

std::string Fixed(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string Cut(const std::string& s, size_t width) { return width == 0 || s.size() <= width ? s : s.substr(0, width); }

}  // namespace

std::vector<std::string> RenderTop(const wire::TopReply& reply, size_t width) {
  int slots = 0, free = 0, guests = 0, idle = 0;
  for (const auto& t : reply.hosts) {
    if (t.info.state == "unreachable") continue;
    slots += t.info.slots;
    free += t.info.free_slots;
    guests += static_cast<int>(t.guests.size());
    idle += t.info.state == "idle";
  }
  std::vector<std::string> lines;
  lines.push_back(Cut(std::to_string(reply.hosts.size()) + " hosts (" + std::to_string(idle) + " idle), " +
                          std::to_string(free) + "/" + std::to_string(slots) + " guest slots free, " +
                          std::to_string(guests) + " guest job" + (guests == 1 ? "" : "s"),
                      width));
  std::vector<std::vector<std::string>> rows = {{"HOST", "STATE", "OWNER IDLE", "LOAD", "SLOTS", "GUESTS"}};
  for (const auto& t : reply.hosts) {
    const auto& h = t.info;
    const bool up = h.state != "unreachable";
    rows.push_back({h.host, h.state + (h.override_mode != "auto" && up ? " (forced)" : ""),
                    up ? FormatDuration(h.owner_idle_ms) : "-", up ? Fixed(h.load1) : "-",
                    up ? std::to_string(h.slots - h.free_slots) + "/" + std::to_string(h.slots) + " used" : "-",
                    up ? std::to_string(h.guests) : "-"});
  }
  std::string table = FormatTable(rows, {false, false, true, true, true, true});
  size_t pos = 0;
  for (size_t row = 0; row < rows.size(); ++row) {
    size_t nl = table.find('\n', pos);
    lines.push_back(Cut(table.substr(pos, nl - pos), width));
    pos = nl + 1;
    if (row == 0) continue;
    for (const auto& g : reply.hosts[row - 1].guests) {
      lines.push_back(Cut("    " + g.home + ":" + std::to_string(g.vpid) + "  uid " + std::to_string(g.uid) + "  " +
                              FormatDuration(g.elapsed_ms) + "  " + g.command,
                          width));
    }
  }
  return lines;
}

int RunTop(const std::string& socket_path, bool once) {
  wire::TopReply reply;
  std::string error;
  if (once || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
    if (!Query(socket_path, &reply, &error)) {
      fprintf(stderr, "kite: %s\n", error.c_str());
      return 1;
    }
    for (const auto& l : RenderTop(reply, 0)) printf("%s\n", l.c_str());
    return 0;
  }
  initscr();
  cbreak();
  noecho();
  keypad(stdscr, TRUE);
  curs_set(0);
  timeout(1000);  // getch() waits at most a second: the refresh period
  for (;;) {
    erase();
    std::vector<std::string> lines;
    if (Query(socket_path, &reply, &error)) {
      lines = RenderTop(reply, static_cast<size_t>(COLS > 0 ? COLS : 80));
      lines[0] = Cut("kite top: " + lines[0] + "   (q quits)", static_cast<size_t>(COLS));
    } else {
      lines.push_back(Cut("kite top: " + error, static_cast<size_t>(COLS)));
    }
    for (int y = 0; y < LINES && y < static_cast<int>(lines.size()); ++y) {
      if (y == 0 || y == 1) attron(A_BOLD);
      mvaddnstr(y, 0, lines[static_cast<size_t>(y)].c_str(), COLS);
      if (y == 0 || y == 1) attroff(A_BOLD);
    }
    refresh();
    int ch = getch();
    if (ch == 'q' || ch == 'Q') break;
  }
  endwin();
  return 0;
}

}  // namespace kite
