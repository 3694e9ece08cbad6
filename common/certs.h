// The cluster's certificate authority: `kite cluster init` makes a CA and one certificate per
// host (ECDSA P-256, SHA-256), so that every Thrift connection can be mutual TLS.
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace kite {

struct ClusterInitOptions {
  std::string out_dir;                        // created if missing; refuses to overwrite a CA
  std::string cluster_name = "kite";
  std::map<std::string, std::string> hosts;   // host name → address
  int slots_per_host = 0;                     // 0: number of CPUs at run time
  bool allow_root = false;
  std::string owner_detect = "auto";
  std::string shared_path = "/kite";
  int validity_days = 3650;
  std::string config_dir = "/etc/kite";       // where each host will find its files
  std::string cgroup_parent_template;         // "{host}" is replaced by the host name
};

// Writes OUT/ca.pem, OUT/ca.key (0600) and for every host OUT/HOST/{ca.pem,host.pem,host.key,
// kite.toml}: copy OUT/HOST to /etc/kite on HOST. Fails without writing anything if OUT/ca.key
// exists already.
Status InitCluster(const ClusterInitOptions& opts);

// Issues one more host certificate signed by an existing CA (e.g. a host added later).
Status IssueHostCertificate(const std::string& ca_cert, const std::string& ca_key, const std::string& host,
                            const std::string& address, int validity_days, const std::string& out_cert,
                            const std::string& out_key);

// Makes a self-signed certificate + key that is NOT from the cluster CA (tests use it to prove
// that such a peer is refused).
Status MakeSelfSigned(const std::string& name, const std::string& out_cert, const std::string& out_key);

}  // namespace kite
