// InvalidationLog: kite-fsd's cache callbacks (DESIGN §6). Every change appends the events that
// other clients' kernels must hear about (an entry, an inode's attributes, an inode's data); each
// client long-polls Wait() for the events meant for it, applies them, and by its next Wait()
// acknowledges them. WaitAcked() lets a change return only after every client it was sent to has
// applied it — so a stat or open on another host after the change sees it.
//
// Holders: an event goes only to the clients that hold what it names — an inode event to the
// inode's holders, an entry event (parent, name) to the directory's. A client holds an inode once
// it named it in any call (Hold(), before the call reads the store, so a change either came
// before the read or is sent to the client) until the client is forgotten. A change that no
// other client has looked at is logged for nobody and waits for nobody (an untar on one host
// does not wait for the others). Holds are never dropped while the client lives (an inode's
// attributes may stay in its kernel as long as an entry does): memory is one small set per
// inode any client has touched.
//
// Memory: the last `capacity` events; a client that falls further behind is told (overflow) and
// drops its whole cache. Sequence numbers restart with the server: clients see the new
// incarnation, drop their caches too, and hold again what their kernels still have.
//
// Thread safety: all methods from any thread (one mutex, one condition variable).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace kite::fs {

class InvalidationLog {
 public:
  using Clock = std::chrono::steady_clock;
  struct Event {
    uint64_t ino = 0;     // attributes (and data when `data`) of this inode changed; 0: none
    bool data = false;
    uint64_t parent = 0;  // the entry (parent, name) changed; 0: none
    std::string name;
    uint64_t child = 0;   // the inode (parent, name) led to before the change; 0: none
  };
  // What Append() published: the last sequence number and who must acknowledge it.
  struct Published {
    uint64_t seq = 0;
    std::vector<uint64_t> recipients;  // sorted; empty: nothing to wait for
  };
  struct Batch {
    std::vector<Event> events;
    uint64_t next_seq = 0;  // the client's next `after`
    bool overflow = false;
  };

  explicit InvalidationLog(size_t capacity = 1 << 16);

  // `client` may cache something of `ino` from now on (0: ignored).
  void Hold(uint64_t client, uint64_t ino);
  void Hold(uint64_t client, const std::vector<uint64_t>& inos);
  // Appends events made by client `origin` for the holders of what they name (but `origin`);
  // an event nobody else holds is dropped.
  Published Append(uint64_t origin, std::vector<Event> events);
  // The events after `after` sent to `client`, waiting up to `wait` for one. Records that
  // `client` has applied everything up to `after`.
  Batch Wait(uint64_t client, uint64_t after, std::chrono::milliseconds wait);
  // Waits until every recipient that listens has acknowledged `p.seq`, at most `timeout`.
  // Returns the clients that had not (empty: all had); they are not waited for again until they
  // poll again.
  std::vector<uint64_t> WaitAcked(const Published& p, std::chrono::milliseconds timeout);
  // Stops waiting for `client` and drops its holds (it is gone).
  void Forget(uint64_t client);
  // How many inodes have holders (for tests and the server's statistics).
  size_t held_inodes();
  uint64_t last_seq();
  // Wakes every waiter; later Waits return at once.
  void Shutdown();

 private:
  struct Entry {
    uint64_t seq;
    std::vector<uint64_t> recipients;  // sorted
    Event event;
  };
  struct Listener {
    uint64_t acked = 0;
    // Missed an acknowledgement deadline: not waited for again until it polls (a dead client
    // stalls one change, not every change until it expires).
    bool lagging = false;
  };

  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;               // events appended, acks advanced, shutdown
  std::deque<Entry> log_;                    // GUARDED_BY(mu_)
  uint64_t last_seq_ = 0;                    // GUARDED_BY(mu_)
  std::map<uint64_t, Listener> listeners_;   // GUARDED_BY(mu_)
  // ino → the clients holding it, sorted (a handful per inode).
  std::unordered_map<uint64_t, std::vector<uint64_t>> holders_;  // GUARDED_BY(mu_)
  bool shutdown_ = false;                    // GUARDED_BY(mu_)
};

}  // namespace kite::fs
