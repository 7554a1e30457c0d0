#include "control/health/health_checker.h"

#include <net/if.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <queue>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "common/eventfd.h"
#include "common/random.h"

namespace tripod {
namespace {

constexpr uint64_t kNsPerMs = 1'000'000;
constexpr uint64_t kWakeTag = 0;  // epoll data of wake_fd_; target ids start at 1
// The status line is decided within 13 bytes; a little more lets a response
// arrive in pieces. Nothing beyond it is ever read.
constexpr size_t kRecvBytes = 64;
constexpr size_t kMaxPathBytes = 1024;
constexpr size_t kMaxHostBytes = 255;

std::string errno_text(int err) {
  char buf[128];
  // GNU strerror_r returns the message (possibly a static string, not buf).
  return strerror_r(err, buf, sizeof buf);
}

bool header_safe(const std::string& s) {
  // Spaces, controls and DEL would let a config value split the request line
  // or inject headers.
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

[[noreturn]] void invalid(const std::string& field, const std::string& why) {
  throw std::invalid_argument("health check: " + field + ": " + why);
}

socklen_t to_sockaddr(const IpAddress& a, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (a.family == Family::kIpv6) {
    sockaddr_in6 s{};
    s.sin6_family = AF_INET6;
    s.sin6_port = htons(port);
    std::memcpy(&s.sin6_addr, a.bytes, 16);
    std::memcpy(out, &s, sizeof s);
    return sizeof s;
  }
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(port);
  std::memcpy(&s.sin_addr, a.bytes, 4);
  std::memcpy(out, &s, sizeof s);
  return sizeof s;
}

std::string default_host(const HealthCheckSpec& s) {
  std::string h =
      s.addr.family == Family::kIpv6 ? "[" + s.addr.to_string() + "]" : s.addr.to_string();
  if (s.port != 80) h += ":" + std::to_string(s.port);
  return h;
}

// Printable excerpt of what a server sent, for "bad status line" errors.
std::string excerpt(const char* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n && i < 16; ++i) {
    const auto u = static_cast<unsigned char>(p[i]);
    out += (u >= 0x20 && u < 0x7f && u != '"') ? static_cast<char>(u) : '.';
  }
  return out;
}

}  // namespace

void validate(const HealthCheckSpec& s) {
  if (s.type != CheckType::kTcp && s.type != CheckType::kHttp) invalid("type", "tcp or http");
  if (s.addr.empty()) invalid("address", "an IPv4 or IPv6 address is required");
  if (s.port == 0) invalid("port", "required (1..65535)");
  if (s.interval_ms == 0) invalid("interval", "must be > 0");
  if (s.timeout_ms == 0) invalid("timeout", "must be > 0");
  if (s.timeout_ms >= s.interval_ms) invalid("timeout", "must be shorter than the interval");
  if (s.rise == 0) invalid("rise", "must be >= 1");
  if (s.fall == 0) invalid("fall", "must be >= 1");
  if (s.initial != HealthState::kDown && s.initial != HealthState::kUp)
    invalid("initial", "up or down");
  if (s.type == CheckType::kHttp) {
    if (s.path.empty() || s.path[0] != '/') invalid("path", "must start with '/'");
    if (s.path.size() > kMaxPathBytes || !header_safe(s.path))
      invalid("path", "at most 1024 bytes, no spaces or control characters");
    if (s.host.size() > kMaxHostBytes || !header_safe(s.host))
      invalid("host", "at most 255 bytes, no spaces or control characters");
    if (s.expect.lo < 100 || s.expect.hi > 599 || s.expect.lo > s.expect.hi)
      invalid("expect", "a status range within 100..599");
  }
  if (s.source.family != Family::kNone) {
    if (s.source.family != s.addr.family) invalid("source", "must be of the backend's family");
    if (s.source.empty()) invalid("source", "must be a unicast address, not unspecified");
  }
  if (s.interface.size() >= IFNAMSIZ || !header_safe(s.interface))
    invalid("interface", "not an interface name");
}

// ---- the checker thread's state ----

struct HealthChecker::Loop {
  enum class Phase : uint8_t { kIdle, kConnecting, kSending, kReceiving };

  struct Target {
    HealthCheckSpec spec;
    std::string request;  // HTTP only
    sockaddr_storage dst{};
    socklen_t dst_len = 0;
    sockaddr_storage src{};
    socklen_t src_len = 0;  // 0: no source binding
    Phase phase = Phase::kIdle;
    int fd = -1;
    uint32_t watching = 0;  // epoll events registered; 0: not in the epoll set
    size_t sent = 0;
    size_t got = 0;
    char buf[kRecvBytes];
    uint64_t scheduled_ns = 0;  // when the pending or current check was due
    uint64_t started_ns = 0;
    uint64_t timer_gen = 0;
  };

