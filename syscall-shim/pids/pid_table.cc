// The vpid table (see pid_table.h): a small array scanned linearly.
#include "syscall-shim/pids/pid_table.h"

namespace kite::shim {

bool PidTable::Add(pid_t real, pid_t vpid, pid_t vparent) {
  if (size_ == kCapacity || real <= 0 || vpid <= 0 || (vparent < 0 && vparent != kRealParent)) return false;
  if (FindReal(real) != nullptr || FindVirtual(vpid) != nullptr) return false;
  entries_[size_++] = Entry{real, vpid, vparent};
  return true;
}

const PidTable::Entry* PidTable::FindReal(pid_t real) const {
  for (int i = 0; i < size_; ++i) {
    if (entries_[i].real == real) return &entries_[i];
  }
  return nullptr;
}

const PidTable::Entry* PidTable::FindVirtual(pid_t vpid) const {
  for (int i = 0; i < size_; ++i) {
    if (entries_[i].vpid == vpid) return &entries_[i];
  }
  return nullptr;
}

pid_t PidTable::ToVirtual(pid_t real) const {
  const Entry* e = real > 0 ? FindReal(real) : nullptr;
  return e != nullptr ? e->vpid : real;
}

pid_t PidTable::ToReal(pid_t vpid) const {
  const Entry* e = vpid > 0 ? FindVirtual(vpid) : nullptr;
  return e != nullptr ? e->real : vpid;
}

bool PidTable::Rebind(pid_t vpid, pid_t new_real) {
  if (vpid <= 0 || new_real <= 0) return false;
  const Entry* e = FindVirtual(vpid);
  const Entry* other = FindReal(new_real);
  if (e == nullptr || (other != nullptr && other != e)) return false;
  entries_[e - entries_].real = new_real;
  return true;
}

bool PidTable::HasVirtual(pid_t vpid) const { return vpid > 0 && FindVirtual(vpid) != nullptr; }

pid_t PidTable::ParentOf(pid_t real, pid_t real_parent) const {
  const Entry* e = FindReal(real);
  return e != nullptr && e->vparent != kRealParent ? e->vparent : ToVirtual(real_parent);
}

}  // namespace kite::shim
