// JobManifest: the text form (see job_manifest.h).
#include "syscall-shim/tree/job_manifest.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace kite {
namespace {

std::vector<std::string> Fields(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t sp = line.find(' ', start);
    out.push_back(line.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
    if (sp == std::string::npos) break;
    start = sp + 1;
  }
  return out;
}

template <typename T>
bool Number(const std::string& s, T* out) {
  if (s.empty() || s.size() > 20 || s[0] == '-' || s[0] == '+') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool PlainFileName(const std::string& s) {
  return !s.empty() && s.size() <= 255 && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos;
}

}  // namespace

std::string JobManifest::Serialize() const {
  std::ostringstream o;
  o << kHeader << "\n";
  for (int i = 0; i < 3; ++i) {
    o << "stream " << i << " ";
    switch (streams[i].kind) {
      case StreamKind::kNone: o << "none"; break;
      case StreamKind::kTty: o << "tty"; break;
      case StreamKind::kPipe: o << "pipe " << streams[i].inode; break;
    }
    o << "\n";
  }
  for (const Proc& p : procs) {
    o << "proc " << p.vpid << " " << p.vparent << " " << p.vpgid << " ";
    if (p.exited) {
      o << "exited " << p.wait_status << "\n";
    } else {
      o << "image " << p.image << "\n";
    }
  }
  for (const Pipe& p : pipes) o << "pipe " << p.inode << " " << (p.data_file.empty() ? "-" : p.data_file) << "\n";
  for (const Share& s : shares) {
    o << "share " << s.pos;
    for (const Holder& h : s.holders) o << " " << h.vpid << " " << h.fd;
    o << "\n";
  }
  if (!ckpt_dir.empty()) o << "ckpt-dir " << ckpt_dir << "\n";
  return o.str();
}

StatusOr<JobManifest> JobManifest::Parse(const std::string& text) {
  JobManifest m;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  bool seen_stream[3] = {false, false, false};
  std::set<pid_t> live;
  std::set<uint64_t> inodes;
  std::set<std::pair<pid_t, int>> held;  // descriptors in a share
  int holders = 0;
  auto bad = [&](const std::string& why) {
    return InvalidArgument("job manifest line " + std::to_string(lineno) + ": " + why);
  };
  if (text.size() > (1 << 20)) return InvalidArgument("job manifest larger than 1 MiB");
  if (!text.empty() && text.back() != '\n') return InvalidArgument("job manifest does not end with a newline");
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1) {
      if (line != kHeader) return bad("not a kite job manifest (want \"" + std::string(kHeader) + "\")");
      continue;
    }
    std::vector<std::string> f = Fields(line);
    if (f[0] == "stream") {
      int n;
      if (f.size() < 3 || !Number(f[1], &n) || n < 0 || n > 2) return bad("bad stream number");
      if (seen_stream[n]) return bad("stream listed twice");
      seen_stream[n] = true;
      if (f[2] == "none" && f.size() == 3) {
        m.streams[n].kind = StreamKind::kNone;
      } else if (f[2] == "tty" && f.size() == 3) {
        m.streams[n].kind = StreamKind::kTty;
      } else if (f[2] == "pipe" && f.size() == 4 && Number(f[3], &m.streams[n].inode) && m.streams[n].inode > 0) {
        m.streams[n].kind = StreamKind::kPipe;
      } else {
        return bad("bad stream");
      }
    } else if (f[0] == "proc") {
      Proc p;
      if (f.size() != 6 || !Number(f[1], &p.vpid) || !Number(f[2], &p.vparent) || !Number(f[3], &p.vpgid) ||
          p.vpid <= 0 || p.vpgid <= 0)
        return bad("bad proc");
      if (static_cast<int>(m.procs.size()) == kMaxProcs) return bad("more than " + std::to_string(kMaxProcs) + " processes");
      if (m.IndexOf(p.vpid) >= 0) return bad("process listed twice");
      if (m.procs.empty() ? p.vparent != 0 : live.count(p.vparent) == 0)
        return bad(m.procs.empty() ? "the root's parent must be 0" : "parent is not a live process listed before");
      if (f[4] == "image") {
        if (!PlainFileName(f[5])) return bad("bad image file name");
        p.image = f[5];
        live.insert(p.vpid);
      } else if (f[4] == "exited") {
        if (m.procs.empty()) return bad("the root has exited");
        if (!Number(f[5], &p.wait_status) || p.wait_status > 0xffff) return bad("bad wait status");
        p.exited = true;
      } else {
        return bad("bad proc kind");
      }
      m.procs.push_back(std::move(p));
    } else if (f[0] == "pipe") {
      Pipe p;
      if (f.size() != 3 || !Number(f[1], &p.inode) || p.inode == 0) return bad("bad pipe");
      if (!inodes.insert(p.inode).second) return bad("pipe listed twice");
      if (static_cast<int>(m.pipes.size()) == kMaxPipes) return bad("too many pipes");
      if (f[2] != "-") {
        if (!PlainFileName(f[2])) return bad("bad pipe data file name");
        p.data_file = f[2];
      }
      m.pipes.push_back(std::move(p));
    } else if (f[0] == "share") {
      Share s;
      if (f.size() < 6 || f.size() % 2 != 0 || !Number(f[1], &s.pos) || s.pos < 0) return bad("bad share");
      if (static_cast<int>(m.shares.size()) == kMaxShares) return bad("too many shares");
      for (size_t k = 2; k < f.size(); k += 2) {
        Holder h;
        if (!Number(f[k], &h.vpid) || !Number(f[k + 1], &h.fd) || h.fd >= (1 << 20)) return bad("bad share holder");
        if (live.count(h.vpid) == 0) return bad("share holder is not a live process listed before");
        if (++holders > kMaxShareHolders) return bad("too many share holders");
        if (!held.insert({h.vpid, h.fd}).second) return bad("descriptor in two shares");
        s.holders.push_back(h);
      }
      m.shares.push_back(std::move(s));
    } else if (f[0] == "ckpt-dir") {
      const std::string dir = line.size() > 9 ? line.substr(9) : "";
      if (dir.empty() || dir[0] != '/' || dir.size() > 4095 || dir.find('\0') != std::string::npos ||
          dir.find("/../") != std::string::npos || dir.find("/./") != std::string::npos ||
          dir.find("//") != std::string::npos || (dir.size() > 1 && dir.back() == '/'))
        return bad("bad ckpt-dir (an absolute, canonical directory)");
      if (!m.ckpt_dir.empty()) return bad("ckpt-dir listed twice");
      m.ckpt_dir = dir;
    } else {
      return bad("unknown record '" + f[0].substr(0, 32) + "'");
    }
  }
  if (lineno == 0) return InvalidArgument("empty job manifest");
  for (int i = 0; i < 3; ++i) {
    if (!seen_stream[i]) return InvalidArgument("job manifest lacks stream " + std::to_string(i));
    if (m.streams[i].kind == StreamKind::kPipe && inodes.count(m.streams[i].inode))
      return InvalidArgument("job manifest lists a standard stream's pipe as the job's own");
  }
  if (m.procs.empty()) return InvalidArgument("job manifest lists no process");
  for (const Proc& p : m.procs) {
    if (m.IndexOf(p.vpgid) < 0)
      return InvalidArgument("process " + std::to_string(p.vpid) + "'s group leader is not in the manifest");
  }
  return m;
}