  // One live timer per target: its next check while idle, its deadline while
  // a check runs. Superseded entries stay in the heap and are skipped.
  struct Timer {
    uint64_t at;
    HealthTargetId id;
    uint64_t gen;
    bool operator>(const Timer& o) const { return at > o.at; }
  };

  enum class Fail : uint8_t {
    kTimeout,
    kConnect,
    kIo,
    kHttpStatus,
    kHttpResponse,
    kLocal,
  };

  explicit Loop(HealthChecker& c, uint64_t seed) : hc(c), rng(seed) {}

  HealthChecker& hc;
  SplitMix64 rng;
  std::unordered_map<HealthTargetId, Target> targets;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;

  void set_timer(HealthTargetId id, Target& t, uint64_t at) {
    timers.push(Timer{at, id, ++t.timer_gen});
  }

  void configure(HealthTargetId id, Target& t, const HealthCheckSpec& spec, uint64_t now) {
    t.spec = spec;
    t.dst_len = to_sockaddr(spec.addr, spec.port, &t.dst);
    t.src_len = spec.source.family == Family::kNone ? 0 : to_sockaddr(spec.source, 0, &t.src);
    t.request.clear();
    if (spec.type == CheckType::kHttp) {
      t.request = "GET " + spec.path +
                  " HTTP/1.1\r\nHost: " + (spec.host.empty() ? default_host(spec) : spec.host) +
                  "\r\nUser-Agent: tripod-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    }
    t.scheduled_ns = first_check_at(now, uint64_t{spec.interval_ms} * kNsPerMs, rng.next());
    set_timer(id, t, t.scheduled_ns);
  }

  // Closes the socket of a check without recording a result.
  void abandon(HealthTargetId id, Target& t) {
    if (t.phase == Phase::kIdle) return;
    close_socket(t);
    t.phase = Phase::kIdle;
    hc.in_flight_.fetch_sub(1, std::memory_order_relaxed);
    hc.set_in_flight(id, false);
  }

  void close_socket(Target& t) {
    if (t.fd >= 0) ::close(t.fd);  // also leaves the epoll set
    t.fd = -1;
    t.watching = 0;
  }

  bool watch(Target& t, HealthTargetId id, uint32_t events) {
    if (t.watching == events) return true;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    const int op = t.watching == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(hc.epoll_fd_, op, t.fd, &ev) != 0) return false;
    t.watching = events;
    return true;
  }

  void finish_ok(HealthTargetId id, Target& t) {
    hc.counters_.inc(HealthCounter::kChecksOk);
    finish(id, t, CheckResult{true, {}});
  }

  void finish_fail(HealthTargetId id, Target& t, Fail kind, std::string error) {
    hc.counters_.inc(HealthCounter::kChecksFailed);
    switch (kind) {
      case Fail::kTimeout:
        hc.counters_.inc(HealthCounter::kTimeouts);
        break;
      case Fail::kConnect:
        hc.counters_.inc(HealthCounter::kConnectErrors);
        break;
      case Fail::kIo:
        hc.counters_.inc(HealthCounter::kIoErrors);
        break;
      case Fail::kHttpStatus:
        hc.counters_.inc(HealthCounter::kHttpBadStatus);
        break;
      case Fail::kHttpResponse:
        hc.counters_.inc(HealthCounter::kHttpBadResponse);
        break;
      case Fail::kLocal:
        hc.counters_.inc(HealthCounter::kLocalErrors);
        break;
    }
    finish(id, t, CheckResult{false, std::move(error)});
  }

  void finish(HealthTargetId id, Target& t, const CheckResult& r) {
    close_socket(t);
    t.phase = Phase::kIdle;
    hc.in_flight_.fetch_sub(1, std::memory_order_relaxed);
    const uint64_t now = hc.now();
    hc.publish(id, r, now);
    t.scheduled_ns = next_check_at(t.scheduled_ns, uint64_t{t.spec.interval_ms} * kNsPerMs, now);
    set_timer(id, t, t.scheduled_ns);
  }

