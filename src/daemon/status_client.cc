#include "daemon/status_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace tripod {

std::string fetch_status(const std::string& path, int timeout_ms) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    const std::string e = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error(path + ": " + e + " (is tripod running?)");
  }
  std::string out;
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) {
      ::close(fd);
      throw std::runtime_error(path + ": no answer within " + std::to_string(timeout_ms) + " ms");
    }
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string format_status(const std::string& text) {
  const auto doc = nlohmann::json::parse(text);
  std::ostringstream o;
  o << "tripod: up " << static_cast<long>(doc.value("uptime_s", 0.0)) << " s, config "
    << doc.value("config", "?") << "\n\n";
  const nlohmann::json none = nlohmann::json::array();
  for (const auto& v : doc.value("vips", none)) {
    o << "VIP " << v.value("name", "") << "  " << v.value("mode", "") << "  "
      << v.value("connections", 0) << " connection(s)"
      << (v.value("synproxy", false) ? "  synproxy" : "") << "\n";
    for (const auto& b : v.value("backends", none)) {
      o << "  " << b.value("address", "") << ":" << b.value("port", 0) << "  weight "
        << b.value("weight", 0) << "  " << b.value("health", "")
        << (b.value("in_pool", false) ? "" : "  (not in pool)");
      const std::string err = b.value("last_error", "");
      if (!err.empty() && b.value("health", "") != "up") o << "  last error: " << err;
      o << "\n";
    }
  }
  for (const auto& w : doc.value("workers", none)) {
    const nlohmann::json c = w.value("counters", nlohmann::json::object());
    o << "\nworker " << w.value("name", "") << ": rx " << c.value("worker.rx", 0) << ", tx "
      << c.value("worker.tx", 0) << ", live connections " << c.value("gateway.conns_live", 0)
      << "\n  drops and events (non-zero):\n";
    for (auto it = c.begin(); it != c.end(); ++it) {
      const std::string& k = it.key();
      if (!it.value().is_number() || it.value().get<uint64_t>() == 0) continue;
      if (k.find("drop") != std::string::npos || k.find("invalid") != std::string::npos ||
          k.find("slow_path") != std::string::npos || k.find("reset") != std::string::npos)
        o << "    " << k << " " << it.value().get<uint64_t>() << "\n";
    }
  }
  if (doc.contains("cluster")) {
    const nlohmann::json& cl = doc["cluster"];
    o << "\ncluster: node " << cl.value("node_id", 0)
      << (cl.value("ready", false) ? ", ready" : ", joining") << ", epoch " << cl.value("epoch", 0)
      << ", live nodes " << cl.value("live", nlohmann::json::array()).dump() << "\n";
    const nlohmann::json c = cl.value("counters", nlohmann::json::object());
    for (const char* k : {"records_sent", "records_received", "records_no_holder",
                          "records_backpressure", "records_dead_holder", "import_ring_full",
                          "peer_deaths", "send_errors", "heartbeat_probes", "wire_bad_mac"})
      o << "  " << k << " " << c.value(k, 0) << "\n";
  }
  return o.str();
}

}  // namespace tripod
