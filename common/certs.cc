// Certificate authority for a kite cluster, with OpenSSL 3: P-256 keys, SHA-256 signatures.
#include "common/certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <fstream>
#include <memory>

namespace kite {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;

Status OpenSslError(const std::string& what) {
  char buf[256] = "unknown error";
  unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return Internal(what + ": " + buf);
}

StatusOr<Key> NewKey() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) return OpenSslError("generate P-256 key");
  return k;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return OpenSslError("certificate extension " + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? OkStatus() : OpenSslError("add certificate extension");
}

// Makes a certificate for `key` named `cn`, signed by (issuer, issuer_key); self-signed when
// issuer is null.
StatusOr<Cert> MakeCert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key, bool is_ca,
                        const std::string& san, int days) {
  Cert cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("kite"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (is_ca) {
    KITE_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    KITE_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    KITE_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE"));
    KITE_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature"));
    KITE_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth"));
    if (!san.empty()) KITE_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_subject_alt_name, san));
  }
  KITE_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash"));
  if (!X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256())) return OpenSslError("sign certificate");
  return cert;
}

// Writes via a temporary file and rename, so a crash never leaves half a key.
Status WritePem(const std::string& path, mode_t mode, X509* cert, EVP_PKEY* key) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return PosixError("create " + tmp, errno);
  FILE* f = fdopen(fd, "w");
  if (!f) {
    ::close(fd);
    return PosixError("fdopen " + tmp, errno);
  }
  bool ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  if (fclose(f) != 0 || !ok) {
    ::unlink(tmp.c_str());
    return OpenSslError("write " + path);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return PosixError("rename " + tmp, errno);
  return OkStatus();
}

StatusOr<Cert> ReadCert(const std::string& path) {
  std::unique_ptr<BIO, Free> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return OpenSslError("open " + path);
  Cert c(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!c) return OpenSslError("read certificate " + path);
  return c;
}

StatusOr<Key> ReadKey(const std::string& path) {
  std::unique_ptr<BIO, Free> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return OpenSslError("open " + path);
  Key k(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!k) return OpenSslError("read key " + path);
  return k;
}

Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return PosixError("mkdir " + path, errno);
  return OkStatus();
}

std::string SubjectAltName(const std::string& host, const std::string& address) {
  std::string san = "DNS:" + host;
  in6_addr a6;
  in_addr a4;
  if (!address.empty()) {
    if (inet_pton(AF_INET, address.c_str(), &a4) == 1 || inet_pton(AF_INET6, address.c_str(), &a6) == 1)
      san += ",IP:" + address;
    else
      san += ",DNS:" + address;
  }
  return san;
}

std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string HostConfig(const ClusterInitOptions& o, const std::string& host) {
  std::string t = "# kite configuration for host " + host + ", written by `kite cluster init`.\n";
  t += "[cluster]\n";
  t += "name = " + TomlString(o.cluster_name) + "\n";
  t += "ca = " + TomlString(o.config_dir + "/ca.pem") + "\n";
  t += "cert = " + TomlString(o.config_dir + "/host.pem") + "\n";
  t += "key = " + TomlString(o.config_dir + "/host.key") + "\n";
  t += std::string("allow_root = ") + (o.allow_root ? "true" : "false") + "\n";
  t += "shared_paths = [" + TomlString(o.shared_path) + "]\n\n";
  t += "[host]\nname = " + TomlString(host) + "\n";
  if (o.slots_per_host > 0) t += "slots = " + std::to_string(o.slots_per_host) + "\n";
  if (auto it = o.hosts.find(host); it != o.hosts.end()) t += "listen = " + TomlString(it->second) + "\n";
  t += "\n[hosts]\n";
  for (const auto& [name, addr] : o.hosts) t += TomlString(name) + " = " + TomlString(addr) + "\n";
  t += "\n[remoted]\nowner_detect = " + TomlString(o.owner_detect) + "\n";
  if (!o.cgroup_parent_template.empty()) {
    std::string cg = o.cgroup_parent_template;
    for (size_t p; (p = cg.find("{host}")) != std::string::npos;) cg.replace(p, 6, host);
    t += "cgroup_parent = " + TomlString(cg) + "\n";
  }
  return t;
}

Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return PosixError("write " + path, errno);
  return OkStatus();
}

}  // namespace