  void start_check(HealthTargetId id, Target& t, uint64_t now) {
    hc.counters_.inc(HealthCounter::kChecksStarted);
    hc.in_flight_.fetch_add(1, std::memory_order_relaxed);
    hc.set_in_flight(id, true);
    t.phase = Phase::kConnecting;
    t.started_ns = now;
    t.sent = 0;
    t.got = 0;
    set_timer(id, t, now + uint64_t{t.spec.timeout_ms} * kNsPerMs);

    const int family = t.spec.addr.family == Family::kIpv6 ? AF_INET6 : AF_INET;
    t.fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (t.fd < 0) return finish_fail(id, t, Fail::kLocal, "socket: " + errno_text(errno));
    // Abort on close (RST): the checker never collects TIME_WAIT sockets, which
    // at thousands of checks a minute would pin ports and memory (HAProxy
    // closes its checks the same way).
    const linger lg{1, 0};
    ::setsockopt(t.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (!t.spec.interface.empty() &&
        ::setsockopt(t.fd, SOL_SOCKET, SO_BINDTODEVICE, t.spec.interface.data(),
                     static_cast<socklen_t>(t.spec.interface.size())) != 0) {
      return finish_fail(id, t, Fail::kLocal,
                         "SO_BINDTODEVICE " + t.spec.interface + ": " + errno_text(errno));
    }
    if (t.src_len != 0) {
      // Pick the source port at connect(), not bind(): otherwise each bound
      // socket reserves a port for every destination.
      const int one = 1;
      ::setsockopt(t.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      if (::bind(t.fd, reinterpret_cast<const sockaddr*>(&t.src), t.src_len) != 0) {
        return finish_fail(id, t, Fail::kLocal,
                           "bind " + t.spec.source.to_string() + ": " + errno_text(errno));
      }
    }
    if (::connect(t.fd, reinterpret_cast<const sockaddr*>(&t.dst), t.dst_len) == 0)
      return connected(id, t);
    if (errno != EINPROGRESS)
      return finish_fail(id, t, Fail::kConnect, "connect: " + errno_text(errno));
    if (!watch(t, id, EPOLLOUT))
      return finish_fail(id, t, Fail::kLocal, "epoll_ctl: " + errno_text(errno));
  }

  void connected(HealthTargetId id, Target& t) {
    if (t.spec.type == CheckType::kTcp) return finish_ok(id, t);
    t.phase = Phase::kSending;
    send_request(id, t);
  }

  void send_request(HealthTargetId id, Target& t) {
    while (t.sent < t.request.size()) {
      const ssize_t n =
          ::send(t.fd, t.request.data() + t.sent, t.request.size() - t.sent, MSG_NOSIGNAL);
      if (n >= 0) {
        t.sent += static_cast<size_t>(n);
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!watch(t, id, EPOLLOUT))
          return finish_fail(id, t, Fail::kLocal, "epoll_ctl: " + errno_text(errno));
        return;
      } else {
        return finish_fail(id, t, Fail::kIo, "send: " + errno_text(errno));
      }
    }
    t.phase = Phase::kReceiving;
    if (!watch(t, id, EPOLLIN))
      return finish_fail(id, t, Fail::kLocal, "epoll_ctl: " + errno_text(errno));
    receive(id, t);  // the answer may be there already
  }

  void receive(HealthTargetId id, Target& t) {
    for (;;) {
      const ssize_t n = ::recv(t.fd, t.buf + t.got, sizeof t.buf - t.got, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return finish_fail(id, t, Fail::kIo, "recv: " + errno_text(errno));
      }
      if (n == 0) {
        return finish_fail(id, t, Fail::kHttpResponse,
                           t.got == 0 ? "http: connection closed without a response"
                                      : "http: connection closed inside the status line");
      }
      t.got += static_cast<size_t>(n);
      const HttpStatus st = parse_http_status_line(std::string_view(t.buf, t.got));
      if (st.result == HttpParse::kOk) {
        if (t.spec.expect.contains(st.code)) return finish_ok(id, t);
        return finish_fail(id, t, Fail::kHttpStatus, "http: status " + std::to_string(st.code));
      }
      if (st.result == HttpParse::kInvalid || t.got == sizeof t.buf) {
        return finish_fail(id, t, Fail::kHttpResponse,
                           "http: bad status line \"" + excerpt(t.buf, t.got) + "\"");
      }
    }
  }

  void on_io(HealthTargetId id, uint32_t events) {
    const auto it = targets.find(id);
    if (it == targets.end()) return;
    Target& t = it->second;
    if (t.phase == Phase::kIdle || t.fd < 0) return;
    switch (t.phase) {
      case Phase::kConnecting: {
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(t.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) return finish_fail(id, t, Fail::kConnect, "connect: " + errno_text(err));
        if ((events & EPOLLOUT) == 0) return;
        return connected(id, t);
      }
      case Phase::kSending:
        return send_request(id, t);
      case Phase::kReceiving:
        return receive(id, t);
      case Phase::kIdle:
        return;
    }
  }

  void on_timer(const Timer& tm, uint64_t now) {
    const auto it = targets.find(tm.id);
    if (it == targets.end() || it->second.timer_gen != tm.gen) return;  // superseded
    Target& t = it->second;
    if (t.phase == Phase::kIdle) return start_check(tm.id, t, now);
    const char* what = t.phase == Phase::kConnecting ? "connect"
                       : t.phase == Phase::kSending  ? "send"
                                                     : "response";
    finish_fail(tm.id, t, Fail::kTimeout,
                "timeout after " + std::to_string(t.spec.timeout_ms) + " ms (" + what + ")");
  }

  void fire_timers() {
    for (;;) {
      if (timers.empty()) return;
      const uint64_t now = hc.now();
      if (timers.top().at > now) return;
      const Timer tm = timers.top();
      timers.pop();
      on_timer(tm, now);
    }
  }

  int wait_ms() {
    while (!timers.empty()) {
      const Timer& tm = timers.top();
      const auto it = targets.find(tm.id);
      if (it != targets.end() && it->second.timer_gen == tm.gen) break;
      timers.pop();  // drop superseded entries so they do not cause wakeups
    }
    if (timers.empty()) return -1;
    const uint64_t now = hc.now();
    const uint64_t at = timers.top().at;
    if (at <= now) return 0;
    const uint64_t ms = (at - now + kNsPerMs - 1) / kNsPerMs;  // never wake early
    return static_cast<int>(std::min<uint64_t>(ms, std::numeric_limits<int>::max()));
  }

  void apply(Command& c) {
    const uint64_t now = hc.now();
    switch (c.kind) {
      case Command::kAdd: {
        Target& t = targets[c.id];
        configure(c.id, t, c.spec, now);
        return;
      }
      case Command::kUpdate: {
        const auto it = targets.find(c.id);
        if (it == targets.end()) return;
        abandon(c.id, it->second);
        configure(c.id, it->second, c.spec, now);
        return;
      }
      case Command::kRemove: {
        const auto it = targets.find(c.id);
        if (it == targets.end()) return;
        abandon(c.id, it->second);
        targets.erase(it);
        return;
      }
    }
  }

  void close_all() {
    for (auto& [id, t] : targets)
      abandon(id, t);
  }
};

// ---- public API ----

HealthChecker::HealthChecker(const Options& opts)
    : clock_(opts.clock != nullptr ? opts.clock : &default_clock_), opts_(opts) {
  if (opts_.max_events == 0) opts_.max_events = 1;
  uint64_t seed = opts.seed;
  if (seed == 0) secure_random_bytes(&seed, sizeof seed);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  events_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (epoll_fd_ < 0 || wake_fd_ < 0 || events_fd_ < 0 ||
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    const int err = errno;
    for (const int fd : {epoll_fd_, wake_fd_, events_fd_})
      if (fd >= 0) ::close(fd);
    throw std::system_error(err, std::generic_category(), "health checker setup");
  }
  loop_ = std::make_unique<Loop>(*this, seed);
  thread_ = std::thread([this] { run(); });
}

HealthChecker::~HealthChecker() {
  stop();
  for (const int fd : {epoll_fd_, wake_fd_, events_fd_})
    ::close(fd);
}

void HealthChecker::stop() {
  stopping_.store(true, std::memory_order_relaxed);
  wake();
  if (thread_.joinable()) thread_.join();
}

void HealthChecker::wake() {
  signal_eventfd(wake_fd_);
}

void HealthChecker::run() {
  epoll_event evs[128];
  while (!stopping_.load(std::memory_order_relaxed)) {
    const int n = epoll_wait(epoll_fd_, evs, 128, loop_->wait_ms());
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.u64 == kWakeTag) {
        clear_eventfd(wake_fd_);
      } else {
        loop_->on_io(evs[i].data.u64, evs[i].events);
      }
    }
    std::vector<Command> cmds;
    {
      std::lock_guard lk(mu_);
      cmds.swap(commands_);
    }
    for (Command& c : cmds)
      loop_->apply(c);
    loop_->fire_timers();
  }
  loop_->close_all();
}

