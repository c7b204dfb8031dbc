#include "rpc/http/connection_probe.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>

namespace qwen3moe::rpc::http {
namespace {

// "addr" and port of a socket address, numeric; false for other families.
bool numeric(const sockaddr_storage& sa, std::string& addr, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(sa);
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text));
    port = ntohs(in.sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto& in = reinterpret_cast<const sockaddr_in6&>(sa);
    inet_ntop(AF_INET6, &in.sin6_addr, text, sizeof(text));
    port = ntohs(in.sin6_port);
  } else {
    return false;
  }
  addr = text;
  return true;
}

bool matches(int fd, const std::string& local_addr, int local_port, const std::string& remote_addr,
             int remote_port) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  std::string addr;
  int port = 0;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0 || !numeric(sa, addr, port) ||
      port != local_port || addr != local_addr)
    return false;
  len = sizeof(sa);
  return getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0 && numeric(sa, addr, port) &&
         port == remote_port && addr == remote_addr;
}

}  // namespace

ConnectionProbe::ConnectionProbe(const std::string& local_addr, int local_port,
                                 const std::string& remote_addr, int remote_port) {
  // A TCP connection's two addresses are unique on the host, and the server holds the socket
  // open for as long as the handler runs, so the match cannot change under the probe.
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == dirfd(dir)) continue;
    if (matches(fd, local_addr, local_port, remote_addr, remote_port)) {
      fd_ = fd;
      break;
    }
  }
  closedir(dir);
}

bool ConnectionProbe::alive() const {
  if (fd_ < 0) return true;
  pollfd p{fd_, short(POLLIN | POLLRDHUP), 0};
  if (poll(&p, 1, 0) <= 0) return true;
  if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return false;
  // Readable: a pipelined request (alive) or the end of the stream (closed).
  char c;
  const ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n != 0;
}

}  // namespace qwen3moe::rpc::http
