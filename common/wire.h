// The local protocol: what the deputy (`kite run`), the `kite` CLI and the shim say to the
// home-node daemon over its Unix stream socket (/run/kite/homed.sock). Spec: docs/local-protocol.md.
//
// A frame is a 12-byte header (magic "KITE", version, type, body length, all little-endian)
// and a body of fields in a fixed order per type. Decoding never trusts a length: every read is
// bounds-checked and a malformed body makes Decode() return false, never crash or over-read.
// Header-only and free of exceptions and heavy dependencies: the shim includes it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kite::wire {

inline constexpr uint32_t kMagic = 0x4554494b;  // "KITE" read as little-endian bytes
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 12;
// Large enough for argv + environment at Linux's ARG_MAX (2 MiB) with room to spare.
inline constexpr uint32_t kMaxBodyBytes = 4u << 20;
// Stdio travels in chunks of at most this many bytes.
inline constexpr size_t kMaxChunk = 256u << 10;

enum class MsgType : uint16_t {
  // deputy → homed
  kRunRequest = 1,
  kStdinData = 2,   // Chunk
  kStdinEof = 3,    // empty
  kSignal = 4,      // SignalMsg
  kWinsize = 5,     // Winsize
  // homed → deputy
  kRunLocal = 20,   // Chunk (why, for --verbose): no host took the job; the deputy runs it itself
  kPlaced = 21,     // Placed
  kStdoutData = 22, // Chunk
  kStderrData = 23, // Chunk
  kExit = 24,       // ExitMsg
  kError = 25,      // ErrorMsg: the job could not be run or was lost; the deputy exits 255
  kStdinAck = 26,   // Offset: the remote host accepted stdin up to here (flow control)
  kMoved = 27,      // MoveReply: the job now runs elsewhere (migrated or requeued); informational
  // kite CLI → homed, and the replies
  kHostsQuery = 40, // empty
  kHostsReply = 41, // HostsReply
  kPsQuery = 42,    // PsQuery
  kPsReply = 43,    // PsReply
  kOwnerSet = 44,   // OwnerSet
  kOk = 45,         // empty
  // shim → homed
  kKill = 60,       // KillMsg
  kKillReply = 61,  // KillReply
  // kite CLI → homed (added for `kite top`)
  kTopQuery = 46,   // empty
  kTopReply = 47,   // TopReply
  kMigrate = 48,    // MigrateMsg: move one of the caller's jobs (kite migrate)
  kMoveReply = 49,  // MoveReply
  kEvict = 50,      // EvictMsg: send every guest of a host away (kite evict; root only)
  kEvictReply = 51, // EvictReply
  kCheckpoint = 52, // CheckpointMsg: checkpoint one of the caller's jobs, leaving it running (kite checkpoint)
  kCheckpointReply = 53, // CheckpointReply
};

struct Header {
  uint32_t magic = kMagic;
  uint16_t version = kVersion;
  uint16_t type = 0;
  uint32_t body_len = 0;
};

// Appends fixed-width little-endian integers and length-prefixed byte strings.
class Writer {
 public:
  void u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { put(&v, sizeof v); }
  void u32(uint32_t v) { put(&v, sizeof v); }
  void i32(int32_t v) { put(&v, sizeof v); }
  void u64(uint64_t v) { put(&v, sizeof v); }
  void i64(int64_t v) { put(&v, sizeof v); }
  void f64(double v) { put(&v, sizeof v); }
  void bytes(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    buf_.append(s.data(), s.size());
  }
  void strings(const std::vector<std::string>& v) {
    u32(static_cast<uint32_t>(v.size()));
    for (const auto& s : v) bytes(s);
  }
  std::string& buffer() { return buf_; }

