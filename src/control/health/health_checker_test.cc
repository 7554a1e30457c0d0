// The checker against real sockets, on loopback only (127.0.0.1, ::1,
// ephemeral ports). Every wait is bounded by a generous deadline and the
// assertions are about what happens (states, counts, error texts), not how
// fast: a slow shared machine only makes the tests take longer.
#include "control/health/health_checker.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace tripod {
namespace {

using namespace std::chrono_literals;
using Clk = std::chrono::steady_clock;

constexpr auto kLimit = 60s;  // generous: the machine is shared and slow

// ---- a loopback server on its own thread ----

class TestServer {
 public:
  enum class Mode { kAcceptClose, kHttp, kSilent };

  TestServer(int family, Mode mode, int listeners = 1) : mode_(mode) {
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    for (int i = 0; i < listeners; ++i) {
      const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return;
      sockaddr_storage ss{};
      const socklen_t len = loopback(family, 0, &ss);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 1024) != 0) {
        ::close(fd);
        return;
      }
      socklen_t got = sizeof ss;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &got);
      ports_.push_back(port_of(ss));
      listeners_.push_back(fd);
    }
    ok_ = true;
    thread_ = std::thread([this] { run(); });
  }

  ~TestServer() {
    stop_ = true;
    poke();
    if (thread_.joinable()) thread_.join();
    for (int fd : listeners_)
      ::close(fd);
    for (int fd : held_)
      ::close(fd);
    ::close(wake_);
  }

  bool ok() const { return ok_; }
  uint16_t port(size_t i = 0) const { return ports_.at(i); }
  void set_status(int code) { status_ = code; }
  int accepted() const { return accepted_; }

  // Synchronous: when it returns the ports refuse connections. (The server
  // thread closes them: a socket closed while another thread polls it would
  // stay open until that poll returns.)
  void close_listeners() {
    std::unique_lock lk(mu_);
    close_requested_ = true;
    poke();
    cv_.wait_for(lk, kLimit, [&] { return listeners_.empty(); });
  }

  std::string last_request() const {
    std::lock_guard lk(mu_);
    return last_request_;
  }
  std::string last_peer() const {
    std::lock_guard lk(mu_);
    return last_peer_;
  }

  static socklen_t loopback(int family, uint16_t port, sockaddr_storage* ss) {
    if (family == AF_INET6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      a.sin6_port = htons(port);
      std::memcpy(ss, &a, sizeof a);
      return sizeof a;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    std::memcpy(ss, &a, sizeof a);
    return sizeof a;
  }

 private:
  static uint16_t port_of(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET6) {
      sockaddr_in6 a;
      std::memcpy(&a, &ss, sizeof a);
      return ntohs(a.sin6_port);
    }
    sockaddr_in a;
    std::memcpy(&a, &ss, sizeof a);
    return ntohs(a.sin_port);
  }

  static std::string addr_text(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
      sockaddr_in6 a;
      std::memcpy(&a, &ss, sizeof a);
      inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf);
    } else {
      sockaddr_in a;
      std::memcpy(&a, &ss, sizeof a);
      inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    }
    return buf;
  }

  void poke() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof one);
  }

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{wake_, POLLIN, 0}};
      {
        std::lock_guard lk(mu_);
        if (close_requested_ && !listeners_.empty()) {
          for (int fd : listeners_)
            ::close(fd);
          listeners_.clear();
          cv_.notify_all();
        }
        for (int fd : listeners_)
          fds.push_back({fd, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 1000) <= 0) continue;
      if (fds[0].revents != 0) {
        uint64_t v;
        [[maybe_unused]] ssize_t n = ::read(wake_, &v, sizeof v);
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if ((fds[i].revents & POLLIN) == 0) continue;
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        const int c = ::accept4(fds[i].fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
        if (c < 0) continue;
        ++accepted_;
        {
          std::lock_guard lk(mu_);
          last_peer_ = addr_text(peer);
        }
        serve(c);
      }
    }
  }

  void serve(int c) {
    switch (mode_) {
      case Mode::kAcceptClose:
        ::close(c);
        return;
      case Mode::kSilent:
        held_.push_back(c);  // never answered; closed by the destructor
        return;
      case Mode::kHttp:
        break;
    }
    // Read the request head (bounded in size and time), answer, close.
    std::string req;
    char buf[512];
    const auto until = Clk::now() + 5s;
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192 && Clk::now() < until) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard lk(mu_);
      last_request_ = req;
    }
    const std::string resp = "HTTP/1.1 " + std::to_string(status_.load()) +
                             " Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    [[maybe_unused]] ssize_t n = ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    ::close(c);
  }

  Mode mode_;
  bool ok_ = false;
  int wake_ = -1;
  std::vector<uint16_t> ports_;
  std::vector<int> held_;  // server thread only, until the destructor joins
  std::atomic<bool> stop_{false};
  std::atomic<int> status_{200};
  std::atomic<int> accepted_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> listeners_;  // guarded by mu_
  bool close_requested_ = false;
  std::string last_request_;
  std::string last_peer_;
  std::thread thread_;
};

