// Thrift over mutual TLS: factories, the server, and the Status <-> exception boundary.
#include "common/rpc.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TSSLServerSocket.h>

namespace kite {

using apache::thrift::TConfiguration;
using apache::thrift::transport::TSSLSocketFactory;

namespace {

Status CheckReadable(const std::string& what, const std::string& path) {
  if (path.empty()) return InvalidArgument(what + " file is not configured");
  if (::access(path.c_str(), R_OK) != 0)
    return PosixError(what + " " + path + " (run `kite cluster init` and install its files)", errno);
  return OkStatus();
}

StatusOr<std::shared_ptr<TSSLSocketFactory>> MakeFactory(const std::string& ca, const std::string& cert,
                                                         const std::string& key, bool server) {
  try {
    auto f = std::make_shared<TSSLSocketFactory>(apache::thrift::transport::TLSv1_2);
    f->server(server);
    f->loadCertificate(cert.c_str());
    f->loadPrivateKey(key.c_str());
    f->loadTrustedCertificates(ca.c_str());
    // Both sides demand a certificate that chains to the cluster CA. No access manager: a
    // valid chain is the whole authorisation (the CA only signs cluster hosts).
    f->authenticate(true);
    return f;
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("TLS set-up (ca ") + ca + ", cert " + cert + ", key " + key + "): " + e.what());
  }
}

// Framed transports with kite's size limits, for the server side.
class LimitedFramedTransportFactory : public apache::thrift::transport::TTransportFactory {
 public:
  std::shared_ptr<apache::thrift::transport::TTransport> getTransport(
      std::shared_ptr<apache::thrift::transport::TTransport> trans) override {
    return std::make_shared<apache::thrift::transport::TFramedTransport>(trans, ThriftLimits());
  }
};

// Binds and releases the port once, so that "address in use" or a bad address is reported when
// the daemon starts, with a clear message, and not later from serve().
Status ProbeBind(const std::string& address, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(address.empty() ? nullptr : address.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return InvalidArgument("listen address " + address + ": " + gai_strerror(rc));
  Status s;
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0) s = PosixError("socket", errno);
  else if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), ::bind(fd, res->ai_addr, res->ai_addrlen) != 0)
    s = PosixError("bind " + address + ":" + service, errno);
  if (fd >= 0) ::close(fd);
  freeaddrinfo(res);
  return s;
}

}  // namespace

std::shared_ptr<TConfiguration> ThriftLimits() {
  static const auto limits = std::make_shared<TConfiguration>(kMaxFrameBytes, kMaxFrameBytes, 64);
  return limits;
}

StatusOr<std::shared_ptr<TlsContext>> TlsContext::Create(const Config& config) {
  return Create(config.ca_file, config.cert_file, config.key_file);
}

StatusOr<std::shared_ptr<TlsContext>> TlsContext::Create(const std::string& ca, const std::string& cert,
                                                         const std::string& key) {
  KITE_RETURN_IF_ERROR(CheckReadable("CA certificate", ca));
  KITE_RETURN_IF_ERROR(CheckReadable("host certificate", cert));
  KITE_RETURN_IF_ERROR(CheckReadable("host key", key));
  auto ctx = std::make_shared<TlsContext>();
  KITE_ASSIGN_OR_RETURN(ctx->client_, MakeFactory(ca, cert, key, /*server=*/false));
  KITE_ASSIGN_OR_RETURN(ctx->server_, MakeFactory(ca, cert, key, /*server=*/true));
  return ctx;
}

StatusOr<std::shared_ptr<apache::thrift::server::TServer>> MakeServer(
    const TlsContext& tls, const std::string& listen_address, int port,
    std::shared_ptr<apache::thrift::TProcessor> processor) {
  using namespace apache::thrift;
  try {
    KITE_RETURN_IF_ERROR(ProbeBind(listen_address, port));
    auto socket = std::make_shared<transport::TSSLServerSocket>(listen_address, port, tls.server_factory());
    // Lets stop() wake connection threads blocked in a read.
    socket->setInterruptableChildren(true);
    auto server = std::make_shared<server::TThreadedServer>(
        processor, socket, std::make_shared<LimitedFramedTransportFactory>(),
        std::make_shared<protocol::TBinaryProtocolFactory>(kMaxFrameBytes, 1 << 20, true, true));
    return std::shared_ptr<server::TServer>(server);
  } catch (const std::exception& e) {
    return Unavailable("listen on " + listen_address + ":" + std::to_string(port) + ": " + e.what());
  }
}

Status FromException(const std::exception& e, const std::string& context) {
  if (auto* k = dynamic_cast<const rpc::KiteError*>(&e)) {
    return Status(static_cast<StatusCode>(k->code), context + ": " + k->message);
  }
  if (dynamic_cast<const apache::thrift::transport::TTransportException*>(&e)) {
    return Unavailable(context + ": " + e.what());
  }
  if (dynamic_cast<const apache::thrift::TApplicationException*>(&e)) {
    return Internal(context + ": the peer failed: " + e.what());
  }
  return Internal(context + ": " + e.what());
}

rpc::KiteError ToKiteError(const Status& s) {
  rpc::KiteError e;
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kPermissionDenied:
    case StatusCode::kResourceExhausted:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted:
    case StatusCode::kUnavailable:
      e.code = static_cast<rpc::ErrorCode::type>(s.code());
      break;
    default:
      e.code = rpc::ErrorCode::INTERNAL;
  }
  e.message = s.message();
  return e;
}

}  // namespace kite
