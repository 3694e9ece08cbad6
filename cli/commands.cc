// `kite hosts`, `kite ps`, `kite owner`, `kite migrate`, `kite evict`: requests to homed's local
// socket.
#include "cli/commands.h"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "cli/checkpoint_file.h"
#include "cli/table.h"
#include "common/wire_io.h"

namespace kite {
namespace {

int Error(const std::string& m) {
  fprintf(stderr, "kite: %s\n", m.c_str());
  return 1;
}

// Sends one request and reads the reply; on failure prints why and returns false.
template <typename Req>
bool Ask(const std::string& socket_path, wire::MsgType type, const Req& req, wire::MsgType* reply_type,
         std::string* body) {
  int fd = wire::ConnectUnix(socket_path.c_str());
  if (fd < 0) {
    Error("cannot reach kite-homed at " + socket_path + ": " + strerror(-fd) + " (is kite-homed running?)");
    return false;
  }
  int err = wire::Send(fd, type, req);
  if (!err) err = wire::RecvFrame(fd, reply_type, body);
  close(fd);
  if (err) {
    Error(std::string("talking to kite-homed: ") + strerror(err));
    return false;
  }
  if (*reply_type == wire::MsgType::kError) {
    wire::ErrorMsg e;
    Error(wire::DecodeBody(*body, &e) == 0 ? e.message : "malformed error from kite-homed");
    return false;
  }
  return true;
}

std::string Fixed(double v, int digits) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

int RunHosts(const std::string& socket_path, bool json) {
  wire::MsgType type;
  std::string body;
  if (!Ask(socket_path, wire::MsgType::kHostsQuery, wire::Empty{}, &type, &body)) return 1;
  wire::HostsReply reply;
  if (type != wire::MsgType::kHostsReply || wire::DecodeBody(body, &reply) != 0) return Error("malformed reply from kite-homed");
  if (json) {
    std::string out = "[";
    for (size_t i = 0; i < reply.hosts.size(); ++i) {
      const auto& h = reply.hosts[i];
      out += (i ? ",\n " : "") + std::string("{\"host\": ") + JsonString(h.host) + ", \"state\": " + JsonString(h.state) +
             ", \"override\": " + JsonString(h.override_mode) + ", \"load1\": " + Fixed(h.load1, 2) +
             ", \"slots\": " + std::to_string(h.slots) + ", \"free_slots\": " + std::to_string(h.free_slots) +
             ", \"guests\": " + std::to_string(h.guests) + ", \"owner_idle_ms\": " + std::to_string(h.owner_idle_ms) +
             ", \"free_memory_kb\": " + std::to_string(h.free_memory_kb) +
             ", \"last_report_ms_ago\": " + std::to_string(h.last_report_ms_ago) + "}";
    }
    printf("%s]\n", out.c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"HOST", "STATE", "LOAD", "SLOTS", "GUESTS", "OWNER IDLE", "FREE MEM"}};
  for (const auto& h : reply.hosts) {
    bool up = h.state != "unreachable";
    std::string state = h.state + (h.override_mode != "auto" && up ? " (forced)" : "");
    rows.push_back({h.host, state, up ? Fixed(h.load1, 2) : "-",
                    up ? std::to_string(h.free_slots) + "/" + std::to_string(h.slots) : "-",
                    up ? std::to_string(h.guests) : "-", up ? FormatDuration(h.owner_idle_ms) : "-",
                    up ? std::to_string(h.free_memory_kb / 1024) + "M" : "-"});
  }
  fputs(FormatTable(rows, {false, false, true, true, true, true, true}).c_str(), stdout);
  return 0;
}

int RunPs(const std::string& socket_path, bool all_users, bool json) {
  wire::PsQuery q;
  q.all_users = all_users ? 1 : 0;
  wire::MsgType type;
  std::string body;
  if (!Ask(socket_path, wire::MsgType::kPsQuery, q, &type, &body)) return 1;
  wire::PsReply reply;
  if (type != wire::MsgType::kPsReply || wire::DecodeBody(body, &reply) != 0) return Error("malformed reply from kite-homed");
  if (json) {
    std::string out = "[";
    for (size_t i = 0; i < reply.jobs.size(); ++i) {
      const auto& j = reply.jobs[i];
      out += (i ? ",\n " : "") + std::string("{\"vpid\": ") + std::to_string(j.vpid) + ", \"home\": " + JsonString(j.home) +
             ", \"host\": " + JsonString(j.host) + ", \"state\": " + JsonString(j.state) +
             ", \"uid\": " + std::to_string(j.uid) + ", \"elapsed_ms\": " + std::to_string(j.elapsed_ms) +
             ", \"command\": " + JsonString(j.command) + "}";
    }
    printf("%s]\n", out.c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"VPID", "HOME", "HOST", "STATE", "UID", "ELAPSED", "COMMAND"}};
  for (const auto& j : reply.jobs)
    rows.push_back({std::to_string(j.vpid), j.home, j.host, j.state, std::to_string(j.uid), FormatDuration(j.elapsed_ms), j.command});
  fputs(FormatTable(rows, {true, false, false, false, true, true, false}).c_str(), stdout);
  return 0;
}

int RunOwner(const std::string& socket_path, const std::string& host, const std::string& mode) {
  wire::OwnerSet m;
  m.host = host;
  m.mode = mode;
  wire::MsgType type;
  std::string body;
  if (!Ask(socket_path, wire::MsgType::kOwnerSet, m, &type, &body)) return 1;
  return 0;
}

int RunMigrate(const std::string& socket_path, int vpid, const std::string& to) {
  wire::MigrateMsg m;
  m.vpid = vpid;
  m.to = to;
  wire::MsgType type;
  std::string body;
  if (!Ask(socket_path, wire::MsgType::kMigrate, m, &type, &body)) return 1;
  wire::MoveReply r;
  if (type != wire::MsgType::kMoveReply || wire::DecodeBody(body, &r) != 0) return Error("malformed reply from kite-homed");
  printf("job %d moved from %s to %s in %lld ms (image %.1f MiB)\n", r.vpid, r.from.c_str(), r.to.c_str(),
         static_cast<long long>(r.freeze_ms), static_cast<double>(r.image_bytes) / (1 << 20));
  return 0;
}

int RunCheckpoint(const std::string& socket_path, int vpid, const std::string& file) {
  if (file.empty()) return Error("no checkpoint file given (--to FILE)");
  auto abs = AbsolutePath(file);
  if (!abs.ok()) return Error(abs.status().message());
  const std::string dest = *abs;
  if (dest.size() <= 4 || dest.compare(dest.size() - 4, 4, ".job") != 0)
    return Error("the checkpoint file must be named *.job (" + dest + ")");
  wire::CheckpointMsg m;
  m.vpid = vpid;
  wire::MsgType type;
  std::string body;
  if (!Ask(socket_path, wire::MsgType::kCheckpoint, m, &type, &body)) return 1;
  wire::CheckpointReply r;
  if (type != wire::MsgType::kCheckpointReply || wire::DecodeBody(body, &r) != 0)
    return Error("malformed reply from kite-homed");
  Status moved = MoveCheckpoint(r.manifest, dest);
  if (!moved.ok()) return Error(moved.message() + " (the checkpoint stays at " + r.manifest + ")");
  printf("job %d checkpointed on %s to %s: %d process(es), %.1f MiB, stopped %lld ms; it runs on\n", vpid,
         r.host.c_str(), dest.c_str(), r.processes, static_cast<double>(r.bytes) / (1 << 20),
         static_cast<long long>(r.ms));
  return 0;
}

int RunEvict(const std::string& socket_path, const std::string& host) {
  wire::EvictMsg m;
  m.host = host;
  wire::MsgType type;
  std::string body;
  if (!Ask(socket_path, wire::MsgType::kEvict, m, &type, &body)) return 1;
  wire::EvictReply r;
  if (type != wire::MsgType::kEvictReply || wire::DecodeBody(body, &r) != 0) return Error("malformed reply from kite-homed");
  if (r.guests_left > 0) {
    fprintf(stderr, "kite: %s still has %d of its %d guest job(s); it takes no new ones (kite owner %s auto undoes this)\n",
            host.c_str(), r.guests_left, r.guests_before, host.c_str());
    return 1;
  }
  printf("%s cleared of %d guest job(s) in %lld ms; it takes no guests until `kite owner %s auto`\n", host.c_str(),
         r.guests_before, static_cast<long long>(r.clear_ms), host.c_str());
  return 0;
}

}  // namespace kite