// A port nothing listens on: bound then closed, so the kernel answers RST.
uint16_t refused_port(int family) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss{};
  socklen_t len = TestServer::loopback(family, 0, &ss);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;  // add() rejects port 0: the test fails loudly
  }
  len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  ::close(fd);
  uint16_t port;
  if (family == AF_INET6) {
    sockaddr_in6 a;
    std::memcpy(&a, &ss, sizeof a);
    port = ntohs(a.sin6_port);
  } else {
    sockaddr_in a;
    std::memcpy(&a, &ss, sizeof a);
    port = ntohs(a.sin_port);
  }
  return port;
}

bool have_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_storage ss{};
  const socklen_t len = TestServer::loopback(AF_INET6, 0, &ss);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  ::close(fd);
  return ok;
}

int thread_count() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return -1;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = kLimit) {
  const auto until = Clk::now() + limit;
  while (Clk::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// Drains the checker's event queue through its fd, as the daemon would.
class Events {
 public:
  explicit Events(HealthChecker& hc) : hc_(hc) {}

  // The first not yet consumed event of `id` with `state`.
  std::optional<HealthEvent> wait(HealthTargetId id, HealthState state,
                                  std::chrono::milliseconds limit = kLimit) {
    const auto until = Clk::now() + limit;
    for (;;) {
      for (auto it = seen_.begin(); it != seen_.end(); ++it) {
        if (it->id == id && it->state == state) {
          HealthEvent e = *it;
          seen_.erase(it);
          return e;
        }
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clk::now());
      if (left <= 0ms) return std::nullopt;
      pollfd p{hc_.event_fd(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000))) > 0) pump();
    }
  }

  void pump() {
    for (HealthEvent& e : hc_.drain_events())
      seen_.push_back(std::move(e));
  }
  std::vector<HealthEvent>& seen() { return seen_; }

 private:
  HealthChecker& hc_;
  std::vector<HealthEvent> seen_;
};

HealthCheckSpec loopback_spec(int family, uint16_t port, CheckType type = CheckType::kTcp) {
  HealthCheckSpec s;
  s.type = type;
  s.addr = IpAddress::parse(family == AF_INET6 ? "::1" : "127.0.0.1");
  s.port = port;
  // Short enough for quick tests; the timeout is far above a loopback RTT
  // even on a loaded machine, and a rare spurious timeout only delays.
  s.interval_ms = 300;
  s.timeout_ms = 250;
  return s;
}

std::string last_error(const HealthChecker& hc, HealthTargetId id) {
  const auto st = hc.status(id);
  return st ? st->health.last_error : "<removed>";
}

// ---- tests ----

