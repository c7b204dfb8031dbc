// Whether the client of an HTTP request is still connected. cpp-httplib hands a handler the
// request's addresses but not its socket, and learns of a gone client only when a write fails,
// so a request waiting in the queue or a non-streamed one would run to the end for nobody. The
// probe finds the connection's socket once (the one descriptor of this process whose local and
// peer addresses are the request's) and then asks the kernel whether the peer has closed it,
// without reading anything (MSG_PEEK), so the server's own parsing is undisturbed.
#pragma once

#include <string>

namespace qwen3moe::rpc::http {

class ConnectionProbe {
 public:
  // Addresses as cpp-httplib's Request gives them (numeric, IPv4 or IPv6).
  ConnectionProbe(const std::string& local_addr, int local_port, const std::string& remote_addr,
                  int remote_port);
  // False once the peer closed or reset the connection. True when the socket was not found
  // (then only a failed write tells).
  bool alive() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace qwen3moe::rpc::http
