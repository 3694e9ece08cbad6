// OpenTable: which client has which file open, and for what — kite-fsd's record for
// close-to-open and write sharing (DESIGN §6) — and which clients are alive.
//
// A handle is the server's name for one open of one file by one client. Add() pins the inode in
// the Store (Store::Open/Create did), Remove() and client expiry release it, so an unlinked file
// lives exactly as long as some live client has it open. A client proves it is alive by any
// call that names it (hello, keepalive, open, create, release); one silent for longer than the
// timeout is taken for dead (its host crashed or its kitefs was killed) and its handles are
// released.
//
// Thread safety: all methods may be called from any thread (one mutex). Lock order: mu_ before
// the Store's mutex (Remove and ExpireIdle call Store::Release with mu_ held).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "fs/store.h"

namespace kite::fs {

class OpenTable {
 public:
  using Clock = std::chrono::steady_clock;

  OpenTable(Store* store, std::chrono::milliseconds client_timeout);

  // Registers `client_id` (again) and notes that it is alive.
  void Touch(uint64_t client_id, const std::string& name = "");
  // Records an open the Store has already pinned; returns its handle.
  uint64_t Add(uint64_t client_id, uint64_t ino, int flags);
  // A handle number nobody has, for an Add(..., handle) to come (a create records its handle
  // with its outcome before the open is added: Store::Create).
  uint64_t NewHandle();
  void Add(uint64_t client_id, uint64_t ino, int flags, uint64_t handle);
  // Whether `client_id` is registered (it called since the server started and has not expired).
  bool Knows(uint64_t client_id);
  // Releases a handle of `client_id`. An unknown handle (from before a server restart, or
  // released already) is not an error; another client's handle is PermissionDenied.
  Status Remove(uint64_t client_id, uint64_t handle);
  // Releases every handle of the clients silent for longer than the timeout at `now`, and
  // forgets them. Returns the clients expired.
  std::vector<uint64_t> ExpireIdle(Clock::time_point now);

  struct Usage {
    int readers = 0;  // handles open for reading (O_RDONLY or O_RDWR)
    int writers = 0;  // handles open for writing (O_WRONLY or O_RDWR)
    std::set<uint64_t> clients;
  };
  // Who has `ino` open, and how, not counting client `except`.
  Usage UsageOf(uint64_t ino, uint64_t except = 0);
  size_t client_count();

 private:
  struct Handle {
    uint64_t client_id;
    uint64_t ino;
    int flags;
  };
  struct Client {
    std::string name;
    Clock::time_point last_seen;
    std::set<uint64_t> handles;
  };
  Status RemoveLocked(uint64_t handle);  // EXCLUSIVE_LOCKS_REQUIRED(mu_)

  Store* const store_;
  const std::chrono::milliseconds client_timeout_;
  std::mutex mu_;
  uint64_t next_handle_ = 1;                  // GUARDED_BY(mu_)
  std::map<uint64_t, Handle> handles_;        // GUARDED_BY(mu_)
  std::map<uint64_t, Client> clients_;        // GUARDED_BY(mu_)
  // ino → its handles: UsageOf, at every open, looks at the file's handles only.
  std::unordered_map<uint64_t, std::set<uint64_t>> by_ino_;  // GUARDED_BY(mu_)
};

}  // namespace kite::fs