HealthTargetId HealthChecker::add(const HealthCheckSpec& spec) {
  validate(spec);
  HealthTargetId id;
  {
    std::lock_guard lk(mu_);
    id = next_id_++;
    Shared& s = shared_[id];
    s.spec = spec;
    s.health = TargetHealth(spec.rise, spec.fall, spec.initial);
    commands_.push_back(Command{Command::kAdd, id, spec});
  }
  wake();
  return id;
}

bool HealthChecker::update(HealthTargetId id, const HealthCheckSpec& spec) {
  validate(spec);
  {
    std::lock_guard lk(mu_);
    const auto it = shared_.find(id);
    if (it == shared_.end()) return false;
    if (it->second.spec == spec) return true;
    it->second.spec = spec;
    it->second.health.tracker.set_thresholds(spec.rise, spec.fall);
    commands_.push_back(Command{Command::kUpdate, id, spec});
  }
  wake();
  return true;
}

bool HealthChecker::remove(HealthTargetId id) {
  {
    std::lock_guard lk(mu_);
    if (shared_.erase(id) == 0) return false;
    commands_.push_back(Command{Command::kRemove, id, {}});
  }
  wake();
  return true;
}

std::optional<HealthTargetStatus> HealthChecker::status(HealthTargetId id) const {
  std::lock_guard lk(mu_);
  const auto it = shared_.find(id);
  if (it == shared_.end()) return std::nullopt;
  return HealthTargetStatus{id, it->second.spec, it->second.health, it->second.in_flight};
}

