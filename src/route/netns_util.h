// Network namespace helpers for the netns tests: run `ip` commands with a
// bounded wait, own named namespaces (removed in the destructor, so also when
// an assertion fails), and enter one on the calling thread.
#pragma once

#include <string>
#include <vector>

namespace tripod::route::testing {

// Runs argv[0] from PATH (no shell). Returns the exit status, or -1 if it
// could not start, died from a signal or exceeded timeout_ms (then it is
// killed: only this child, by its pid).
int run(const std::vector<std::string>& argv, int timeout_ms = 10000);

// Empty if the netns tests can run here, else why not (for GTEST_SKIP).
std::string netns_skip_reason();

// `ip netns add NAME` now, `ip netns del NAME` on destruction.
class NetNs {
 public:
  explicit NetNs(std::string name);
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  // Runs `ip -n NAME args...`; returns the exit status.
  int ip(const std::vector<std::string>& args) const;

 private:
  std::string name_;
  bool ok_ = false;
};

// Moves the calling thread into `ns` (setns) and back on destruction.
// Sockets opened meanwhile stay in `ns` for their whole life.
class NsEnter {
 public:
  explicit NsEnter(const NetNs& ns);
  ~NsEnter();
  NsEnter(const NsEnter&) = delete;
  NsEnter& operator=(const NsEnter&) = delete;
  bool ok() const { return ok_; }

 private:
  int saved_ = -1;
  bool ok_ = false;
};

}  // namespace tripod::route::testing
