// LockSet: fcntl's split-and-merge rules over a vector of locks per inode.
#include "fs/lock_set.h"

#include <fcntl.h>

#include <algorithm>

namespace kite::fs {
namespace {

bool Overlap(const HeldLock& a, const HeldLock& b) { return a.start <= b.end && b.start <= a.end; }

bool Conflicts(const HeldLock& held, const HeldLock& req) {
  return held.kind == req.kind && held.owner != req.owner && Overlap(held, req) &&
         (held.type == F_WRLCK || req.type == F_WRLCK);
}

}  // namespace

std::optional<HeldLock> LockSet::Conflict(uint64_t ino, const HeldLock& l) const {
  auto it = locks_.find(ino);
  if (it == locks_.end() || l.type == F_UNLCK) return std::nullopt;
  for (const HeldLock& h : it->second) {
    if (Conflicts(h, l)) return h;
  }
  return std::nullopt;
}

void LockSet::Apply(uint64_t ino, const HeldLock& l) {
  std::vector<HeldLock>& all = locks_[ino];
  std::vector<HeldLock> mine;  // the owner's locks of this kind, after the change
  std::vector<HeldLock> rest;
  for (HeldLock& h : all) {
    if (h.kind != l.kind || h.owner != l.owner) {
      rest.push_back(std::move(h));
      continue;
    }
    if (l.kind == kLockFlock || !Overlap(h, l)) {
      if (l.kind != kLockFlock) mine.push_back(h);
      continue;  // a flock lock is replaced whole
    }
    // The part of h outside the new range stays.
    if (h.start < l.start) {
      HeldLock left = h;
      left.end = l.start - 1;
      mine.push_back(left);
    }
    if (h.end > l.end) {  // then l.end < kLockToEof, so l.end + 1 does not overflow
      HeldLock right = h;
      right.start = l.end + 1;
      mine.push_back(right);
    }
  }
  if (l.type != F_UNLCK) mine.push_back(l);
  std::sort(mine.begin(), mine.end(), [](const HeldLock& a, const HeldLock& b) { return a.start < b.start; });
  // Adjacent ranges of one type become one (they never overlap here).
  std::vector<HeldLock> merged;
  for (HeldLock& h : mine) {
    if (!merged.empty() && merged.back().type == h.type && merged.back().end != kLockToEof &&
        merged.back().end + 1 == h.start) {
      merged.back().end = h.end;
      merged.back().pid = h.pid;
    } else {
      merged.push_back(std::move(h));
    }
  }
  rest.insert(rest.end(), merged.begin(), merged.end());
  if (rest.empty()) {
    locks_.erase(ino);
  } else {
    all = std::move(rest);
  }
}

bool LockSet::ReleaseOwner(uint64_t ino, int kind, const LockOwner& owner) {
  auto it = locks_.find(ino);
  if (it == locks_.end()) return false;
  size_t n = std::erase_if(it->second, [&](const HeldLock& h) { return h.kind == kind && h.owner == owner; });
  if (it->second.empty()) locks_.erase(it);
  return n > 0;
}

size_t LockSet::ReleaseClient(uint64_t client_id) {
  size_t n = 0;
  for (auto it = locks_.begin(); it != locks_.end();) {
    n += std::erase_if(it->second, [&](const HeldLock& h) { return h.owner.client_id == client_id; });
    it = it->second.empty() ? locks_.erase(it) : std::next(it);
  }
  return n;
}

bool LockSet::Holds(uint64_t ino, int kind, const LockOwner& owner) const {
  auto it = locks_.find(ino);
  if (it == locks_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [&](const HeldLock& h) { return h.kind == kind && h.owner == owner; });
}

std::vector<std::pair<uint64_t, HeldLock>> LockSet::All() const {
  std::vector<std::pair<uint64_t, HeldLock>> out;
  for (const auto& [ino, v] : locks_) {
    for (const HeldLock& h : v) out.emplace_back(ino, h);
  }
  return out;
}

}  // namespace kite::fs