TEST(HealthChecker, ValidateNamesTheField) {
  HealthCheckSpec s = loopback_spec(AF_INET, 80);
  EXPECT_NO_THROW(validate(s));
  auto bad = [&](auto mutate, const char* field) {
    HealthCheckSpec b = s;
    mutate(b);
    try {
      validate(b);
      ADD_FAILURE() << "accepted a bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  bad([](auto& b) { b.port = 0; }, "port");
  bad([](auto& b) { b.addr = IpAddress{}; }, "address");
  bad([](auto& b) { b.timeout_ms = b.interval_ms; }, "timeout");
  bad([](auto& b) { b.rise = 0; }, "rise");
  bad([](auto& b) { b.fall = 0; }, "fall");
  bad(
      [](auto& b) {
        b.type = CheckType::kHttp;
        b.path = "/x HTTP/1.0\r\nEvil: 1";
      },
      "path");
  bad(
      [](auto& b) {
        b.type = CheckType::kHttp;
        b.path = "health";
      },
      "path");
  bad(
      [](auto& b) {
        b.type = CheckType::kHttp;
        b.host = "a\r\nb";
      },
      "host");
  bad([](auto& b) { b.source = IpAddress::parse("::1"); }, "source");
  bad([](auto& b) { b.interface = "much-too-long-interface-name"; }, "interface");

  HealthChecker hc;
  EXPECT_THROW(hc.add(HealthCheckSpec{}), std::invalid_argument);
  EXPECT_EQ(hc.gauge(HealthGauge::kTargets), 0u);
}

TEST(HealthChecker, TcpListenerGoesUpAndDownAfterFallFailures) {
  TestServer srv(AF_INET, TestServer::Mode::kAcceptClose);
  ASSERT_TRUE(srv.ok());
  HealthChecker hc;
  Events ev(hc);
  HealthCheckSpec s = loopback_spec(AF_INET, srv.port());
  s.name = "tcp-backend";
  s.rise = 2;
  s.fall = 3;
  const HealthTargetId id = hc.add(s);
  ASSERT_EQ(hc.status(id)->health.tracker.state(), HealthState::kDown);  // the default

  const auto up = ev.wait(id, HealthState::kUp);
  ASSERT_TRUE(up) << last_error(hc, id);
  EXPECT_EQ(up->name, "tcp-backend");
  EXPECT_EQ(up->reason, "ok");
  EXPECT_EQ(up->consecutive, 2u);  // exactly `rise` successes tipped it
  EXPECT_EQ(hc.status(id)->health.tracker.state(), HealthState::kUp);
  // The kernel completes the handshake before the server thread accepts.
  EXPECT_TRUE(eventually([&] { return srv.accepted() >= 2; })) << srv.accepted();

  srv.close_listeners();
  const auto down = ev.wait(id, HealthState::kDown);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->consecutive, 3u);  // exactly `fall` failures tipped it
  EXPECT_TRUE(eventually([&] { return last_error(hc, id) == "connect: Connection refused"; }))
      << last_error(hc, id);

  const auto st = hc.status(id);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->health.tracker.state(), HealthState::kDown);
  EXPECT_GE(st->health.checks_ok, 2u);
  EXPECT_GE(st->health.checks_failed, 3u);
  EXPECT_GT(st->health.last_check_ns, 0u);
  EXPECT_GE(st->health.transitions, 2u);
  EXPECT_GE(hc.counter(HealthCounter::kConnectErrors), 3u);
  EXPECT_GE(hc.counter(HealthCounter::kWentUp), 1u);
  EXPECT_GE(hc.counter(HealthCounter::kWentDown), 1u);

  // Every counter is exported under its name.
  std::set<std::string> names;
  hc.export_counters([&](std::string_view name, uint64_t) { names.emplace(name); });
  for (const char* n :
       {"checks_started", "checks_ok", "checks_failed", "timeouts", "connect_errors", "went_up",
        "went_down", "targets", "targets_up", "checks_in_flight"})
    EXPECT_EQ(names.count(n), 1u) << n;
}

TEST(HealthChecker, HttpStatusFlipsState) {
  TestServer srv(AF_INET, TestServer::Mode::kHttp);
  ASSERT_TRUE(srv.ok());
  HealthChecker hc;
  Events ev(hc);
  HealthCheckSpec s = loopback_spec(AF_INET, srv.port(), CheckType::kHttp);
  s.path = "/healthz?full=1";
  s.rise = 1;
  s.fall = 1;
  const HealthTargetId id = hc.add(s);

  ASSERT_TRUE(ev.wait(id, HealthState::kUp)) << last_error(hc, id);
  const std::string req = srv.last_request();
  EXPECT_EQ(req.rfind("GET /healthz?full=1 HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nHost: 127.0.0.1:" + std::to_string(srv.port()) + "\r\n"),
            std::string::npos)
      << req;
  EXPECT_NE(req.find("\r\nConnection: close\r\n"), std::string::npos) << req;

  srv.set_status(503);
  const auto down = ev.wait(id, HealthState::kDown);
  ASSERT_TRUE(down);
  EXPECT_TRUE(eventually([&] { return last_error(hc, id) == "http: status 503"; }))
      << last_error(hc, id);
  EXPECT_GE(hc.counter(HealthCounter::kHttpBadStatus), 1u);

  srv.set_status(302);  // within the default 200-399
  ASSERT_TRUE(ev.wait(id, HealthState::kUp)) << last_error(hc, id);

  // A narrower expectation makes the same answer a failure.
  s.expect = parse_status_range("200");
  ASSERT_TRUE(hc.update(id, s));
  ASSERT_TRUE(ev.wait(id, HealthState::kDown));
  EXPECT_TRUE(eventually([&] { return last_error(hc, id) == "http: status 302"; }))
      << last_error(hc, id);
}

