// kite's host-to-host protocol, version 1.
//
// Every connection is mutual TLS with the cluster CA (common/tls.h); a peer is a cluster host.
// Framed transport, binary protocol; a frame over kMaxFrameBytes (common/rpc.h) is refused.
// Two services: Remote (on kite-remoted, port 7071) accepts and runs guest jobs; Home (on
// kite-homed, port 7070) is the authority for the processes whose home is its host.
//
// Compatibility: fields are only ever added, never renumbered; `protocol_version` in
// HostStatus lets a newer daemon talk down to an older one.

namespace cpp kite.rpc

const i32 PROTOCOL_VERSION = 1

// What the caller should do about an error (after absl::StatusCode).
enum ErrorCode {
  INVALID_ARGUMENT = 3,     // the request is malformed: do not retry it
  NOT_FOUND = 5,            // no such job / vpid / host
  PERMISSION_DENIED = 7,    // the caller may not do this
  RESOURCE_EXHAUSTED = 8,   // no free slot: try another host
  FAILED_PRECONDITION = 9,  // wrong state (owner active, draining): try another host
  ABORTED = 10,
  INTERNAL = 13,
  UNAVAILABLE = 14,         // transient: retry
}

exception KiteError {
  1: ErrorCode code
  2: string message
}

// A host's state as its owner sees it (DESIGN §7).
enum HostState {
  IDLE = 0,          // takes guests
  OWNER_ACTIVE = 1,  // the owner is back: takes no guests
  DRAINING = 2,      // evicting its guests
}

// How `kite owner HOST ...` overrides the owner monitor.
enum OwnerOverride {
  AUTO = 0,
  FORCE_ACTIVE = 1,
  FORCE_IDLE = 2,
}

struct Credentials {
  1: i32 uid
  2: i32 gid
  3: list<i32> groups
}

struct Rlimit {
  1: i32 resource
  2: i64 soft   // -1 is RLIM_INFINITY
  3: i64 hard
}

struct WinSize {
  1: i16 rows
  2: i16 cols
  3: i16 xpixel
  4: i16 ypixel
}

struct Rusage {
  1: i64 utime_us
  2: i64 stime_us
  3: i64 maxrss_kb
  4: i64 minflt
  5: i64 majflt
  6: i64 nvcsw
  7: i64 nivcsw
}

// Bits of ExecSpec.tty_mask: which of the caller's std fds are terminals.
const i32 TTY_STDIN = 1
const i32 TTY_STDOUT = 2
const i32 TTY_STDERR = 4

// Everything a job needs to start on another host exactly as it would have at home.
struct ExecSpec {
  1: list<binary> argv           // argv[0] is looked up in PATH from env, as execvp does
  2: list<binary> env            // "NAME=value"
  3: binary cwd                  // absolute
  4: i32 umask
  5: list<Rlimit> rlimits
  6: Credentials creds           // vouched for by the home host (SO_PEERCRED of the deputy)
  7: i64 blocked_signals         // bit (n-1) set: signal n blocked (sigmask is a libc macro)
  8: i64 ignored_signals         // bit (n-1) set: signal n is SIG_IGN
  9: i32 tty_mask
  10: optional WinSize winsize
  11: string home_host           // the home's host name (uname nodename the job sees)
  12: i32 vpid                   // the deputy's pid at home: the job root's getpid()
  13: i32 home_ppid              // the deputy's parent at home: the job root's getppid()
  14: bool stdin_empty = false   // stdin is at EOF from the start: no write_input will come
}

struct ExecReply {
  1: i64 job_id
}

// Output since the acknowledged offsets. Offsets count bytes from the job's start, so a
// reply lost on the way can be asked for again.
struct JobOutput {
  1: binary stdout_data
  2: binary stderr_data
  3: i64 stdout_offset    // offset of stdout_data's first byte
  4: i64 stderr_offset
  5: bool exited          // the root has exited and every byte of output is in this reply
  6: i32 wait_status      // raw wait(2) status, valid when exited
  7: Rusage rusage        // of the whole job, valid when exited
}

