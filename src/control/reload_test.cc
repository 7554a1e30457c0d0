#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "control/config.h"

namespace tripod {
namespace {

// A running configuration; each case edits one piece of its text.
const std::string kRunning =
    "interfaces: [{name: eth0, queues: 2}]\n"
    "max_connections: 1000\n"
    "secrets: {lb_key: 00112233445566778899aabbccddeeff}\n"
    "logging: {level: info}\n"
    "snat: {addresses: [198.51.100.1]}\n"
    "firewall: {rules: [allow in tcp]}\n"
    "timeouts: {udp: 30s}\n"
    "vips:\n"
    "  - {address: 192.0.2.1, port: 80, backends: [{address: 10.0.0.1}, {address: 10.0.0.2}],"
    " health_check: {type: tcp}}\n"
    "  - {address: 192.0.2.2, port: 80, backends: [{address: 10.0.0.3}]}\n";

std::string edit(const std::string& from, const std::string& to) {
  std::string s = kRunning;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

ReloadPlan plan(const std::string& next_text) {
  const TripodConfig running = load_config_string(kRunning, "running.yaml");
  const TripodConfig next = load_config_string(next_text, "next.yaml");
  return plan_reload(running, next);
}

TEST(ReloadTest, SameFileIsEmpty) {
  // Also with table_key and synproxy_key drawn at random on both loads.
  const ReloadPlan p = plan(kRunning);
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.ok());
}

TEST(ReloadTest, VipAdded) {
  const ReloadPlan p =
      plan(kRunning + "  - {address: 192.0.2.3, port: 443, backends: [{address: 10.0.0.9}]}\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.vips_added, (std::vector<size_t>{2}));
  EXPECT_TRUE(p.vips_removed.empty());
  EXPECT_TRUE(p.pools_changed.empty());
}

TEST(ReloadTest, VipRemoved) {
  const ReloadPlan p =
      plan(edit("  - {address: 192.0.2.2, port: 80, backends: [{address: 10.0.0.3}]}\n", ""));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.vips_removed, (std::vector<size_t>{1}));
  EXPECT_TRUE(p.vips_added.empty());
}

TEST(ReloadTest, PortChangeIsRemoveAndAdd) {
  const ReloadPlan p = plan(edit("address: 192.0.2.2, port: 80", "address: 192.0.2.2, port: 8080"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.vips_added, (std::vector<size_t>{1}));
  EXPECT_EQ(p.vips_removed, (std::vector<size_t>{1}));
}

TEST(ReloadTest, PoolChanges) {
  for (const char* to : {"{address: 10.0.0.1}, {address: 10.0.0.4}",             // backend replaced
                         "{address: 10.0.0.1, weight: 0}, {address: 10.0.0.2}",  // drained
                         "{address: 10.0.0.1}"}) {                               // removed
    const ReloadPlan p = plan(edit("{address: 10.0.0.1}, {address: 10.0.0.2}", to));
    ASSERT_TRUE(p.ok()) << to;
    ASSERT_EQ(p.pools_changed.size(), 1u) << to;
    EXPECT_EQ(p.pools_changed[0].running, 0u);
    EXPECT_EQ(p.pools_changed[0].next, 0u);
    EXPECT_TRUE(p.vips_added.empty() && p.vips_removed.empty());
  }
}

TEST(ReloadTest, VipsMatchedByKeyNotPosition) {
  // Swapping the two VIPs changes nothing.
  const std::string a =
      "  - {address: 192.0.2.1, port: 80, backends: [{address: 10.0.0.1}, {address: 10.0.0.2}],"
      " health_check: {type: tcp}}\n";
  const std::string b = "  - {address: 192.0.2.2, port: 80, backends: [{address: 10.0.0.3}]}\n";
  const ReloadPlan p = plan(edit(a + b, b + a));
  EXPECT_TRUE(p.empty());
}

TEST(ReloadTest, OptionsAndHealthChecksAreLive) {
  ReloadPlan p =
      plan(edit("address: 192.0.2.2, port: 80,", "address: 192.0.2.2, port: 80, mss_clamp: 1400,"));
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p.vip_options_changed.size(), 1u);
  EXPECT_EQ(p.vip_options_changed[0].next, 1u);

  p = plan(edit("health_check: {type: tcp}", "health_check: {type: tcp, fall: 5}"));
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p.health_checks_changed.size(), 1u);
  EXPECT_TRUE(p.pools_changed.empty());
}

TEST(ReloadTest, FirewallTimeoutsLoggingAreLive) {
  ReloadPlan p = plan(edit("rules: [allow in tcp]", "rules: [allow in tcp, deny]"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.firewall_changed);
  EXPECT_FALSE(p.timeouts_changed);

  p = plan(edit("udp: 30s", "udp: 60s"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.timeouts_changed);
  EXPECT_FALSE(p.firewall_changed);

  p = plan(edit("level: info", "level: debug"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.logging_changed);

  const TripodConfig r = load_config_string(kRunning, "r.yaml");
  const TripodConfig n =
      load_config_string(edit("rules: [allow in tcp]", "rules: [deny]"), "n.yaml");
  const auto lines = plan_reload(r, n).describe(r, n);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("applies to new connections"), std::string::npos) << lines[0];
}

struct RestartCase {
  const char* name;
  const char* from;
  const char* to;
  const char* field;  // the error starts with it
};

void PrintTo(const RestartCase& c, std::ostream* os) {
  *os << c.name;
}

class ReloadRestartTest : public testing::TestWithParam<RestartCase> {};

TEST_P(ReloadRestartTest, IsRefused) {
  const RestartCase& c = GetParam();
  const ReloadPlan p = plan(edit(c.from, c.to));
  ASSERT_FALSE(p.ok());
  ASSERT_EQ(p.errors.size(), 1u) << p.errors[0];
  EXPECT_EQ(p.errors[0].rfind(c.field, 0), 0u) << p.errors[0];
  EXPECT_NE(p.errors[0].find("needs a restart"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ReloadRestartTest,
    testing::Values(
        RestartCase{"interfaces", "queues: 2}", "queues: 2, xdp_mode: native}", "interfaces"},
        RestartCase{"workers", "queues: 2}]\n", "queues: 2}]\nworkers: 1\n", "workers"},
        RestartCase{"max_connections", "max_connections: 1000", "max_connections: 2000",
                    "max_connections"},
        RestartCase{"lb_key_changed", "00112233445566778899aabbccddeeff",
                    "00112233445566778899aabbccddeef0", "secrets.lb_key"},
        RestartCase{"lb_key_dropped", "secrets: {lb_key: 00112233445566778899aabbccddeeff}\n", "",
                    "secrets.lb_key"},
        RestartCase{"table_key_given", "secrets: {",
                    "secrets: {table_key: 0123456789abcdef0123456789abcdef, ", "secrets.table_key"},
        RestartCase{"snat", "198.51.100.1]", "198.51.100.1, 198.51.100.2]", "snat"},
        RestartCase{"status_socket", "max_connections: 1000\n",
                    "max_connections: 1000\nstatus_socket: /tmp/t.sock\n", "status_socket"},
        RestartCase{"mode", "address: 10.0.0.3}]",
                    "address: 10.0.0.3, mac: 02:00:00:00:00:03}], mode: dsr",
                    "vips[1] 192.0.2.2:80/tcp mode"}),
    [](const testing::TestParamInfo<RestartCase>& i) { return i.param.name; });

// Hold queues and the agents' ack timing are set up at start.
TEST(ReloadTest, ReplicationModeNeedsARestart) {
  const std::string cluster =
      "cluster:\n"
      "  node_id: 1\n"
      "  key: \"abababababababababababababababababababababababababababababababab\"\n"
      "  nodes: [{id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}]\n";
  const TripodConfig running = load_config_string(kRunning + cluster, "r.yaml");
  // The one error a reload with `options` on VIP 1 (or a VIP added) gets.
  auto error_of = [&](const std::string& options, bool add) {
    std::string next = kRunning + cluster;
    if (add) {
      next.replace(next.find("cluster:"), 0,
                   "  - {address: 192.0.2.3, port: 80, " + options + ", backends: []}\n");
    } else {
      next.replace(next.find("port: 80, backends: [{address: 10.0.0.3}]"), 41,
                   "port: 80, " + options + ", backends: [{address: 10.0.0.3}]");
    }
    const ReloadPlan p = plan_reload(running, load_config_string(next, "n.yaml"));
    EXPECT_EQ(p.errors.size(), 1u) << options;
    return p.errors.empty() ? std::string() : p.errors[0];
  };
  EXPECT_EQ(error_of("replication: sync", false)
                .rfind("vips[1] 192.0.2.2:80/tcp replication: async -> sync", 0),
            0u);
  EXPECT_EQ(error_of("replication: off", false)
                .rfind("vips[1] 192.0.2.2:80/tcp replication: async -> off", 0),
            0u);
  EXPECT_EQ(error_of("checkpoint_interval: 20ms", false)
                .rfind("vips[1] 192.0.2.2:80/tcp replication: async -> async every 20 ms", 0),
            0u);
  EXPECT_NE(error_of("checkpoint_interval: 30ms", true).find("30 ms, and no running VIP has it"),
            std::string::npos);
  EXPECT_NE(error_of("replication: sync", true).find("no running VIP has it"), std::string::npos);
}

TEST(ReloadTest, RefusedPlanStillListsLiveChanges) {
  // The daemon refuses the whole reload; the plan still says what else changed.
  std::string next = edit("max_connections: 1000", "max_connections: 5");
  next += "  - {address: 192.0.2.3, port: 443, backends: []}\n";
  const ReloadPlan p = plan(next);
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.vips_added.size(), 1u);
  const TripodConfig r = load_config_string(kRunning, "r.yaml");
  const TripodConfig n = load_config_string(next, "n.yaml");
  const auto lines = p.describe(r, n);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("refused: max_connections", 0), 0u) << lines[0];
}

}  // namespace
}  // namespace tripod