TEST(HealthChecker, SilentServerTimesOut) {
  TestServer srv(AF_INET, TestServer::Mode::kSilent);
  ASSERT_TRUE(srv.ok());
  HealthChecker hc;
  Events ev(hc);
  HealthCheckSpec s = loopback_spec(AF_INET, srv.port(), CheckType::kHttp);
  s.initial = HealthState::kUp;
  s.fall = 2;
  const HealthTargetId id = hc.add(s);

  const auto down = ev.wait(id, HealthState::kDown);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->consecutive, 2u);
  EXPECT_EQ(down->reason.rfind("timeout after 250 ms", 0), 0u) << down->reason;
  EXPECT_GE(hc.counter(HealthCounter::kTimeouts), 2u);
  // It did connect: the response timed out.
  EXPECT_TRUE(eventually([&] { return srv.accepted() >= 1; }));
}

TEST(HealthChecker, RefusedPortStaysDownAndTakesAnUpTargetDown) {
  HealthChecker hc;
  Events ev(hc);
  HealthCheckSpec s = loopback_spec(AF_INET, refused_port(AF_INET));
  s.fall = 1;
  const HealthTargetId down_from_start = hc.add(s);
  s.initial = HealthState::kUp;
  const HealthTargetId up_from_start = hc.add(s);

  const auto e = ev.wait(up_from_start, HealthState::kDown);
  ASSERT_TRUE(e);
  EXPECT_TRUE(eventually([&] { return hc.status(down_from_start)->health.checks >= 2; }));
  const auto st = hc.status(down_from_start);
  EXPECT_EQ(st->health.tracker.state(), HealthState::kDown);
  EXPECT_EQ(st->health.last_error, "connect: Connection refused");
  EXPECT_EQ(st->health.checks_ok, 0u);
  ev.pump();
  for (const HealthEvent& x : ev.seen())
    EXPECT_NE(x.id, down_from_start);  // never changed
}

TEST(HealthChecker, Ipv6) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "no ::1 here";
  TestServer srv(AF_INET6, TestServer::Mode::kHttp);
  ASSERT_TRUE(srv.ok());
  HealthChecker hc;
  Events ev(hc);
  HealthCheckSpec s = loopback_spec(AF_INET6, srv.port(), CheckType::kHttp);
  s.rise = 1;
  const HealthTargetId id = hc.add(s);
  ASSERT_TRUE(ev.wait(id, HealthState::kUp)) << last_error(hc, id);
  EXPECT_NE(srv.last_request().find("\r\nHost: [::1]:" + std::to_string(srv.port()) + "\r\n"),
            std::string::npos)
      << srv.last_request();
  EXPECT_EQ(srv.last_peer(), "::1");

  HealthCheckSpec r = loopback_spec(AF_INET6, refused_port(AF_INET6));
  r.initial = HealthState::kUp;
  r.fall = 1;
  const HealthTargetId rid = hc.add(r);
  ASSERT_TRUE(ev.wait(rid, HealthState::kDown));
  EXPECT_TRUE(eventually([&] { return last_error(hc, rid) == "connect: Connection refused"; }));
}

