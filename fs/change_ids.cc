// ChangeIds: sequence numbers and the set of changes still waiting for their reply.
#include "fs/change_ids.h"

namespace kite::fs {

ChangeIds::Change ChangeIds::Begin() {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t seq = next_seq_++;
  outstanding_.insert(seq);
  fsrpc::RequestId id;
  id.seq = static_cast<int64_t>(seq);
  id.acked_below = static_cast<int64_t>(*outstanding_.begin());
  return Change(this, id);
}

uint64_t ChangeIds::acked_below() {
  std::lock_guard<std::mutex> lock(mu_);
  return outstanding_.empty() ? next_seq_ : *outstanding_.begin();
}

void ChangeIds::Done(uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  outstanding_.erase(seq);
}

ChangeIds::Change::~Change() {
  if (owner_) owner_->Done(static_cast<uint64_t>(id_.seq));
}

}  // namespace kite::fs
