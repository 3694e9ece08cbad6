// FileHandler: the Thrift FileService (common/kitefs.thrift) over a Store, an OpenTable and an
// InvalidationLog, and serves locks from a LockTable. Thin: it converts between the wire and the Store's types, turns every error
// Status into the typed FsError exception (errno from ErrnoOf, kite's StatusCode, the message),
// and after each change publishes its invalidations and waits (at most ack_timeout) until the
// other clients have applied them. Changes carry the client's request id (RequestId) to the
// Store, which answers a resend with the recorded outcome (exactly-once changes). Thread-safe (one instance serves every connection): the
// parts lock for themselves, and no lock is held while waiting for acknowledgements.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs/invalidation_log.h"
#include "fs/lock_table.h"
#include "fs/open_table.h"
#include "fs/store.h"
#include "kite/fsrpc/FileService.h"

namespace kite::fs {

// The exception a handler throws for `s` (not OK).
fsrpc::FsError ToFsError(const Status& s);

class FileHandler : public fsrpc::FileServiceIf {
 public:
  FileHandler(Store* store, OpenTable* opens, InvalidationLog* invalidations, LockTable* locks,
              int client_timeout_ms, std::chrono::milliseconds ack_timeout)
      : store_(store), opens_(opens), invalidations_(invalidations), locks_(locks),
        client_timeout_ms_(client_timeout_ms), ack_timeout_(ack_timeout) {}

  void hello(fsrpc::ServerInfo& _return, int64_t client_id, const std::string& client_name,
             int32_t protocol_version) override;
  void keepalive(int64_t client_id) override;
  void lookup(fsrpc::Attr& _return, int64_t parent, const std::string& name, int64_t client_id) override;
  void getattr(fsrpc::Attr& _return, int64_t ino, int64_t client_id) override;
  void setattr(fsrpc::Attr& _return, int64_t ino, const fsrpc::SetAttr& attr, int64_t client_id,
               const fsrpc::RequestId& request) override;
  void mknod(fsrpc::Attr& _return, int64_t parent, const std::string& name, int32_t mode, int64_t rdev,
             const fsrpc::Caller& caller, int64_t client_id, const fsrpc::RequestId& request) override;
  void mkdir(fsrpc::Attr& _return, int64_t parent, const std::string& name, int32_t mode,
             const fsrpc::Caller& caller, int64_t client_id, const fsrpc::RequestId& request) override;
  void symlink(fsrpc::Attr& _return, int64_t parent, const std::string& name, const std::string& target,
               const fsrpc::Caller& caller, int64_t client_id, const fsrpc::RequestId& request) override;
  void readlink(std::string& _return, int64_t ino, int64_t client_id) override;
  void unlink(int64_t parent, const std::string& name, int64_t client_id, const fsrpc::RequestId& request) override;
  void rmdir(int64_t parent, const std::string& name, int64_t client_id, const fsrpc::RequestId& request) override;
  void rename(int64_t parent, const std::string& name, int64_t new_parent, const std::string& new_name,
              int32_t flags, int64_t client_id, const fsrpc::RequestId& request) override;
  void link(fsrpc::Attr& _return, int64_t ino, int64_t new_parent, const std::string& new_name,
            int64_t client_id, const fsrpc::RequestId& request) override;
  void create(fsrpc::OpenReply& _return, int64_t client_id, int64_t parent, const std::string& name, int32_t mode,
              int32_t flags, const fsrpc::Caller& caller, const fsrpc::RequestId& request) override;
  void open(fsrpc::OpenReply& _return, int64_t client_id, int64_t ino, int32_t flags) override;
  void release(int64_t client_id, int64_t handle) override;
  void read(std::string& _return, int64_t ino, int64_t offset, int32_t size, int64_t client_id) override;
  void write(fsrpc::WriteReply& _return, int64_t ino, int64_t offset, const std::string& data, bool append,
             int64_t client_id, const fsrpc::RequestId& request) override;
  void fsync(int64_t ino, bool datasync) override;
  void fallocate(fsrpc::Attr& _return, int64_t ino, int32_t mode, int64_t offset, int64_t length,
                 int64_t client_id) override;
  void readdir(fsrpc::DirPage& _return, int64_t ino, int64_t cookie, int32_t max_entries,
               int64_t client_id) override;
  void statfs(fsrpc::FsStats& _return) override;
  void setxattr(int64_t ino, const std::string& name, const std::string& value, int32_t flags,
                int64_t client_id, const fsrpc::RequestId& request) override;
  void getxattr(std::string& _return, int64_t ino, const std::string& name) override;
  void listxattr(std::vector<std::string>& _return, int64_t ino) override;
  void removexattr(int64_t ino, const std::string& name, int64_t client_id,
                   const fsrpc::RequestId& request) override;
  void setlk(int64_t client_id, int64_t ino, const fsrpc::FileLock& lock, int32_t wait_ms, bool reclaim) override;
  void getlk(fsrpc::FileLock& _return, int64_t client_id, int64_t ino, const fsrpc::FileLock& lock) override;
  void hold(int64_t client_id, const std::vector<int64_t>& inos) override;
  void wait_invalidations(fsrpc::Invalidations& _return, int64_t client_id, int64_t after_seq,
                          int32_t wait_ms) override;

 private:
  // Publishes a change's invalidations and waits until the clients they went to applied them.
  void Publish(int64_t client_id, std::vector<InvalidationLog::Event> events);
  // `client_id` may cache these inodes from now on: before the call reads the store, so a
  // change after the read is sent to it.
  void Hold(int64_t client_id, std::initializer_list<int64_t> inos);
  // Whether `client_id`'s new open of `ino` with `flags` makes the file write-shared (always
  // during the grace period after a restart: the other clients' opens may not be back yet).
  bool WriteShared(int64_t client_id, uint64_t ino, int flags);

  Store* const store_;
  OpenTable* const opens_;
  InvalidationLog* const invalidations_;
  LockTable* const locks_;
  const int client_timeout_ms_;
  const std::chrono::milliseconds ack_timeout_;
};

}  // namespace kite::fs
