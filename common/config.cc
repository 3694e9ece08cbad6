// Config loading with toml++: unknown keys are errors (a typo must not silently do nothing).
#include "common/config.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

namespace kite {
namespace {

class TableReader {
 public:
  TableReader(const toml::table* t, std::string name, std::string origin)
      : t_(t), name_(std::move(name)), origin_(std::move(origin)) {}

  template <typename T>
  void get(const char* key, T* out) {
    seen_.insert(key);
    if (!t_ || !status_.ok()) return;
    const toml::node* n = t_->get(key);
    if (!n) return;
    if constexpr (std::is_same_v<T, bool>) {
      if (auto v = n->value<bool>()) *out = *v; else bad(key, "a boolean");
    } else if constexpr (std::is_integral_v<T>) {
      if (auto v = n->value<int64_t>()) *out = static_cast<T>(*v); else bad(key, "an integer");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (auto v = n->value<double>()) *out = *v; else bad(key, "a number");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = n->value<std::string>()) *out = *v; else bad(key, "a string");
    } else {
      static_assert(std::is_same_v<T, std::vector<std::string>>);
      const toml::array* a = n->as_array();
      if (!a) return bad(key, "an array of strings");
      out->clear();
      for (const auto& e : *a) {
        auto v = e.value<std::string>();
        if (!v) return bad(key, "an array of strings");
        out->push_back(*v);
      }
    }
  }

  // Every key present must have been asked for.
  Status Finish() {
    if (!status_.ok() || !t_) return status_;
    for (const auto& [k, v] : *t_) {
      if (!seen_.count(std::string(k.str())))
        return InvalidArgument(origin_ + ": unknown key '" + std::string(k.str()) + "' in [" + name_ + "]");
    }
    return status_;
  }

 private:
  void bad(const char* key, const char* what) {
    status_ = InvalidArgument(origin_ + ": [" + name_ + "] " + key + " must be " + what);
  }
  const toml::table* t_;
  std::string name_, origin_;
  std::set<std::string> seen_;
  Status status_;
};

}  // namespace

StatusOr<std::string> Config::AddressOf(const std::string& host) const {
  auto it = hosts.find(host);
  if (it != hosts.end()) return it->second;
  std::string known;
  for (const auto& [name, addr] : hosts) known += (known.empty() ? "" : ", ") + name;
  return NotFound("unknown host '" + host + "' (the cluster has: " + (known.empty() ? "none" : known) + ")");
}

StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin) {
  toml::parse_result parsed = toml::parse(text, origin);
  if (!parsed) {
    const auto& e = parsed.error();
    std::ostringstream m;
    m << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
      << e.description();
    return InvalidArgument(m.str());
  }
  const toml::table& root = parsed.table();
  static const std::set<std::string> kSections = {"cluster", "host", "hosts", "ports", "remoted", "homed", "paths"};
  for (const auto& [k, v] : root) {
    if (!kSections.count(std::string(k.str())))
      return InvalidArgument(origin + ": unknown section [" + std::string(k.str()) + "]");
  }

  Config c;
  TableReader cluster(root["cluster"].as_table(), "cluster", origin);
  cluster.get("name", &c.cluster_name);
  cluster.get("ca", &c.ca_file);
  cluster.get("cert", &c.cert_file);
  cluster.get("key", &c.key_file);
  cluster.get("allow_root", &c.allow_root);
  cluster.get("shared_paths", &c.shared_paths);
  KITE_RETURN_IF_ERROR(cluster.Finish());

  TableReader host(root["host"].as_table(), "host", origin);
  host.get("name", &c.host_name);
  host.get("slots", &c.slots);
  host.get("listen", &c.listen_address);
  KITE_RETURN_IF_ERROR(host.Finish());

  if (const toml::table* hosts = root["hosts"].as_table()) {
    for (const auto& [k, v] : *hosts) {
      auto addr = v.value<std::string>();
      if (!addr) return InvalidArgument(origin + ": [hosts] " + std::string(k.str()) + " must be an address string");
      c.hosts[std::string(k.str())] = *addr;
    }
  }

  TableReader ports(root["ports"].as_table(), "ports", origin);
  ports.get("home", &c.home_port);
  ports.get("remote", &c.remote_port);
  KITE_RETURN_IF_ERROR(ports.Finish());

  TableReader remoted(root["remoted"].as_table(), "remoted", origin);
  remoted.get("guest_memory_limit_mb", &c.guest_memory_limit_mb);
  remoted.get("guest_cpu_shares", &c.guest_cpu_shares);
  remoted.get("idle_after_s", &c.idle_after_s);
  remoted.get("owner_load_threshold", &c.owner_load_threshold);
  remoted.get("owner_detect", &c.owner_detect);
  remoted.get("cgroup_parent", &c.cgroup_parent);
  remoted.get("shim", &c.shim_path);
  remoted.get("stream_pages", &c.stream_pages);
  KITE_RETURN_IF_ERROR(remoted.Finish());

  TableReader homed(root["homed"].as_table(), "homed", origin);
  homed.get("evict_to", &c.evict_to);
  KITE_RETURN_IF_ERROR(homed.Finish());

  TableReader paths(root["paths"].as_table(), "paths", origin);
  paths.get("run_dir", &c.run_dir);
  paths.get("checkpoint_dir", &c.checkpoint_dir);
  KITE_RETURN_IF_ERROR(paths.Finish());

  if (c.owner_detect != "auto" && c.owner_detect != "none")
    return InvalidArgument(origin + ": [remoted] owner_detect must be \"auto\" or \"none\"");
  if (c.evict_to != "home" && c.evict_to != "idle")
    return InvalidArgument(origin + ": [homed] evict_to must be \"home\" or \"idle\"");
  if (c.checkpoint_dir.size() < 2 || c.checkpoint_dir[0] != '/' || c.checkpoint_dir.back() == '/')
    return InvalidArgument(origin + ": [paths] checkpoint_dir must be an absolute path other than / (no trailing /)");
  if (c.slots < 0 || c.slots > 1024) return InvalidArgument(origin + ": [host] slots must be 0..1024");
  for (int p : {c.home_port, c.remote_port})
    if (p <= 0 || p > 65535) return InvalidArgument(origin + ": ports must be 1..65535");

  if (c.host_name.empty()) {
    char name[HOST_NAME_MAX + 1] = {};
    gethostname(name, sizeof name - 1);
    c.host_name = name;
  }
  if (c.slots == 0) c.slots = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  if (c.shim_path.empty()) c.shim_path = ExecutableDir() + "/libkite-shim.so";
  return c;
}

StatusOr<Config> LoadConfig(const std::string& path_in) {
  std::string path = path_in;
  if (path.empty()) {
    const char* env = std::getenv("KITE_CONFIG");
    path = env && *env ? env : "/etc/kite/kite.toml";
  }
  std::ifstream in(path);
  if (!in) return PosixError("cannot read config " + path, errno);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

std::string ExecutableDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

}  // namespace kite