 private:
  void put(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  std::string buf_;
};

// Reads what Writer wrote. Any short or inconsistent read sets a sticky failure; check ok()
// (or the Decode() result) once at the end.
class Reader {
 public:
  explicit Reader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}
  uint8_t u8() { uint8_t v = 0; get(&v, 1); return v; }
  uint16_t u16() { uint16_t v = 0; get(&v, sizeof v); return v; }
  uint32_t u32() { uint32_t v = 0; get(&v, sizeof v); return v; }
  int32_t i32() { int32_t v = 0; get(&v, sizeof v); return v; }
  uint64_t u64() { uint64_t v = 0; get(&v, sizeof v); return v; }
  int64_t i64() { int64_t v = 0; get(&v, sizeof v); return v; }
  double f64() { double v = 0; get(&v, sizeof v); return v; }
  std::string bytes() {
    uint32_t n = u32();
    if (!ok_ || n > remaining()) { ok_ = false; return {}; }
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  std::vector<std::string> strings() {
    uint32_t n = u32();
    std::vector<std::string> v;
    // Each element needs at least its 4-byte length: a count larger than that is a lie.
    if (!ok_ || n > remaining() / 4) { ok_ = false; return v; }
    v.reserve(n);
    for (uint32_t i = 0; i < n && ok_; ++i) v.push_back(bytes());
    return v;
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool ok() const { return ok_; }
  // True when everything was read and nothing is left over.
  bool done() const { return ok_ && p_ == end_; }
  void fail() { ok_ = false; }

 private:
  void get(void* out, size_t n) {
    if (!ok_ || n > remaining()) { ok_ = false; return; }
    std::memcpy(out, p_, n);
    p_ += n;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

inline void EncodeHeader(const Header& h, char out[kHeaderBytes]) {
  std::memcpy(out, &h.magic, 4);
  std::memcpy(out + 4, &h.version, 2);
  std::memcpy(out + 6, &h.type, 2);
  std::memcpy(out + 8, &h.body_len, 4);
}

// False for a wrong magic, an unknown version or an oversized body.
inline bool DecodeHeader(const char in[kHeaderBytes], Header* h) {
  std::memcpy(&h->magic, in, 4);
  std::memcpy(&h->version, in + 4, 2);
  std::memcpy(&h->type, in + 6, 2);
  std::memcpy(&h->body_len, in + 8, 4);
  return h->magic == kMagic && h->version == kVersion && h->body_len <= kMaxBodyBytes;
}

// ---- message bodies -------------------------------------------------------------------------

struct Rlimit {
  int32_t resource = 0;
  int64_t soft = -1;  // -1: RLIM_INFINITY
  int64_t hard = -1;
};

struct Winsize {
  uint16_t rows = 0, cols = 0, xpixel = 0, ypixel = 0;
  void Encode(Writer& w) const { w.u16(rows); w.u16(cols); w.u16(xpixel); w.u16(ypixel); }
  bool Decode(Reader& r) { rows = r.u16(); cols = r.u16(); xpixel = r.u16(); ypixel = r.u16(); return r.ok(); }
};

inline constexpr uint32_t kTtyStdin = 1, kTtyStdout = 2, kTtyStderr = 4;
// RunRequest.flags
inline constexpr uint32_t kRunAllowLocal = 1;  // may run at home when no host has a slot
// An eviction may kill the job and run it again from the start elsewhere when it cannot be
// migrated (a build recipe: make only sees its exit status and its files).
inline constexpr uint32_t kRunRequeueOk = 2;
// The job's stdin is empty from the start (the deputy's stdin is /dev/null, or a terminal it
// does not forward): the job reads EOF at once, and no stdin is relayed.
inline constexpr uint32_t kRunStdinEmpty = 4;

struct RunRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  uint32_t umask = 022;
  std::vector<Rlimit> rlimits;
  uint64_t blocked_signals = 0;  // bit (n-1): signal n blocked
  uint64_t ignored_signals = 0;  // bit (n-1): signal n ignored
  uint32_t tty_mask = 0;
  Winsize winsize;
  std::string host;              // requested host; empty: let placement choose
  uint32_t flags = kRunAllowLocal;
  // kite restart: the absolute path of a checkpoint (a job manifest) to restore instead of
  // starting argv (then only a display name). Empty: an ordinary run.
  std::string restart;

  void Encode(Writer& w) const {
    w.strings(argv); w.strings(env); w.bytes(cwd); w.u32(umask);
    w.u32(static_cast<uint32_t>(rlimits.size()));
    for (const auto& l : rlimits) { w.i32(l.resource); w.i64(l.soft); w.i64(l.hard); }
    w.u64(blocked_signals); w.u64(ignored_signals); w.u32(tty_mask); winsize.Encode(w);
    w.bytes(host); w.u32(flags); w.bytes(restart);
  }
  bool Decode(Reader& r) {
    argv = r.strings(); env = r.strings(); cwd = r.bytes(); umask = r.u32();
    uint32_t n = r.u32();
    if (!r.ok() || n > 64) return false;
    rlimits.resize(n);
    for (auto& l : rlimits) { l.resource = r.i32(); l.soft = r.i64(); l.hard = r.i64(); }
    blocked_signals = r.u64(); ignored_signals = r.u64(); tty_mask = r.u32(); winsize.Decode(r);
    host = r.bytes(); flags = r.u32(); restart = r.bytes();
    return r.done() && !argv.empty() && (restart.empty() || restart[0] == '/');
  }
};

struct Chunk {
  std::string data;
  void Encode(Writer& w) const { w.bytes(data); }
  bool Decode(Reader& r) { data = r.bytes(); return r.done() && data.size() <= kMaxChunk; }
};

struct SignalMsg {
  int32_t signo = 0;
  void Encode(Writer& w) const { w.i32(signo); }
  bool Decode(Reader& r) { signo = r.i32(); return r.done() && signo > 0 && signo < 65; }
};

// The deputy keeps at most this many stdin bytes unacknowledged, so homed never has to stop
// reading the deputy's socket (signals must always get through).
inline constexpr uint64_t kStdinWindow = 1u << 20;

struct Offset {
  uint64_t offset = 0;
  void Encode(Writer& w) const { w.u64(offset); }
  bool Decode(Reader& r) { offset = r.u64(); return r.done(); }
};

struct Placed {
  std::string host;
  int64_t job_id = 0;
  void Encode(Writer& w) const { w.bytes(host); w.i64(job_id); }
  bool Decode(Reader& r) { host = r.bytes(); job_id = r.i64(); return r.done(); }
};

struct ExitMsg {
  int32_t wait_status = 0;  // raw wait(2) status
  int64_t utime_us = 0, stime_us = 0, maxrss_kb = 0;
  void Encode(Writer& w) const { w.i32(wait_status); w.i64(utime_us); w.i64(stime_us); w.i64(maxrss_kb); }
  bool Decode(Reader& r) {
    wait_status = r.i32(); utime_us = r.i64(); stime_us = r.i64(); maxrss_kb = r.i64();
    return r.done();
  }
};

struct ErrorMsg {
  int32_t code = 0;  // a kite::StatusCode
  std::string message;
  void Encode(Writer& w) const { w.i32(code); w.bytes(message); }
  bool Decode(Reader& r) { code = r.i32(); message = r.bytes(); return r.done(); }
};

struct HostInfo {
  std::string host;
  std::string state;        // "idle", "owner-active", "draining", "unreachable"
  std::string override_mode;  // "auto", "active", "idle"
  double load1 = 0;
  int32_t slots = 0, free_slots = 0;
  int64_t free_memory_kb = 0;
  int64_t owner_idle_ms = 0;
  int32_t guests = 0;
  int64_t last_report_ms_ago = 0;
  void Encode(Writer& w) const {
    w.bytes(host); w.bytes(state); w.bytes(override_mode); w.f64(load1); w.i32(slots);
    w.i32(free_slots); w.i64(free_memory_kb); w.i64(owner_idle_ms); w.i32(guests);
    w.i64(last_report_ms_ago);
  }
  bool Decode(Reader& r) {
    host = r.bytes(); state = r.bytes(); override_mode = r.bytes(); load1 = r.f64();
    slots = r.i32(); free_slots = r.i32(); free_memory_kb = r.i64(); owner_idle_ms = r.i64();
    guests = r.i32(); last_report_ms_ago = r.i64();
    return r.ok();
  }
};

template <typename T>
inline void EncodeList(Writer& w, const std::vector<T>& v) {
  w.u32(static_cast<uint32_t>(v.size()));
  for (const auto& x : v) x.Encode(w);
}
template <typename T>
inline bool DecodeList(Reader& r, std::vector<T>* v, uint32_t max) {
  uint32_t n = r.u32();
  // Every element takes at least one byte: a larger count is a lie, refused before allocating.
  if (!r.ok() || n > max || n > r.remaining()) return false;
  v->resize(n);
  for (auto& x : *v) if (!x.Decode(r)) return false;
  return true;
}

struct HostsReply {
  std::vector<HostInfo> hosts;
  void Encode(Writer& w) const { EncodeList(w, hosts); }
  bool Decode(Reader& r) { return DecodeList(r, &hosts, 4096) && r.done(); }
};

struct PsQuery {
  uint32_t all_users = 0;  // root only: every user's jobs
  void Encode(Writer& w) const { w.u32(all_users); }
  bool Decode(Reader& r) { all_users = r.u32(); return r.done(); }
};

struct JobInfo {
  int32_t vpid = 0;
  std::string home;
  std::string host;
  std::string state;  // "running", "local"
  int32_t uid = 0;
  int64_t elapsed_ms = 0;
  std::string command;
  void Encode(Writer& w) const {
    w.i32(vpid); w.bytes(home); w.bytes(host); w.bytes(state); w.i32(uid); w.i64(elapsed_ms);
    w.bytes(command);
  }
  bool Decode(Reader& r) {
    vpid = r.i32(); home = r.bytes(); host = r.bytes(); state = r.bytes(); uid = r.i32();
    elapsed_ms = r.i64(); command = r.bytes();
    return r.ok();
  }
};

struct PsReply {
  std::vector<JobInfo> jobs;
  void Encode(Writer& w) const { EncodeList(w, jobs); }
  bool Decode(Reader& r) { return DecodeList(r, &jobs, 1u << 20) && r.done(); }
};

struct MigrateMsg {
  int32_t vpid = 0;
  std::string to;  // host; empty: placement chooses (another idle host, else home)
  void Encode(Writer& w) const { w.i32(vpid); w.bytes(to); }
  bool Decode(Reader& r) { vpid = r.i32(); to = r.bytes(); return r.done() && vpid > 0; }
};

// How a job moved (kite migrate; one line of kite evict).
struct MoveReply {
  int32_t vpid = 0;
  std::string from, to;
  uint32_t requeued = 0;    // 1: killed and started again from the start on `to`
  int64_t freeze_ms = 0;    // stopped at `from` until running at `to`
  int64_t image_bytes = 0;  // 0 when requeued
  void Encode(Writer& w) const {
    w.i32(vpid); w.bytes(from); w.bytes(to); w.u32(requeued); w.i64(freeze_ms); w.i64(image_bytes);
  }
  bool Decode(Reader& r) {
    vpid = r.i32(); from = r.bytes(); to = r.bytes(); requeued = r.u32(); freeze_ms = r.i64();
    image_bytes = r.i64();
    return r.done();
  }
};

// kite checkpoint: the job is checkpointed where it runs and goes on running.
struct CheckpointMsg {
  int32_t vpid = 0;
  void Encode(Writer& w) const { w.i32(vpid); }
  bool Decode(Reader& r) { vpid = r.i32(); return r.done() && vpid > 0; }
};

struct CheckpointReply {
  std::string host;      // where the job runs (and was checkpointed)
  std::string manifest;  // the checkpoint's job manifest, in the job's checkpoint directory
  int32_t processes = 0;
  int64_t bytes = 0;     // manifest, images and pipe data
  int64_t ms = 0;        // the job was stopped this long
  void Encode(Writer& w) const { w.bytes(host); w.bytes(manifest); w.i32(processes); w.i64(bytes); w.i64(ms); }
  bool Decode(Reader& r) {
    host = r.bytes(); manifest = r.bytes(); processes = r.i32(); bytes = r.i64(); ms = r.i64();
    return r.done() && !manifest.empty() && manifest[0] == '/';
  }
};

struct EvictMsg {
  std::string host;
  void Encode(Writer& w) const { w.bytes(host); }
  bool Decode(Reader& r) { host = r.bytes(); return r.done() && !host.empty(); }
};

struct EvictReply {
  int32_t guests_before = 0;  // guests on the host when the eviction began
  int32_t guests_left = 0;    // still there when homed stopped waiting (0: cleared)
  int64_t clear_ms = -1;      // the host's own measure of the time to clear; -1 unknown
  void Encode(Writer& w) const { w.i32(guests_before); w.i32(guests_left); w.i64(clear_ms); }
  bool Decode(Reader& r) {
    guests_before = r.i32(); guests_left = r.i32(); clear_ms = r.i64();
    return r.done();
  }
};

struct OwnerSet {
  std::string host;
  std::string mode;  // "active", "idle", "auto"
  void Encode(Writer& w) const { w.bytes(host); w.bytes(mode); }
  bool Decode(Reader& r) { host = r.bytes(); mode = r.bytes(); return r.done(); }
};

// kill(2) from a guest job of a pid outside its job: delivered at the job's home.
struct KillMsg {
  std::string home;  // the job's home host
  int32_t pid = 0;   // a pid at home (negative: a process group)
  int32_t signo = 0;
  void Encode(Writer& w) const { w.bytes(home); w.i32(pid); w.i32(signo); }
  bool Decode(Reader& r) {
    home = r.bytes(); pid = r.i32(); signo = r.i32();
    return r.done() && signo >= 0 && signo < 65;
  }
};

struct KillReply {
  int32_t err = 0;  // 0 or the errno kill(2) would set
  void Encode(Writer& w) const { w.i32(err); }
  bool Decode(Reader& r) { err = r.i32(); return r.done(); }
};

// `kite top`: every host with its guest jobs, as the hosts last reported them.
struct GuestInfo {
  std::string home;       // the job's home host
  int32_t vpid = 0;
  int32_t uid = 0;
  int64_t elapsed_ms = 0;
  std::string command;
  void Encode(Writer& w) const { w.bytes(home); w.i32(vpid); w.i32(uid); w.i64(elapsed_ms); w.bytes(command); }
  bool Decode(Reader& r) {
    home = r.bytes(); vpid = r.i32(); uid = r.i32(); elapsed_ms = r.i64(); command = r.bytes();
    return r.ok();
  }
};

struct TopHost {
  HostInfo info;
  std::vector<GuestInfo> guests;
  void Encode(Writer& w) const { info.Encode(w); EncodeList(w, guests); }
  bool Decode(Reader& r) { return info.Decode(r) && DecodeList(r, &guests, 1u << 16); }
};

struct TopReply {
  std::vector<TopHost> hosts;
  void Encode(Writer& w) const { EncodeList(w, hosts); }
  bool Decode(Reader& r) { return DecodeList(r, &hosts, 4096) && r.done(); }
};

// Builds one whole frame (header + body) ready to write.
template <typename Msg>
inline std::string Frame(MsgType type, const Msg& msg) {
  Writer w;
  w.buffer().resize(kHeaderBytes);
  msg.Encode(w);
  Header h;
  h.type = static_cast<uint16_t>(type);
  h.body_len = static_cast<uint32_t>(w.buffer().size() - kHeaderBytes);
  EncodeHeader(h, w.buffer().data());
  return std::move(w.buffer());
}

struct Empty {
  void Encode(Writer&) const {}
  bool Decode(Reader& r) { return r.done(); }
};

inline std::string Frame(MsgType type) { return Frame(type, Empty{}); }

}  // namespace kite::wire
