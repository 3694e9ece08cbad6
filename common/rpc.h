// Thrift over mutual TLS between kite hosts: contexts, servers, client connections, and the
// one boundary where Thrift exceptions turn into Status (and back).
//
// Every connection presents this host's certificate and accepts only peers whose certificate
// chains to the cluster CA. A frame over kMaxFrameBytes is refused before it is read.
// Thread safety: a TlsContext is shared freely; a Conn is used by one thread at a time.
#pragma once

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSSLSocket.h>
#include <thrift/transport/TTransportException.h>

#include <memory>
#include <string>
#include <utility>

#include "common/config.h"
#include "common/status.h"
#include "kite/rpc/kite_types.h"

namespace kite {

// Largest Thrift frame either side accepts (stdio travels in chunks of at most 1 MiB).
inline constexpr int kMaxFrameBytes = 8 << 20;

class TlsContext {
 public:
  // Loads the CA, this host's certificate and key from `config`; fails with a clear message
  // naming the file that is missing or unreadable.
  static StatusOr<std::shared_ptr<TlsContext>> Create(const Config& config);
  static StatusOr<std::shared_ptr<TlsContext>> Create(const std::string& ca, const std::string& cert,
                                                      const std::string& key);

  const std::shared_ptr<apache::thrift::transport::TSSLSocketFactory>& client_factory() const { return client_; }
  const std::shared_ptr<apache::thrift::transport::TSSLSocketFactory>& server_factory() const { return server_; }

 private:
  std::shared_ptr<apache::thrift::transport::TSSLSocketFactory> client_;
  std::shared_ptr<apache::thrift::transport::TSSLSocketFactory> server_;
};

std::shared_ptr<apache::thrift::TConfiguration> ThriftLimits();

// A client connection of one Thrift service.
template <typename Client>
struct Conn {
  std::shared_ptr<apache::thrift::transport::TTransport> transport;
  std::unique_ptr<Client> client;
  std::string peer;  // "host:port", for messages

  Client* operator->() { return client.get(); }
  ~Conn() {
    try {
      if (transport && transport->isOpen()) transport->close();
    } catch (...) {
    }
  }
};

// Opens a TLS connection to address:port. `recv_timeout_ms` bounds every read, so a peer that
// vanishes without closing (a dead host) is noticed; 0 means wait forever.
template <typename Client>
StatusOr<std::unique_ptr<Conn<Client>>> Connect(const TlsContext& tls, const std::string& address, int port,
                                                int connect_timeout_ms, int recv_timeout_ms) {
  using namespace apache::thrift;
  auto conn = std::make_unique<Conn<Client>>();
  conn->peer = address + ":" + std::to_string(port);
  try {
    std::shared_ptr<transport::TSSLSocket> sock = tls.client_factory()->createSocket(address, port);
    sock->setConnTimeout(connect_timeout_ms);
    sock->setRecvTimeout(recv_timeout_ms);
    sock->setSendTimeout(recv_timeout_ms);
    sock->setNoDelay(true);
    conn->transport = std::make_shared<transport::TFramedTransport>(sock, ThriftLimits());
    auto proto = std::make_shared<protocol::TBinaryProtocol>(conn->transport);
    conn->transport->open();
    conn->client = std::make_unique<Client>(proto);
  } catch (const std::exception& e) {
    return Unavailable("connect " + conn->peer + ": " + e.what());
  }
  return conn;
}

// A thread-per-connection server on listen_address:port speaking framed binary Thrift over
// mutual TLS. The caller runs serve() (blocking) and stop().
StatusOr<std::shared_ptr<apache::thrift::server::TServer>> MakeServer(
    const TlsContext& tls, const std::string& listen_address, int port,
    std::shared_ptr<apache::thrift::TProcessor> processor);

// The client side of the boundary: a KiteError keeps its code; a transport failure is
// kUnavailable (the peer died or is unreachable); anything else is kInternal.
Status FromException(const std::exception& e, const std::string& context);

// The server side: a handler throws the Status as a typed KiteError.
rpc::KiteError ToKiteError(const Status& s);
inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw ToKiteError(s);
}

// Runs `fn` (a Thrift client call) and turns what it throws into a Status.
template <typename Fn>
Status Call(const std::string& context, Fn&& fn) {
  try {
    fn();
    return OkStatus();
  } catch (const std::exception& e) {
    return FromException(e, context);
  }
}

}  // namespace kite