Status IssueHostCertificate(const std::string& ca_cert, const std::string& ca_key, const std::string& host,
                            const std::string& address, int validity_days, const std::string& out_cert,
                            const std::string& out_key) {
  KITE_ASSIGN_OR_RETURN(Cert ca, ReadCert(ca_cert));
  KITE_ASSIGN_OR_RETURN(Key cakey, ReadKey(ca_key));
  KITE_ASSIGN_OR_RETURN(Key key, NewKey());
  KITE_ASSIGN_OR_RETURN(Cert cert, MakeCert(key.get(), host, ca.get(), cakey.get(), false,
                                            SubjectAltName(host, address), validity_days));
  KITE_RETURN_IF_ERROR(WritePem(out_key, 0600, nullptr, key.get()));
  return WritePem(out_cert, 0644, cert.get(), nullptr);
}

Status InitCluster(const ClusterInitOptions& o) {
  if (o.out_dir.empty()) return InvalidArgument("no output directory given");
  if (o.hosts.empty()) return InvalidArgument("no hosts given (HOST=ADDRESS ...)");
  for (const auto& [name, addr] : o.hosts) {
    if (name.empty() || name.size() > 63 || name.find_first_of("/ \t\n=\"\\") != std::string::npos)
      return InvalidArgument("bad host name '" + name + "'");
    if (addr.empty()) return InvalidArgument("host " + name + " has no address");
  }
  std::string ca_pem = o.out_dir + "/ca.pem", ca_key = o.out_dir + "/ca.key";
  if (::access(ca_key.c_str(), F_OK) == 0)
    return FailedPrecondition(ca_key + " exists: refusing to replace a cluster's CA (remove the directory first)");
  KITE_RETURN_IF_ERROR(MakeDir(o.out_dir, 0755));

  KITE_ASSIGN_OR_RETURN(Key cakey, NewKey());
  KITE_ASSIGN_OR_RETURN(Cert ca, MakeCert(cakey.get(), o.cluster_name + " cluster CA", nullptr, nullptr, true, "",
                                          o.validity_days));
  KITE_RETURN_IF_ERROR(WritePem(ca_key, 0600, nullptr, cakey.get()));
  KITE_RETURN_IF_ERROR(WritePem(ca_pem, 0644, ca.get(), nullptr));

  for (const auto& [host, addr] : o.hosts) {
    std::string dir = o.out_dir + "/" + host;
    KITE_RETURN_IF_ERROR(MakeDir(dir, 0755));
    KITE_ASSIGN_OR_RETURN(Key key, NewKey());
    KITE_ASSIGN_OR_RETURN(Cert cert, MakeCert(key.get(), host, ca.get(), cakey.get(), false,
                                              SubjectAltName(host, addr), o.validity_days));
    KITE_RETURN_IF_ERROR(WritePem(dir + "/host.key", 0600, nullptr, key.get()));
    KITE_RETURN_IF_ERROR(WritePem(dir + "/host.pem", 0644, cert.get(), nullptr));
    KITE_RETURN_IF_ERROR(WritePem(dir + "/ca.pem", 0644, ca.get(), nullptr));
    KITE_RETURN_IF_ERROR(WriteText(dir + "/kite.toml", HostConfig(o, host)));
  }
  return OkStatus();
}

Status MakeSelfSigned(const std::string& name, const std::string& out_cert, const std::string& out_key) {
  KITE_ASSIGN_OR_RETURN(Key key, NewKey());
  KITE_ASSIGN_OR_RETURN(Cert cert, MakeCert(key.get(), name, nullptr, nullptr, false, "DNS:" + name, 30));
  KITE_RETURN_IF_ERROR(WritePem(out_key, 0600, nullptr, key.get()));
  return WritePem(out_cert, 0644, cert.get(), nullptr);
}

}  // namespace kite