std::vector<HealthTargetStatus> HealthChecker::statuses() const {
  std::vector<HealthTargetStatus> out;
  {
    std::lock_guard lk(mu_);
    out.reserve(shared_.size());
    for (const auto& [id, s] : shared_)
      out.push_back(HealthTargetStatus{id, s.spec, s.health, s.in_flight});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::vector<HealthEvent> HealthChecker::drain_events() {
  // Reset the fd before taking the queue: an event queued in between leaves
  // the fd readable, so it is never missed (at worst one empty drain).
  clear_eventfd(events_fd_);
  std::lock_guard lk(mu_);
  std::vector<HealthEvent> out(std::make_move_iterator(events_.begin()),
                               std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

uint64_t HealthChecker::gauge(HealthGauge g) const {
  switch (g) {
    case HealthGauge::kChecksInFlight:
      return in_flight_.load(std::memory_order_relaxed);
    case HealthGauge::kTargets: {
      std::lock_guard lk(mu_);
      return shared_.size();
    }
    case HealthGauge::kTargetsUp: {
      std::lock_guard lk(mu_);
      return static_cast<uint64_t>(std::count_if(shared_.begin(), shared_.end(), [](const auto& e) {
        return e.second.health.tracker.state() == HealthState::kUp;
      }));
    }
    case HealthGauge::kCount:
      break;
  }
  return 0;
}

void HealthChecker::set_in_flight(HealthTargetId id, bool v) {
  std::lock_guard lk(mu_);
  const auto it = shared_.find(id);
  if (it != shared_.end()) it->second.in_flight = v;
}

void HealthChecker::publish(HealthTargetId id, const CheckResult& r, uint64_t now_ns) {
  bool changed = false;
  HealthState state = HealthState::kDown;
  bool dropped = false;
  {
    std::lock_guard lk(mu_);
    const auto it = shared_.find(id);
    if (it == shared_.end()) return;  // removed while its check ran
    Shared& s = it->second;
    s.in_flight = false;
    changed = s.health.apply(r, now_ns);
    if (changed) {
      state = s.health.tracker.state();
      HealthEvent ev;
      ev.id = id;
      ev.name = s.spec.name;
      ev.state = state;
      ev.reason = r.ok ? "ok" : r.error;
      ev.consecutive =
          r.ok ? s.health.tracker.consecutive_ok() : s.health.tracker.consecutive_failed();
      ev.at_ns = now_ns;
      if (events_.size() >= opts_.max_events) {
        // The oldest goes: the newest state is what the daemon must act on,
        // and statuses() lets it resynchronise after a loss.
        events_.pop_front();
        dropped = true;
      }
      events_.push_back(std::move(ev));
    }
  }
  if (!changed) return;
  if (dropped) counters_.inc(HealthCounter::kEventsDropped);
  counters_.inc(state == HealthState::kUp ? HealthCounter::kWentUp : HealthCounter::kWentDown);
  signal_eventfd(events_fd_);
}

}  // namespace tripod
