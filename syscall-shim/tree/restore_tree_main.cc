// kite-restore-tree: restores a job checkpointed as a whole (job_manifest.h), in shape.
//
// kite-remoted starts it as the new job's root, with the new job's stdin, stdout and stderr as
// 0, 1, 2, in a session of its own. It
//   1. reads the manifest and every image's descriptor table (validated as kite-restore does);
//   2. makes a new pipe for every pipe of the job's own and puts its unread bytes back, and
//      opens once every file description that several descriptors shared (manifest `share`:
//      the image's path and flags, the recorded offset);
//   3. forks the tree in shape: each process forks its own children, so that a restored parent
//      is the real parent of its restored children and wait() works natively; process groups
//      are made again; a child that had exited is forked and exits with its status after the
//      tree is released, so its parent reaps it as it would have;
//   4. has every process exec kite-restore on its image, with --inherit for each pipe end
//      (the standard streams' pipes are our own 0, 1, 2) and shared description, --ready-fd
//      and --go-fd;
//   5. once every process is ready (its image valid, its files open), writes the job's pid map
//      (pid_map_file.h: vpid -> new real pid) and becomes the root itself: kite-restore
//      --release-fd gives the word to load memory, and --loaded-fd/--run-fd (restorer.h) make
//      every process wait until all have loaded theirs: only then does any restored process
//      run, so a page stream that breaks off leaves no half tree running.
// With --stream-pages each image's page data comes through the FIFO "<image>.pages" (kite-
// remoted writes it as it fetches the pages from the source host; the image has a hole there).
// A process that cannot restore makes the whole restore fail before anything runs: the root
// exits with 66 and says why (kite-restore's own message is on stderr before it), the others
// see their go pipe close and exit.
//
// Usage: kite-restore-tree [--allow-root] [--expect-uid UID] [--stream-pages] MANIFEST
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "syscall-shim/image/image_format.h"
#include "syscall-shim/image/image_validate.h"
#include "syscall-shim/pids/pid_map_file.h"
#include "syscall-shim/tree/job_manifest.h"

