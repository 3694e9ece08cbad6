// ChangeIds: the kitefs client's request ids for exactly-once changes (common/kitefs.thrift,
// "Exactly-once changes"; docs/kitefs.md). Private to fs/.
//
// Each change the client sends gets the next sequence number (Begin) and keeps it for all its
// resends, so kite-fsd recognises a resend and answers it with the recorded outcome. A change
// is outstanding from Begin until its Change goes out of scope (its reply came, or the client
// gave up on it: either way it is never sent again); `acked_below` of a new id is the lowest
// outstanding seq, which lets the server drop the outcomes of every lower one.
//
// Thread safety: Begin and the Change destructor from any thread (one mutex).
#pragma once

#include <cstdint>
#include <mutex>
#include <set>

#include "kite/fsrpc/kitefs_types.h"

namespace kite::fs {

class ChangeIds {
 public:
  class Change {
   public:
    ~Change();
    Change(Change&& other) noexcept : owner_(other.owner_), id_(other.id_) { other.owner_ = nullptr; }
    Change(const Change&) = delete;
    Change& operator=(const Change&) = delete;
    // The id to send, the same for every resend.
    const fsrpc::RequestId& id() const { return id_; }

   private:
    friend class ChangeIds;
    Change(ChangeIds* owner, fsrpc::RequestId id) : owner_(owner), id_(id) {}
    ChangeIds* owner_;
    fsrpc::RequestId id_;
  };

  // A new change's id; it is outstanding while the Change lives.
  Change Begin();
  // The lowest seq still outstanding, or the next one if none (tests).
  uint64_t acked_below();

 private:
  void Done(uint64_t seq);

  std::mutex mu_;
  uint64_t next_seq_ = 1;            // GUARDED_BY(mu_)
  std::set<uint64_t> outstanding_;   // GUARDED_BY(mu_)
};

}  // namespace kite::fs