TEST(HealthChecker, SourceAddressAndInterfaceBinding) {
  TestServer srv(AF_INET, TestServer::Mode::kHttp);
  ASSERT_TRUE(srv.ok());
  HealthChecker hc;
  Events ev(hc);

  // All of 127/8 is local, so 127.0.0.2 is a source address we own.
  HealthCheckSpec s = loopback_spec(AF_INET, srv.port(), CheckType::kHttp);
  s.rise = 1;
  s.source = IpAddress::parse("127.0.0.2");
  const HealthTargetId id = hc.add(s);
  ASSERT_TRUE(ev.wait(id, HealthState::kUp)) << last_error(hc, id);
  EXPECT_EQ(srv.last_peer(), "127.0.0.2");
  ASSERT_TRUE(hc.remove(id));

  // An address that is not ours cannot be bound: the check fails locally.
  s.source = IpAddress::parse("192.0.2.1");  // TEST-NET-1
  s.initial = HealthState::kUp;
  s.fall = 1;
  const HealthTargetId foreign = hc.add(s);
  ASSERT_TRUE(ev.wait(foreign, HealthState::kDown));
  EXPECT_EQ(last_error(hc, foreign).rfind("bind 192.0.2.1: ", 0), 0u) << last_error(hc, foreign);
  EXPECT_GE(hc.counter(HealthCounter::kLocalErrors), 1u);

  // An interface that does not exist.
  s.source = IpAddress{};
  s.interface = "tripodnoif0";
  const HealthTargetId noif = hc.add(s);
  ASSERT_TRUE(ev.wait(noif, HealthState::kDown));
  EXPECT_EQ(last_error(hc, noif).rfind("SO_BINDTODEVICE tripodnoif0: ", 0), 0u)
      << last_error(hc, noif);

  // "lo" works where the process may bind to a device (root, or Linux >= 5.7
  // for a socket not yet bound).
  s.interface = "lo";
  s.initial = HealthState::kDown;
  const HealthTargetId lo = hc.add(s);
  ASSERT_TRUE(eventually([&] { return hc.status(lo)->health.checks >= 1; }));
  const std::string err = last_error(hc, lo);
  if (err.find("Operation not permitted") != std::string::npos) GTEST_SKIP() << err;
  ASSERT_TRUE(ev.wait(lo, HealthState::kUp)) << last_error(hc, lo);
}

TEST(HealthChecker, UpdateKeepsStateRemoveStopsChecks) {
  TestServer marker_srv(AF_INET, TestServer::Mode::kAcceptClose);
  ASSERT_TRUE(marker_srv.ok());
  HealthChecker hc;
  Events ev(hc);
  HealthCheckSpec s = loopback_spec(AF_INET, refused_port(AF_INET));
  s.initial = HealthState::kUp;
  s.fall = 2;
  const HealthTargetId id = hc.add(s);
  ASSERT_TRUE(ev.wait(id, HealthState::kDown));
  const uint64_t checks_before = hc.status(id)->health.checks;

  // Same spec: nothing to do. New parameters: state and totals are kept.
  EXPECT_TRUE(hc.update(id, s));
  s.interval_ms = 200;
  s.timeout_ms = 150;
  s.rise = 5;
  EXPECT_TRUE(hc.update(id, s));
  auto st = hc.status(id);
  EXPECT_EQ(st->health.tracker.state(), HealthState::kDown);
  EXPECT_EQ(st->health.tracker.rise(), 5u);
  EXPECT_GE(st->health.checks, checks_before);
  EXPECT_EQ(st->spec.interval_ms, 200u);
  EXPECT_TRUE(eventually([&] { return hc.status(id)->health.checks > checks_before + 1; }));
  EXPECT_FALSE(hc.update(id + 1000, s));

  EXPECT_TRUE(hc.remove(id));
  EXPECT_FALSE(hc.remove(id));
  EXPECT_FALSE(hc.status(id));
  EXPECT_TRUE(hc.statuses().empty());
  EXPECT_EQ(hc.gauge(HealthGauge::kTargets), 0u);

  // Commands are applied in order: once a target added after the removal has
  // been checked, the removal is in effect. Only the removed target produced
  // connect errors, so their count must stop moving.
  const HealthTargetId marker = hc.add(loopback_spec(AF_INET, marker_srv.port()));
  ASSERT_TRUE(eventually([&] { return hc.status(marker)->health.checks >= 1; }));
  const uint64_t errors = hc.counter(HealthCounter::kConnectErrors);
  std::this_thread::sleep_for(1s);  // several of the removed target's intervals
  EXPECT_EQ(hc.counter(HealthCounter::kConnectErrors), errors);
}