namespace kite {
namespace {

constexpr int kExitHost = 66;  // KITE_RESTORE_EXIT_HOST
constexpr int kExitInvalid = 65;
constexpr int kExitUsage = 64;
constexpr auto kReadyTimeout = std::chrono::seconds(60);

[[noreturn]] void Die(int code, const std::string& why) {
  std::string line = "kite-restore-tree: " + why + "\n";
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
  ::_exit(code);
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::string ReadFile(const std::string& path, size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) Die(kExitInvalid, "cannot open " + path + ": " + std::strerror(errno));
  std::string s;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die(kExitInvalid, "reading " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    s.append(buf, static_cast<size_t>(n));
    if (s.size() > limit) Die(kExitInvalid, path + " is larger than " + std::to_string(limit) + " bytes");
  }
  ::close(fd);
  return s;
}

// An image's pipe descriptors: image fd -> (pipe inode, open for writing).
struct PipeEnd {
  int fd;
  uint64_t inode;
  bool write;
};
// An image's regular-file descriptors, as kite-restore would reopen them.
struct FileEnd {
  int fd;
  uint32_t open_flags;
  std::string path;
};
struct ImageFds {
  std::vector<PipeEnd> pipes;
  std::vector<FileEnd> files;
};

ImageFds ImageFdsOf(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) Die(kExitInvalid, "cannot open image " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
    Die(kExitInvalid, "image " + path + " is not a non-empty regular file");
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) Die(kExitHost, "mapping image " + path + ": " + std::strerror(errno));
  kite_img_view view;
  kite_img_error err;
  if (kite_img_validate_buffer(map, size, &view, &err) != 0) Die(kExitInvalid, path + ": invalid image: " + err.msg);
  ImageFds out;
  for (uint64_t i = 0; i < view.nfds; ++i) {
    const kite_img_fd& f = view.fds[i];
    if (f.kind == KITE_FD_PIPE)
      out.pipes.push_back({f.fd, static_cast<uint64_t>(f.offset), (f.open_flags & O_ACCMODE) == O_WRONLY});
    else if (f.kind == KITE_FD_FILE)
      out.files.push_back({f.fd, f.open_flags, kite_img_string(&view, f.path)});
  }
  ::munmap(map, size);
  return out;
}

struct Plan {
  JobManifest manifest;
  std::string dir;
  std::vector<ImageFds> ends;               // per proc (live ones)
  std::map<uint64_t, std::pair<int, int>> pipes;  // inode -> (read end, write end), ours
  std::vector<int> shared;                  // per manifest share: the description, ours
  std::vector<std::string> restore_args;    // --allow-root / --expect-uid, passed on
  std::string restorer;                     // kite-restore beside us
  bool stream_pages = false;                // --pages <image>.pages for every kite-restore
  int go_read = -1, go_write = -1;
  int loaded_read = -1, loaded_write = -1;   // the second barrier (none: no live child)
  int run_read = -1, run_write = -1;
  int live_children = 0;
  std::vector<int> ready_read, ready_write;  // per proc (index 0 unused: the root)
  pid_t* slots = nullptr;                    // shared: new real pid per proc
};

void FillPipe(const Plan& plan, const JobManifest::Pipe& p, int write_end) {
  if (p.data_file.empty()) return;
  const std::string data = ReadFile(plan.dir + "/" + p.data_file, 16 << 20);
  if (data.size() > 65536 && ::fcntl(write_end, F_SETPIPE_SZ, static_cast<int>(data.size())) < 0)
    Die(kExitHost, "pipe " + std::to_string(p.inode) + " held " + std::to_string(data.size()) +
                       " unread bytes, more than a pipe here can: " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(write_end, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die(kExitHost, "refilling pipe " + std::to_string(p.inode) + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

// The kite-restore command line for proc `i` (a live one).
std::vector<std::string> RestoreArgv(const Plan& plan, size_t i) {
  std::vector<std::string> argv = {plan.restorer};
  argv.insert(argv.end(), plan.restore_args.begin(), plan.restore_args.end());
  for (const PipeEnd& e : plan.ends[i].pipes) {
    int stream = plan.manifest.StreamOfPipe(e.inode);
    int given;
    if (stream >= 0) {
      given = stream;
    } else {
      auto it = plan.pipes.find(e.inode);
      if (it == plan.pipes.end())
        Die(kExitInvalid, "process " + std::to_string(plan.manifest.procs[i].vpid) + "'s descriptor " +
                              std::to_string(e.fd) + " is a pipe the manifest does not list");
      given = e.write ? it->second.second : it->second.first;
    }
    argv.push_back("--inherit");
    argv.push_back(std::to_string(e.fd) + "=" + std::to_string(given));
  }
  const pid_t vpid = plan.manifest.procs[i].vpid;
  if (plan.stream_pages) {
    argv.push_back("--pages");
    argv.push_back(plan.dir + "/" + plan.manifest.procs[i].image + ".pages");
  }
  for (size_t s = 0; s < plan.manifest.shares.size(); ++s) {
    for (const JobManifest::Holder& h : plan.manifest.shares[s].holders) {
      if (h.vpid != vpid) continue;
      argv.push_back("--inherit");
      argv.push_back(std::to_string(h.fd) + "=" + std::to_string(plan.shared[s]));
    }
  }
  return argv;
}

// Opens the description of manifest share `s` as its holders' images have it (a regular file,
// by path, with their flags), at the offset the checkpoint recorded.
int OpenShared(const Plan& plan, const JobManifest::Share& s) {
  const FileEnd* first = nullptr;
  for (const JobManifest::Holder& h : s.holders) {
    const FileEnd* found = nullptr;
    for (const FileEnd& f : plan.ends[static_cast<size_t>(plan.manifest.IndexOf(h.vpid))].files) {
      if (f.fd == h.fd) found = &f;
    }
    if (found == nullptr)
      Die(kExitInvalid, "process " + std::to_string(h.vpid) + "'s descriptor " + std::to_string(h.fd) +
                            " is shared in the manifest but is no regular file in its image");
    if (first != nullptr && (found->path != first->path || found->open_flags != first->open_flags))
      Die(kExitInvalid, "the descriptors of a shared description name different files or flags (" + first->path +
                            ", " + found->path + ")");
    first = found;
  }
  const int flags = static_cast<int>(first->open_flags & ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY));
  const int fd = ::open(first->path.c_str(), flags);
  if (fd < 0) Die(kExitHost, "cannot reopen " + first->path + ": " + std::strerror(errno));
  if (::lseek(fd, s.pos, SEEK_SET) != s.pos)
    Die(kExitHost, "cannot seek " + first->path + " to " + std::to_string(s.pos) + ": " + std::strerror(errno));
  return fd;
}

[[noreturn]] void Exec(const std::vector<std::string>& argv, const std::string& image) {
  std::vector<std::string> all = argv;
  all.push_back(image);
  std::vector<char*> ptrs;
  for (std::string& s : all) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  char* envp[] = {nullptr};
  ::execve(ptrs[0], ptrs.data(), envp);
  Die(kExitHost, "exec " + all[0] + ": " + std::strerror(errno));
}

void ClearCloexec(int fd) { ::fcntl(fd, F_SETFD, 0); }

// In the process that stands for proc `i` (not the root), right after its fork.
[[noreturn]] void RunNode(Plan& plan, size_t i);

void ForkChildren(Plan& plan, size_t parent) {
  const pid_t vparent = plan.manifest.procs[parent].vpid;
  for (size_t c = 1; c < plan.manifest.procs.size(); ++c) {
    if (plan.manifest.procs[c].vparent != vparent) continue;
    pid_t pid = ::fork();
    if (pid < 0) Die(kExitHost, std::string("fork: ") + std::strerror(errno));
    if (pid == 0) RunNode(plan, c);
  }
}

// Waits until proc `i`'s slot holds its new pid (it writes it first thing).
pid_t AwaitSlot(const Plan& plan, size_t i) {
  for (int spins = 0; spins < 60000; ++spins) {
    pid_t p = __atomic_load_n(&plan.slots[i], __ATOMIC_ACQUIRE);
    if (p > 0) return p;
    ::usleep(1000);
  }
  Die(kExitHost, "process " + std::to_string(plan.manifest.procs[i].vpid) + " did not start");
}

void RunNode(Plan& plan, size_t i) {
  const JobManifest::Proc& me = plan.manifest.procs[i];
  __atomic_store_n(&plan.slots[i], ::getpid(), __ATOMIC_RELEASE);
  ::close(plan.go_write);
  if (me.vpgid == me.vpid && ::setpgid(0, 0) < 0) Die(kExitHost, std::string("setpgid: ") + std::strerror(errno));
  ForkChildren(plan, i);
  if (me.vpgid != me.vpid) {
    size_t leader = static_cast<size_t>(plan.manifest.IndexOf(me.vpgid));
    pid_t real = leader == 0 ? ::getsid(0) : AwaitSlot(plan, leader);
    // The leader makes its group first thing after its fork; wait until it has.
    for (int tries = 0; ::getpgid(real) != real && tries < 5000; ++tries) ::usleep(1000);
    if (::getpgid(0) != real && ::setpgid(0, real) < 0)
      Die(kExitHost, "joining process group " + std::to_string(me.vpgid) + ": " + std::strerror(errno));
  }
  if (me.exited) {
    // Exit as it had, once the tree is released, so that its restored parent reaps it. It
    // holds no pipe end meanwhile: a reader would wait for its EOF, the root for a ready byte.
    for (const auto& [inode, ends] : plan.pipes) {
      ::close(ends.first);
      ::close(ends.second);
    }
    for (int fd : plan.shared) ::close(fd);
    for (size_t k = 0; k < plan.ready_write.size(); ++k) {
      if (plan.ready_write[k] >= 0) ::close(plan.ready_write[k]);
      if (plan.ready_read[k] >= 0) ::close(plan.ready_read[k]);
    }
    for (int fd : {plan.loaded_read, plan.loaded_write, plan.run_read, plan.run_write}) {
      if (fd >= 0) ::close(fd);
    }
    char byte;
    ssize_t n;
    do n = ::read(plan.go_read, &byte, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(kExitHost);
    if (WIFSIGNALED(me.wait_status)) {
      const int sig = WTERMSIG(me.wait_status);
      ::signal(sig, SIG_DFL);
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, sig);
      ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
      ::kill(::getpid(), sig);
      ::_exit(128 + sig);
    }
    ::_exit(WEXITSTATUS(me.wait_status));
  }
  std::vector<std::string> argv = RestoreArgv(plan, i);
  ClearCloexec(plan.ready_write[i]);
  ClearCloexec(plan.go_read);
  argv.insert(argv.end(), {"--ready-fd", std::to_string(plan.ready_write[i]), "--go-fd", std::to_string(plan.go_read)});
  ClearCloexec(plan.loaded_write);
  ClearCloexec(plan.run_read);
  argv.insert(argv.end(), {"--loaded-fd", std::to_string(plan.loaded_write), "--run-fd", std::to_string(plan.run_read)});
  Exec(argv, plan.dir + "/" + me.image);
}

// Root: waits for one byte from each live proc's ready pipe. False (with the proc) when one
// closed it without (its kite-restore failed: it said why on stderr) or the time ran out.
bool AwaitReady(Plan& plan, std::string* who) {
  std::vector<size_t> waiting;
  for (size_t i = 1; i < plan.manifest.procs.size(); ++i) {
    if (!plan.manifest.procs[i].exited) waiting.push_back(i);
  }
  const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  while (!waiting.empty()) {
    std::vector<pollfd> pfds;
    for (size_t i : waiting) pfds.push_back({plan.ready_read[i], POLLIN, 0});
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      *who = "process " + std::to_string(plan.manifest.procs[waiting[0]].vpid) + " (not ready within " +
             std::to_string(kReadyTimeout.count()) + " s)";
      return false;
    }
    int n = ::poll(pfds.data(), pfds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die(kExitHost, std::string("poll: ") + std::strerror(errno));
    std::vector<size_t> still;
    for (size_t k = 0; k < pfds.size(); ++k) {
      const size_t i = waiting[k];
      if (pfds[k].revents == 0) {
        still.push_back(i);
        continue;
      }
      char byte;
      ssize_t r = ::read(plan.ready_read[i], &byte, 1);
      if (r != 1) {
        *who = "process " + std::to_string(plan.manifest.procs[i].vpid);
        return false;
      }
      ::close(plan.ready_read[i]);
    }
    waiting = std::move(still);
  }
  return true;
}

void WritePidMap(const Plan& plan) {
  const char* sock = std::getenv("KITE_SOCK");
  if (sock == nullptr || *sock != '/') sock = "/run/kite/homed.sock";
  char path[512];
  if (!shim::PidMapFile::PathFor(sock, ::getpid(), path, sizeof path)) Die(kExitHost, "pid map path too long");
  std::string text = shim::PidMapFile::kHeader;
  for (size_t i = 0; i < plan.manifest.procs.size(); ++i)
    text += std::to_string(plan.manifest.procs[i].vpid) + " " + std::to_string(plan.slots[i]) + "\n";
  const std::string tmp = std::string(path) + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) Die(kExitHost, "writing the job's pid map " + tmp + ": " + std::strerror(errno));
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::close(fd) < 0 ||
      ::rename(tmp.c_str(), path) < 0)
    Die(kExitHost, "writing the job's pid map " + std::string(path) + ": " + std::strerror(errno));
}

int Main(int argc, char** argv) {
  Plan plan;
  std::string manifest_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--allow-root") {
      plan.restore_args.push_back(a);
    } else if (a == "--expect-uid" && i + 1 < argc) {
      plan.restore_args.push_back(a);
      plan.restore_args.push_back(argv[++i]);
    } else if (a == "--stream-pages") {
      plan.stream_pages = true;
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: kite-restore-tree [--allow-root] [--expect-uid UID] [--stream-pages] MANIFEST\n"
                  "Restores a job checkpointed by kite-remoted (every process, in shape, with its pipes).\n"
                  "  --stream-pages  each image's page data arrives through the FIFO <image>.pages\n");
      return 0;
    } else if (!a.empty() && a[0] != '-' && manifest_path.empty()) {
      manifest_path = a;
    } else {
      Die(kExitUsage, "usage: kite-restore-tree [--allow-root] [--expect-uid UID] [--stream-pages] MANIFEST");
    }
  }
  if (manifest_path.empty())
    Die(kExitUsage, "usage: kite-restore-tree [--allow-root] [--expect-uid UID] [--stream-pages] MANIFEST");
  auto parsed = JobManifest::Parse(ReadFile(manifest_path, 1 << 20));
  if (!parsed.ok()) Die(kExitInvalid, manifest_path + ": " + parsed.status().message());
  plan.manifest = std::move(parsed).value();
  plan.dir = DirOf(manifest_path);
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) Die(kExitHost, "cannot find our own executable");
  self[n] = '\0';
  plan.restorer = DirOf(self) + "/kite-restore";

  const size_t nprocs = plan.manifest.procs.size();
  plan.ends.resize(nprocs);
  for (size_t i = 0; i < nprocs; ++i) {
    if (!plan.manifest.procs[i].exited) plan.ends[i] = ImageFdsOf(plan.dir + "/" + plan.manifest.procs[i].image);
  }
  for (const JobManifest::Share& s : plan.manifest.shares) plan.shared.push_back(OpenShared(plan, s));
  for (const JobManifest::Pipe& p : plan.manifest.pipes) {
    int fds[2];
    if (::pipe(fds) < 0) Die(kExitHost, std::string("pipe: ") + std::strerror(errno));
    plan.pipes[p.inode] = {fds[0], fds[1]};
    FillPipe(plan, p, fds[1]);
  }
  int go[2];
  if (::pipe2(go, O_CLOEXEC) < 0) Die(kExitHost, std::string("pipe: ") + std::strerror(errno));
  plan.go_read = go[0];
  plan.go_write = go[1];
  plan.ready_read.assign(nprocs, -1);
  plan.ready_write.assign(nprocs, -1);
  for (size_t i = 1; i < nprocs; ++i) {
    if (plan.manifest.procs[i].exited) continue;
    int r[2];
    if (::pipe2(r, O_CLOEXEC) < 0) Die(kExitHost, std::string("pipe: ") + std::strerror(errno));
    plan.ready_read[i] = r[0];
    plan.ready_write[i] = r[1];
    ++plan.live_children;
  }
  if (plan.live_children > 0) {
    int l[2], r[2];
    if (::pipe2(l, O_CLOEXEC) < 0 || ::pipe2(r, O_CLOEXEC) < 0) Die(kExitHost, std::string("pipe: ") + std::strerror(errno));
    plan.loaded_read = l[0];
    plan.loaded_write = l[1];
    plan.run_read = r[0];
    plan.run_write = r[1];
  }
  void* shared = ::mmap(nullptr, sizeof(pid_t) * nprocs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) Die(kExitHost, std::string("mmap: ") + std::strerror(errno));
  plan.slots = static_cast<pid_t*>(shared);
  plan.slots[0] = ::getpid();
  if (::getsid(0) != ::getpid()) Die(kExitHost, "not started as a session leader (kite-remoted starts it)");

  ForkChildren(plan, 0);
  for (size_t i = 1; i < nprocs; ++i) {
    if (plan.ready_write[i] >= 0) ::close(plan.ready_write[i]);
  }
  std::string who;
  if (!AwaitReady(plan, &who)) Die(kExitHost, who + " of the job cannot be restored here (see above)");
  for (size_t i = 1; i < nprocs; ++i) AwaitSlot(plan, i);
  WritePidMap(plan);

  std::vector<std::string> args = RestoreArgv(plan, 0);
  ClearCloexec(plan.go_write);
  ::close(plan.go_read);
  args.insert(args.end(), {"--release-fd", std::to_string(plan.go_write), "--release-count", std::to_string(nprocs - 1)});
  if (plan.live_children > 0) {
    ::close(plan.loaded_write);
    ::close(plan.run_read);
    ClearCloexec(plan.loaded_read);
    ClearCloexec(plan.run_write);
    args.insert(args.end(), {"--loaded-fd", std::to_string(plan.loaded_read), "--run-fd", std::to_string(plan.run_write),
                             "--loaded-count", std::to_string(plan.live_children)});
  }
  Exec(args, plan.dir + "/" + plan.manifest.procs[0].image);
}

}  // namespace
}  // namespace kite

int main(int argc, char** argv) { return kite::Main(argc, argv); }
