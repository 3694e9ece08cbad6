// InvalidationLog: kite-fsd's cache callbacks (DESIGN §6). Every change appends the events that
// other clients' kernels must hear about (an entry, an inode's attributes, an inode's data); each
// client long-polls Wait() for the events it did not make itself, applies them, and by its next
// Wait() acknowledges them. WaitAcked() lets a change return only after every other listening
// client has applied it — so a stat or open on another host after the change sees it.
//
// Memory: the last `capacity` events; a client that falls further behind is told (overflow) and
// drops its whole cache. Sequence numbers restart with the server: clients see the new
// incarnation and drop their caches too.
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
  };
  struct Batch {
    std::vector<Event> events;
    uint64_t next_seq = 0;  // the client's next `after`
    bool overflow = false;
  };

  explicit InvalidationLog(size_t capacity = 1 << 16);

  // Appends events made by client `origin`; returns the sequence number of the last (or the
  // current last one when `events` is empty).
  uint64_t Append(uint64_t origin, std::vector<Event> events);
  // The events after `after` that `client` did not make, waiting up to `wait` for one. Records
  // that `client` has applied everything up to `after`.
  Batch Wait(uint64_t client, uint64_t after, std::chrono::milliseconds wait);
  // Waits until every listening client but `origin` has acknowledged `seq`, at most `timeout`.
  // Returns the clients that had not (empty: all had); they are not waited for again until they
  // poll again.
  std::vector<uint64_t> WaitAcked(uint64_t origin, uint64_t seq, std::chrono::milliseconds timeout);
  // Stops waiting for `client` (it is gone).
  void Forget(uint64_t client);
  uint64_t last_seq();
  // Wakes every waiter; later Waits return at once.
  void Shutdown();

 private:
  struct Entry {
    uint64_t seq;
    uint64_t origin;
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
  bool shutdown_ = false;                    // GUARDED_BY(mu_)
};

}  // namespace kite::fs