int JobManifest::IndexOf(pid_t vpid) const {
  for (size_t i = 0; i < procs.size(); ++i) {
    if (procs[i].vpid == vpid) return static_cast<int>(i);
  }
  return -1;
}

int JobManifest::StreamOfPipe(uint64_t inode) const {
  for (int i = 0; i < 3; ++i) {
    if (streams[i].kind == StreamKind::kPipe && streams[i].inode == inode) return i;
  }
  return -1;
}

const JobManifest::Share* JobManifest::FindShare(pid_t vpid, int fd) const {
  for (const Share& s : shares) {
    for (const Holder& h : s.holders) {
      if (h.vpid == vpid && h.fd == fd) return &s;
    }
  }
  return nullptr;
}

const JobManifest::Pipe* JobManifest::FindPipe(uint64_t inode) const {
  for (const Pipe& p : pipes) {
    if (p.inode == inode) return &p;
  }
  return nullptr;
}

std::vector<std::pair<int, std::string>> DeletedFileCopies(const std::string& image_path) {
  std::vector<std::pair<int, std::string>> out;
  const size_t slash = image_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : image_path.substr(0, slash);
  const std::string prefix = image_path.substr(slash == std::string::npos ? 0 : slash + 1) + ".fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    int fd = 0;
    const char* digits = name.c_str() + prefix.size();
    auto [end, ec] = std::from_chars(digits, name.c_str() + name.size(), fd);
    if (ec != std::errc() || *end != '\0' || fd < 0) continue;
    out.emplace_back(fd, dir + "/" + name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

StatusOr<CheckpointFiles> ListCheckpointFiles(const std::string& manifest_path) {
  std::ifstream in(manifest_path);
  if (!in) return NotFound("no checkpoint " + manifest_path);
  std::stringstream text;
  text << in.rdbuf();
  auto m = JobManifest::Parse(text.str());
  if (!m.ok()) return m.status().With(manifest_path);
  const std::string dir = manifest_path.substr(0, manifest_path.rfind('/') + 1);
  CheckpointFiles files;
  files.paths.push_back(manifest_path);
  for (const JobManifest::Proc& p : m->procs) {
    if (p.exited) continue;
    files.paths.push_back(dir + p.image);
    for (const auto& [fd, copy] : DeletedFileCopies(dir + p.image)) files.paths.push_back(copy);
    ++files.processes;
  }
  for (const JobManifest::Pipe& p : m->pipes) {
    if (!p.data_file.empty()) files.paths.push_back(dir + p.data_file);
  }
  for (const std::string& path : files.paths) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) files.bytes += st.st_size;
  }
  return files;
}

void RemoveCheckpoint(const std::string& manifest_path) {
  auto files = ListCheckpointFiles(manifest_path);
  if (files.ok()) {
    // The manifest last: while it exists, what it names can still be found and removed.
    for (size_t i = files->paths.size(); i-- > 1;) ::unlink(files->paths[i].c_str());
  }
  ::unlink(manifest_path.c_str());
}

}  // namespace kite
