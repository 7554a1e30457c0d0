#include "route/netns_util.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

extern char** environ;

namespace tripod::route::testing {

int run(const std::vector<std::string>& argv, int timeout_ms) {
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // stdout to /dev/null (`ip -V` chatter); stderr stays, to explain failures.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "timeout: killing %s (pid %d)\n", args[0], pid);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::string netns_skip_reason() {
  if (geteuid() != 0) return "needs root (network namespaces, veth, raw sockets)";
  if (run({"ip", "-V"}) != 0) return "iproute2 `ip` not found";
  if (access("/proc/thread-self/ns/net", R_OK) != 0) return "no /proc/thread-self/ns/net";
  return "";
}

NetNs::NetNs(std::string name) : name_(std::move(name)) {
  ok_ = run({"ip", "netns", "add", name_}) == 0;
}

NetNs::~NetNs() {
  if (ok_) run({"ip", "netns", "del", name_});
}

int NetNs::ip(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"ip", "-n", name_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

NsEnter::NsEnter(const NetNs& ns) {
  saved_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int target = open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC);
  if (saved_ >= 0 && target >= 0) ok_ = setns(target, CLONE_NEWNET) == 0;
  if (target >= 0) close(target);
}

NsEnter::~NsEnter() {
  if (ok_ && setns(saved_, CLONE_NEWNET) != 0) {
    // Staying in a test namespace would poison every later test.
    std::perror("setns restore");
    std::abort();
  }
  if (saved_ >= 0) close(saved_);
}

}  // namespace tripod::route::testing