TEST(HealthChecker, ManyTargetsOneThreadConcurrently) {
  constexpr int kListening = 100;
  constexpr int kRefused = 60;
  constexpr int kSilent = 40;
  TestServer accepting(AF_INET, TestServer::Mode::kAcceptClose, kListening);
  TestServer silent(AF_INET, TestServer::Mode::kSilent, kSilent);
  ASSERT_TRUE(accepting.ok());
  ASSERT_TRUE(silent.ok());

  HealthChecker hc;
  Events ev(hc);
  const int threads_before = thread_count();
  std::vector<HealthTargetId> up_ids, down_ids;
  for (int i = 0; i < kListening; ++i) {
    HealthCheckSpec s = loopback_spec(AF_INET, accepting.port(static_cast<size_t>(i)));
    s.interval_ms = 2000;
    s.timeout_ms = 1000;
    s.rise = 1;
    up_ids.push_back(hc.add(s));
  }
  for (int i = 0; i < kRefused + kSilent; ++i) {
    HealthCheckSpec s = i < kRefused
                            ? loopback_spec(AF_INET, refused_port(AF_INET))
                            : loopback_spec(AF_INET, silent.port(static_cast<size_t>(i - kRefused)),
                                            CheckType::kHttp);
    s.interval_ms = 2000;
    s.timeout_ms = 1000;
    s.initial = HealthState::kUp;
    s.fall = 1;
    down_ids.push_back(hc.add(s));
  }
  EXPECT_EQ(thread_count(), threads_before);  // no thread per target

  // Done serially, the 40 silent targets alone would take 40 s (a 1 s timeout
  // each); concurrently every target is decided within about one interval
  // plus one timeout. The bound sits far from both.
  const std::set<HealthTargetId> want_up(up_ids.begin(), up_ids.end());
  const std::set<HealthTargetId> want_down(down_ids.begin(), down_ids.end());
  std::set<HealthTargetId> went_up, went_down;
  const auto t0 = Clk::now();
  const bool decided = eventually(
      [&] {
        ev.pump();
        for (const HealthEvent& e : ev.seen())
          (e.state == HealthState::kUp ? went_up : went_down).insert(e.id);
        ev.seen().clear();
        return std::includes(went_up.begin(), went_up.end(), want_up.begin(), want_up.end()) &&
               std::includes(went_down.begin(), went_down.end(), want_down.begin(),
                             want_down.end());
      },
      30s);
  const auto took = Clk::now() - t0;
  ASSERT_TRUE(decided) << went_up.size() << " of " << kListening << " up, " << went_down.size()
                       << " of " << kRefused + kSilent << " down";
  // Refused and silent ports can never pass a check.
  for (const HealthTargetId id : down_ids)
    EXPECT_EQ(went_up.count(id), 0u) << id;
  EXPECT_EQ(hc.gauge(HealthGauge::kTargets), size_t{kListening + kRefused + kSilent});
  // (A listening target could be down for a moment after a spurious timeout
  // on a starved machine; with rise 1 it comes back at its next check.)
  EXPECT_TRUE(eventually([&] { return hc.gauge(HealthGauge::kTargetsUp) == size_t{kListening}; }))
      << hc.gauge(HealthGauge::kTargetsUp);
  EXPECT_GE(hc.counter(HealthCounter::kTimeouts), size_t{kSilent});
  EXPECT_EQ(thread_count(), threads_before);
  std::printf(
      "200 targets decided in %lld ms\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
}

TEST(HealthChecker, StopIsIdempotentAndPrompt) {
  TestServer srv(AF_INET, TestServer::Mode::kSilent);
  ASSERT_TRUE(srv.ok());
  HealthChecker hc;
  HealthCheckSpec s = loopback_spec(AF_INET, srv.port(), CheckType::kHttp);
  s.interval_ms = 60'000;
  s.timeout_ms = 50'000;
  hc.add(s);
  hc.stop();
  hc.stop();
  EXPECT_EQ(hc.gauge(HealthGauge::kChecksInFlight), 0u);
}

}  // namespace
}  // namespace tripod