struct GuestJob {
  1: i64 job_id
  2: string home_host
  3: i32 vpid
  4: i32 uid
  5: i32 local_pid
  6: i64 started_unix_ms
  7: binary command       // argv joined by spaces, for display
}

// What a remoted publishes about its host about once a second.
struct HostStatus {
  1: string host
  2: HostState state
  3: OwnerOverride override_mode
  4: double load1             // guests' and owner's runnable load, 1-minute average
  5: i32 slots
  6: i32 free_slots
  7: i64 free_memory_kb
  8: i64 owner_idle_ms        // how long the owner has been away; 0 while active
  9: list<GuestJob> guests
  10: i32 protocol_version
  11: i64 sent_unix_ms
  12: i64 last_clear_ms = -1  // how long the last eviction took to clear the host; -1: none yet
}

// Migration (docs/design-notes.md, "Migration: how a job moves"). A checkpointed job: where
// its image is and everything needed to start it again elsewhere with restore_job.
struct CheckpointReply {
  1: string image_path      // absolute: the manifest, in image_host's checkpoint directory
  2: i64 stdout_offset      // output offsets at which the job stopped (exact when it exited)
  3: i64 stderr_offset
  4: i64 stdin_offset       // stdin bytes the job consumed: the home resends from here
  5: binary command         // argv joined by spaces, for display
  6: Credentials creds
  7: string home_host
  8: i32 vpid
  9: i32 home_ppid
  10: i32 tty_mask
  11: optional WinSize winsize
  12: optional binary termios   // the pty's struct termios (tcgetattr), when it had one
  13: bool left_running     // true: the original runs on (leave_running); else it is gone
  // Added. The host whose checkpoint directory (local disk) holds the files: restore_job on
  // another host copies them from there (checkpoint_files, read_checkpoint_file), and whoever
  // is done with them removes them there (drop_checkpoint). Empty: image_path is on the shared
  // tree, readable from every host (leave_running exports it there, for kite checkpoint --to).
  14: string image_host
  15: i64 image_bytes       // the manifest, images and pipe files together
  16: i32 processes         // live processes (images)
}

// One file of a checkpoint: its name in the checkpoint's directory and its size.
struct CheckpointFile {
  1: string name
  2: i64 size
}

// restore_job's request: a CheckpointReply's fields, as the home passes them on.
struct RestoreSpec {
  1: string image_path
  2: Credentials creds      // must own the image and match the uid inside it
  3: string home_host
  4: i32 vpid
  5: i32 home_ppid
  6: i64 stdout_offset      // the new job's output offsets continue from these
  7: i64 stderr_offset
  8: i64 stdin_offset       // and its stdin offset
  9: i32 tty_mask
  10: optional WinSize winsize
  11: optional binary termios
  12: binary command        // for display
  13: string image_host     // added: CheckpointReply.image_host (empty: the shared tree)
}

