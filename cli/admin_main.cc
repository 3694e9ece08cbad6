// kite-admin: the `kite cluster ...` commands, which need OpenSSL. `kite` execs this binary for
// them, so that the hot path (`kite run`, started once per recipe of a build) loads no crypto.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/certs.h"

namespace {

int RunClusterInit(const kite::ClusterInitOptions& options) {
  kite::Status s = kite::InitCluster(options);
  if (!s.ok()) {
    fprintf(stderr, "kite: cluster init: %s\n", s.message().c_str());
    return 1;
  }
  printf("wrote the cluster CA to %s/ca.pem and files for %zu hosts:\n", options.out_dir.c_str(), options.hosts.size());
  for (const auto& [host, addr] : options.hosts)
    printf("  %s/%s/  -> install as %s on %s (%s)\n", options.out_dir.c_str(), host.c_str(), options.config_dir.c_str(),
           host.c_str(), addr.c_str());
  printf("keep %s/ca.key secret: it can admit new hosts to the cluster\n", options.out_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kite cluster: cluster administration"};
  app.name("kite cluster");
  app.require_subcommand(1);
  kite::ClusterInitOptions init;
  std::vector<std::string> host_args;
  auto* cinit = app.add_subcommand("init", "make a cluster CA, and certificates and configs for its hosts");
  cinit->add_option("--out", init.out_dir, "output directory")->required();
  cinit->add_option("--name", init.cluster_name, "cluster name")->capture_default_str();
  cinit->add_option("--slots", init.slots_per_host, "guest slots per host (default: CPUs)");
  cinit->add_flag("--allow-root", init.allow_root, "let root's jobs run on other hosts");
  cinit->add_option("--owner-detect", init.owner_detect, "auto or none")
      ->check(CLI::IsMember({"auto", "none"}))
      ->capture_default_str();
  cinit->add_option("--shared-path", init.shared_path, "the shared file system's mount point")->capture_default_str();
  cinit->add_option("--config-dir", init.config_dir, "where each host keeps these files")->capture_default_str();
  cinit->add_option("--cgroup-parent", init.cgroup_parent_template, "guests' cgroup parent; {host} is replaced");
  cinit->add_option("hosts", host_args, "HOST=ADDRESS for each host")->required();
  CLI11_PARSE(app, argc, argv);

  for (const auto& h : host_args) {
    auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == h.size()) {
      fprintf(stderr, "kite: cluster init: '%s' is not HOST=ADDRESS\n", h.c_str());
      return 2;
    }
    init.hosts[h.substr(0, eq)] = h.substr(eq + 1);
  }
  return RunClusterInit(init);
}