service Remote {
  HostStatus status()

  // Claims a slot and starts the job. RESOURCE_EXHAUSTED: no free slot; FAILED_PRECONDITION:
  // the owner is active or the host drains; PERMISSION_DENIED: the credentials are refused.
  // A job whose home_host is this host is no guest: it takes no slot, whatever the owner does
  // (homes send jobs to their own remoted only when evicted jobs come home).
  ExecReply start_job(1: ExecSpec spec) throws (1: KiteError e)

  // Returns output past the acknowledged offsets, waiting up to wait_ms for some (long poll).
  JobOutput read_output(1: i64 job_id, 2: i64 stdout_ack, 3: i64 stderr_ack, 4: i32 wait_ms)
      throws (1: KiteError e)

  // Queues stdin bytes starting at `offset`; returns the offset accepted up to. Bytes before
  // an already accepted offset are ignored, so a retry never duplicates input.
  i64 write_input(1: i64 job_id, 2: i64 offset, 3: binary data, 4: bool eof)
      throws (1: KiteError e)

  void signal_job(1: i64 job_id, 2: i32 signo) throws (1: KiteError e)
  void resize(1: i64 job_id, 2: WinSize winsize) throws (1: KiteError e)

  // The home has the exit status: kill whatever is left of the job and free its slot.
  // Also how a home that lost its deputy kills the job.
  void release(1: i64 job_id) throws (1: KiteError e)

  void set_owner(1: OwnerOverride mode) throws (1: KiteError e)

  // Checkpoints the job (its root, single-threaded for now) into an image. Unless
  // leave_running, the original is gone afterwards and exits killed (SIGKILL); its output up to
  // the returned offsets stays readable. FAILED_PRECONDITION with the reason when the job cannot
  // be checkpointed (threads, sockets, ...): it then keeps running. UNAVAILABLE: no
  // answer from the job within 30 s (it may still finish the image: release it or retry).
  //
  // stop (added; ignored with leave_running): the original is not killed but left stopped,
  // its output drained to the returned offsets and its stdin paused, until the home either
  // releases it (the image runs elsewhere now) or calls resume_job (the move failed: it runs
  // on where it was, as if nothing happened). This is how a migration never loses a job.
  CheckpointReply checkpoint_job(1: i64 job_id, 2: bool leave_running, 3: bool stop)
      throws (1: KiteError e)
  // Lets a job left stopped by checkpoint_job(stop) run on (SIGCONT, stdin flowing again).
  // FAILED_PRECONDITION: it is not stopped by a checkpoint.
  void resume_job(1: i64 job_id) throws (1: KiteError e)

  // Claims a slot like start_job and starts `kite-restore IMAGE` as the job, with the given
  // credentials (checked against the image), stdio pipes/pty and output offsets. A job whose
  // home is this host is coming home: it is taken whatever the owner's state and slots.
  //
  // When spec.image_host is another host, its checkpoint files are first copied from there
  // into the same path here, and removed here once the restore is over (either way).
  ExecReply restore_job(1: RestoreSpec spec) throws (1: KiteError e)

  // Checkpoint transfer (docs/design-notes.md, "Where images go"): the files of the checkpoint
  // whose manifest is `manifest_path` in this host's checkpoint directory, the manifest first.
  // Any cluster host may ask (mutual TLS): these are how restore_job fetches a checkpoint.
  // INVALID_ARGUMENT: not a path in the checkpoint directory; NOT_FOUND: no such checkpoint.
  list<CheckpointFile> checkpoint_files(1: string manifest_path) throws (1: KiteError e)
  // Up to max_bytes (at most 4 MiB) of one of those files from `offset`; empty at its end.
  binary read_checkpoint_file(1: string path, 2: i64 offset, 3: i32 max_bytes) throws (1: KiteError e)
  // Removes every file of that checkpoint here (the home does once the job runs elsewhere or
  // the move failed). A checkpoint already gone is no error.
  void drop_checkpoint(1: string manifest_path) throws (1: KiteError e)
}

service Home {
  // A remoted's periodic state report.
  oneway void report_state(1: HostStatus status)

  // Delivers a signal to a process whose home is this host, on behalf of `caller`, who must
  // own it (or be root). Returns 0 or an errno value as kill(2) would.
  i32 kill(1: i32 pid, 2: i32 signo, 3: Credentials caller)
  // Eviction (DESIGN §5): the remoted of `host` has its owner back and asks this home to move
  // these of its guest jobs away. Returns at once the ids this home knows and is moving
  // (migrate, or requeue where the job's policy allows); the host's reports show them
  // leaving. The remoted repeats the call while its guests stay, and kills a guest whose home
  // does not know it (an orphan: nobody would collect its output).
  list<i64> evict_jobs(1: string host, 2: list<i64> job_ids)
}
