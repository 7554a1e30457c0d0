#include "control/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <ostream>
#include <string>

namespace tripod {
namespace {

const std::string kDir = TRIPOD_CONFIG_DIR;

TEST(ConfigTest, ExampleLoads) {
  const TripodConfig c = load_config(kDir + "/tripod.example.yaml");
  ASSERT_EQ(c.interfaces.size(), 2u);
  EXPECT_EQ(c.interfaces[0].name, "eth0");
  EXPECT_EQ(c.interfaces[0].queues, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(c.interfaces[1].queues, (std::vector<uint32_t>{0}));
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.effective_workers(), 3u);
  EXPECT_EQ(c.gateway.max_connections, 262144u);
  EXPECT_EQ(c.logging.format, LogFormat::kText);
  EXPECT_FALSE(c.generated.table_key || c.generated.lb_key || c.generated.synproxy_key);
  // The hex string is SipHash's 16 key bytes: k0, k1 little-endian.
  EXPECT_EQ(c.gateway.table_hash_key.k0, 0x0706050403020100u);
  EXPECT_EQ(c.gateway.table_hash_key.k1, 0x0f0e0d0c0b0a0908u);

  EXPECT_EQ(c.gateway.firewall.acl.rules.size(), 7u);
  EXPECT_EQ(c.gateway.firewall.acl.default_action, FwAction::kDeny);
  EXPECT_EQ(c.gateway.firewall.timeouts.tcp_established, 432000u);
  EXPECT_EQ(c.gateway.firewall.timeouts.tcp_fin_wait, 120u);
  EXPECT_EQ(c.gateway.firewall.timeouts.generic, 600u);

  ASSERT_EQ(c.gateway.snat.addresses.size(), 3u);
  EXPECT_EQ(c.gateway.snat.addresses[2].family, Family::kIpv6);
  EXPECT_EQ(c.gateway.snat.port_lo, 1024);
  EXPECT_EQ(c.gateway.egress.sources, (std::vector<std::string>{"10.0.0.0/8"}));

  ASSERT_EQ(c.gateway.vips.size(), 3u);
  ASSERT_EQ(c.vips.size(), 3u);
  const GatewayVipConfig& web = c.gateway.vips[0];
  EXPECT_EQ(vip_label(web.key), "192.0.2.10:80/tcp");
  EXPECT_EQ(web.mss_clamp, 1400);
  EXPECT_TRUE(web.synproxy);
  EXPECT_EQ(web.synproxy_options.mss, 1460);
  ASSERT_EQ(web.pool.backends.size(), 2u);
  EXPECT_EQ(web.pool.backends[0].port, 8080);
  EXPECT_EQ(web.pool.backends[0].weight, 100u);
  EXPECT_EQ(c.vips[0].name, "web");
  EXPECT_EQ(c.vips[0].health_check.type, HealthCheckType::kHttp);
  EXPECT_EQ(c.vips[0].health_check.http_path, "/healthz");
  EXPECT_EQ(c.vips[0].health_check.timeout_ms, 1000u);

  EXPECT_EQ(vip_label(c.gateway.vips[1].key), "[2001:db8::10]:443/tcp");
  EXPECT_EQ(c.gateway.vips[1].pool.backends[0].weight, 1u);
  EXPECT_EQ(c.vips[1].health_check.type, HealthCheckType::kTcp);

  const GatewayVipConfig& dns = c.gateway.vips[2];
  EXPECT_EQ(dns.mode, VipMode::kDsr);
  EXPECT_EQ(dns.key.proto, kProtoUdp);
  EXPECT_EQ(dns.pool.backends[1].mac[5], 0x02);
  EXPECT_EQ(dns.pool.backends[1].weight, 2u);
  EXPECT_EQ(c.vips[2].health_check.type, HealthCheckType::kNone);
}

TEST(ConfigTest, MinimalLoadsWithDefaults) {
  const TripodConfig c = load_config(kDir + "/minimal.yaml");
  EXPECT_EQ(c.file, kDir + "/minimal.yaml");
  ASSERT_EQ(c.interfaces.size(), 1u);
  EXPECT_EQ(c.interfaces[0].queues, (std::vector<uint32_t>{0}));
  EXPECT_EQ(c.interfaces[0].xdp_mode, XdpMode::kAuto);
  EXPECT_EQ(c.effective_workers(), 1u);
  EXPECT_TRUE(c.generated.table_key && c.generated.lb_key && c.generated.synproxy_key);
  EXPECT_EQ(c.gateway.max_connections, GatewayConfig{}.max_connections);
  const FwTimeouts netfilter;
  EXPECT_EQ(c.gateway.firewall.timeouts.tcp_established, netfilter.tcp_established);
  EXPECT_EQ(c.gateway.firewall.timeouts.udp, netfilter.udp);
  ASSERT_EQ(c.gateway.vips.size(), 1u);
  EXPECT_EQ(c.gateway.vips[0].key.proto, kProtoTcp);
  EXPECT_EQ(c.gateway.vips[0].mode, VipMode::kFullNat);
  EXPECT_FALSE(c.gateway.vips[0].synproxy);
  EXPECT_EQ(c.vips[0].name, "192.0.2.10:80/tcp");
  EXPECT_EQ(c.gateway.egress.sources.size(), 0u);
}

TEST(ConfigTest, RandomSecretsDiffer) {
  const TripodConfig a = load_config(kDir + "/minimal.yaml");
  const TripodConfig b = load_config(kDir + "/minimal.yaml");
  EXPECT_NE(a.gateway.lb_hash_key.k0, b.gateway.lb_hash_key.k0);
  // Without a cluster, which worker owns a flow is secret too.
  EXPECT_NE(a.gateway.cluster.slot_key.k0, b.gateway.cluster.slot_key.k0);
}

TEST(ConfigTest, MissingFileIsAConfigError) {
  try {
    load_config("/nonexistent/tripod.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "/nonexistent/tripod.yaml");
    EXPECT_EQ(e.line(), 0);
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

// Lines 1-2 of most cases; the case's own text starts on line 3.
const char kBase[] =
    "interfaces: [{name: eth0}]\n"
    "snat: {addresses: [198.51.100.1]}\n";

struct ErrorCase {
  const char* name;
  std::string text;
  int line;
  int col;
  const char* path;
  const char* reason;  // a substring of the reason
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

std::string base(const char* rest) {
  return std::string(kBase) + rest;
}

const char kVip[] =
    "vips:\n"                       // 3
    "  - address: 192.0.2.1\n"      // 4
    "    port: 80\n"                // 5
    "    backends:\n"               // 6
    "      - address: 10.0.0.1\n";  // 7

std::vector<ErrorCase> error_cases() {
  return {
      {"weight_not_integer", base(kVip) + "        weight: heavy\n", 8, 17,
       "vips[0].backends[0].weight", "must be an integer in 0..65535, got \"heavy\""},
      {"weight_too_big", base(kVip) + "        weight: 65536\n", 8, 17,
       "vips[0].backends[0].weight", "0..65535"},
      {"unknown_field_hint", base("vips:\n  - adress: 192.0.2.1\n    port: 80\n    backends: []\n"),
       4, 5, "vips[0].adress", "unknown field (did you mean \"address\"?)"},
      {"unknown_optional_field_hint", base(kVip) + "        wieght: 2\n", 8, 9,
       "vips[0].backends[0].wieght", "did you mean \"weight\"?"},
      {"unknown_field_no_hint", base("colour: blue\n"), 3, 1, "colour", "unknown field"},
      {"required_field", base("vips:\n  - address: 192.0.2.1\n    backends: []\n"), 4, 5,
       "vips[0].port", "is required"},
      {"interfaces_required", "vips: []\n", 1, 1, "interfaces", "is required"},
      {"duplicate_field", base("workers: 1\nworkers: 1\n"), 4, 1, "workers",
       "duplicate field \"workers\" (first at line 3)"},
      {"duplicate_vip",
       base("vips:\n"
            "  - {address: 192.0.2.1, port: 80, backends: []}\n"
            "  - {address: 192.0.2.1, port: 81, backends: []}\n"
            "  - {address: 192.0.2.1, port: 80, backends: []}\n"),
       6, 5, "vips[2]", "duplicates vips[0] 192.0.2.1:80/tcp (line 4)"},
      {"duplicate_name",
       base("vips:\n"
            "  - {name: web, address: 192.0.2.1, port: 80, backends: []}\n"
            "  - {name: web, address: 192.0.2.1, port: 81, backends: []}\n"),
       5, 12, "vips[1].name", "name \"web\" is also vips[0]'s"},
      {"udp_vip_is_distinct_but_duplicate_backend",
       base("vips:\n"
            "  - {address: 192.0.2.1, port: 80, backends: []}\n"
            "  - address: 192.0.2.1\n"
            "    protocol: udp\n"
            "    port: 80\n"
            "    backends: [{address: 10.0.0.1}, {address: 10.0.0.2}, {address: 10.0.0.1}]\n"),
       8, 58, "vips[1].backends[2]", "duplicates vips[1].backends[0]"},
      {"backend_family",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    backends:\n"
            "      - address: 2001:db8::1\n"),
       7, 18, "vips[0].backends[0].address", "IPv6 backend for an IPv4 VIP"},
      {"bad_address", base("vips:\n  - address: 192.0.2.300\n    port: 80\n    backends: []\n"), 4,
       14, "vips[0].address", "must be an IPv4 or IPv6 address, got \"192.0.2.300\""},
      {"unspecified_address", base("vips:\n  - address: 0.0.0.0\n    port: 80\n    backends: []\n"),
       4, 14, "vips[0].address", "unspecified"},
      {"dsr_without_mac",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    mode: dsr\n    backends:\n"
            "      - address: 10.0.0.1\n"),
       8, 9, "vips[0].backends[0].mac", "is required for a dsr VIP"},
      {"dsr_port_differs",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    mode: dsr\n    backends:\n"
            "      - address: 10.0.0.1\n        mac: 02:00:00:00:00:01\n        port: 8080\n"),
       10, 15, "vips[0].backends[0].port", "dsr backend receives the VIP's port 80"},
      {"mac_on_fullnat", base(kVip) + "        mac: 02:00:00:00:00:01\n", 8, 14,
       "vips[0].backends[0].mac", "only dsr VIPs"},
      {"bad_mac",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    mode: dsr\n    backends:\n"
            "      - address: 10.0.0.1\n        mac: 02:00:00:00:00\n"),
       9, 14, "vips[0].backends[0].mac", "must be a MAC address"},
      {"bad_mode",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    mode: nat\n    backends: []\n"), 6,
       11, "vips[0].mode", "must be one of fullnat, dsr; got \"nat\""},
      {"synproxy_udp",
       base("vips:\n  - address: 192.0.2.1\n    protocol: udp\n    port: 53\n    synproxy: true\n"
            "    backends: []\n"),
       7, 15, "vips[0].synproxy", "needs a tcp VIP"},
      {"synproxy_dsr",
       base(
           "vips:\n  - address: 192.0.2.1\n    port: 80\n    mode: dsr\n    synproxy: {mss: 1400}\n"
           "    backends: []\n"),
       7, 15, "vips[0].synproxy", "needs a fullnat VIP"},
      {"synproxy_ecn_without_timestamps",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n"
            "    synproxy: {timestamps: false, ecn: true}\n    backends: []\n"),
       6, 40, "vips[0].synproxy.ecn", "needs timestamps"},
      {"mss_clamp_small",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    mss_clamp: 100\n"
            "    backends: []\n"),
       6, 16, "vips[0].mss_clamp", "must be 0 (off) or 536..65495"},
      {"fullnat_needs_snat_family",
       base("vips:\n  - address: 2001:db8::1\n    port: 80\n    backends: []\n"), 2, 7, "snat",
       "needs an IPv6 address in snat.addresses"},
      {"egress_any", base("egress:\n  sources: [any]\n  addresses: [203.0.113.1]\n"), 4, 13,
       "egress.sources[0]", "would make every destination internal"},
      {"egress_covers_mapped",
       base("egress:\n  sources: [\"::/0\"]\n  addresses: [\"2001:db8::1\"]\n"), 4, 13,
       "egress.sources[0]", "IPv4-mapped"},
      {"egress_shares_snat",
       base("egress:\n  sources: [10.0.0.0/8]\n  addresses: [198.51.100.1]\n"), 0, 0,
       "egress.addresses", "is in snat.addresses too"},
      {"vip_on_snat_port_range",
       base("vips:\n  - address: 198.51.100.1\n    port: 8443\n    backends: []\n"), 4, 5,
       "vips[0]", "on a SNAT address inside the SNAT port range"},
      {"fullnat_without_snat",
       "interfaces: [{name: eth0}]\nvips:\n  - address: 192.0.2.1\n    port: 80\n    backends: "
       "[]\n",
       3, 5, "vips[0]", "needs an IPv4 address in snat.addresses"},
      {"bad_rule",
       base("firewall:\n  rules:\n    - allow in tcp to any port 80\n"
            "    - allow in tcp to 10.0.0.0/33\n"),
       6, 7, "firewall.rules[1]", "10.0.0.0/33"},
      {"rule_host_bits", base("firewall:\n  rules:\n    - deny from 10.1.0.0/8\n"), 5, 7,
       "firewall.rules[0]", "10.1.0.0/8"},
      {"rule_not_text", base("firewall:\n  rules:\n    - {allow: tcp}\n"), 5, 7,
       "firewall.rules[0]", "must be a rule"},
      {"bad_default", base("firewall: {default: drop}\n"), 3, 21, "firewall.default",
       "must be one of allow, deny; got \"drop\""},
      {"port_range_empty",
       "interfaces: [{name: eth0}]\nsnat:\n  addresses: [198.51.100.1]\n"
       "  port_range: 2000-1000\n",
       4, 15, "snat.port_range", "empty port range \"2000-1000\""},
      {"port_range_zero",
       base("egress: {sources: [10.0.0.0/8], addresses: [203.0.113.1], port_range: 0-10}\n"), 3, 71,
       "egress.port_range", "within 1..65535"},
      {"egress_family",
       base("egress:\n  sources: [10.0.0.0/8, 2001:db8::/32]\n  addresses: [203.0.113.1]\n"), 4, 25,
       "egress.sources[1]", "IPv6 source needs an IPv6 address in egress.addresses"},
      {"egress_bad_prefix", base("egress:\n  sources: [10.0.0.0/40]\n  addresses: [203.0.113.1]\n"),
       4, 13, "egress.sources[0]", "10.0.0.0/40"},
      {"snat_duplicate_address",
       "interfaces: [{name: eth0}]\nsnat: {addresses: [198.51.100.1, 198.51.100.1]}\n", 2, 34,
       "snat.addresses[1]", "listed twice"},
      {"timeout_too_long", base("timeouts:\n  tcp_established: 838861s\n"), 4, 20,
       "timeouts.tcp_established", "must be a duration in 1s..838860s"},
      {"timeout_fraction", base("timeouts:\n  udp: 1500ms\n"), 4, 8, "timeouts.udp",
       "whole seconds"},
      {"timeout_bad_unit", base("timeouts:\n  udp: 30 seconds\n"), 4, 8, "timeouts.udp",
       "got \"30 seconds\""},
      {"max_connections_zero", base("max_connections: 0\n"), 3, 18, "max_connections",
       "must be an integer in 1..33554431, got \"0\""},
      {"max_connections_huge", base("max_connections: 99999999999999999999999\n"), 3, 18,
       "max_connections", "must be an integer in 1..33554431"},
      {"max_connections_negative", base("max_connections: -5\n"), 3, 18, "max_connections",
       "got \"-5\""},
      {"key_short", base("secrets:\n  lb_key: 0011\n"), 4, 11, "secrets.lb_key",
       "must be 32 hex digits (16 bytes), got 4 characters"},
      {"key_not_hex", base("secrets:\n  synproxy_key: 0011223344556677889900aabbccddzz\n"), 4, 17,
       "secrets.synproxy_key", "must be 32 hex digits"},
      {"health_timeout_ge_interval",
       base(kVip) + "    health_check: {type: tcp, interval: 1s, timeout: 1s}\n", 8, 54,
       "vips[0].health_check.timeout", "must be shorter than interval"},
      {"health_rise_zero", base(kVip) + "    health_check: {type: tcp, rise: 0}\n", 8, 37,
       "vips[0].health_check.rise", "must be an integer in 1..1000"},
      {"health_type_required", base(kVip) + "    health_check: {interval: 5s}\n", 8, 19,
       "vips[0].health_check.type", "is required"},
      {"health_path_on_tcp", base(kVip) + "    health_check: {type: tcp, path: /x}\n", 8, 37,
       "vips[0].health_check.path", "only http health checks"},
      {"health_path_relative", base(kVip) + "    health_check: {type: http, path: x}\n", 8, 38,
       "vips[0].health_check.path", "must be an absolute path"},
      {"health_bad_status", base(kVip) + "    health_check: {type: http, expect_status: 99}\n", 8,
       47, "vips[0].health_check.expect_status", "100..599"},
      {"bool_yes", base("huge_pages: yes\n"), 3, 13, "huge_pages",
       "must be true or false, got \"yes\""},
      {"workers_over_sockets", base("workers: 2\n"), 3, 10, "workers", "2 workers for 1 sockets"},
      {"queues_duplicate", "interfaces:\n  - name: eth0\n    queues: [0, 1, 0]\n", 3, 20,
       "interfaces[0].queues[2]", "queue 0 listed twice"},
      {"interface_twice", "interfaces: [{name: eth0}, {name: eth0}]\n", 1, 35, "interfaces[1].name",
       "listed twice"},
      {"interface_name_long", "interfaces: [{name: abcdefghijklmnop}]\n", 1, 21,
       "interfaces[0].name", "not a valid interface name"},
      {"bad_xdp_mode", "interfaces: [{name: eth0, xdp_mode: drv}]\n", 1, 37,
       "interfaces[0].xdp_mode", "must be one of auto, native, skb"},
      {"logging_level", base("logging: {level: verbose}\n"), 3, 18, "logging.level",
       "must be one of trace, debug"},
      {"status_socket_relative", base("status_socket: tripod.sock\n"), 3, 16, "status_socket",
       "absolute path"},
      {"cookie_rotation_below_age",
       base("syn_cookies: {max_age_slots: 3, rotate_every_slots: 2}\n"), 3, 53,
       "syn_cookies.rotate_every_slots", "at least max_age_slots (3)"},
      {"section_not_map", base("logging: [info]\n"), 3, 10, "logging", "must be a map, got a list"},
      {"list_not_map", base("vips: {address: 192.0.2.1}\n"), 3, 7, "vips",
       "must be a list, got a map"},
      {"top_not_map", "- eth0\n", 1, 1, "", "must be a map of sections"},
      {"syntax_error", "interfaces: [{name: eth0}\nvips: []\n", 2, 1, "",
       "end of sequence flow not found"},
      {"syntax_bad_indent", "interfaces:\n  - name: eth0\n   queues: 1\n", 3, 4, "", "YAML syntax"},
      {"empty_file", "# nothing\n", 0, 0, "", "empty configuration"},
      {"two_documents", "interfaces: [{name: eth0}]\n---\nworkers: 1\n", 2, 1, "",
       "more than one YAML document"},
      {"cluster_self_missing",
       base("cluster:\n  node_id: 3\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"),
       7, 5, "cluster.nodes", "node_id 3 is not in the list of nodes"},
      {"cluster_duplicate_id",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"
            "    - {id: 1, address: 10.9.0.2:7946}\n"),
       8, 12, "cluster.nodes[1].id", "listed twice"},
      {"cluster_short_key", base("cluster:\n  node_id: 1\n  key: abcd\n  nodes: []\n"), 5, 8,
       "cluster.key", "must be 64 hex digits"},
      {"cluster_snat_mismatch",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.9]}\n"),
       7, 5, "cluster.nodes", "must list exactly snat.addresses"},
      {"cluster_shared_snat",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"
            "    - {id: 2, address: 10.9.0.2:7946, snat: [198.51.100.1]}\n"),
       7, 5, "cluster.nodes", "is listed twice"},
      {"cluster_egress_mismatch",
       base("egress: {sources: [10.0.0.0/8], addresses: [203.0.113.1]}\n"
            "cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"),
       8, 5, "cluster.nodes", "must list exactly egress.addresses"},
      {"cluster_egress_elsewhere_only",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"
            "    - {id: 2, address: 10.9.0.2:7946, egress: [203.0.113.2]}\n"),
       7, 5, "cluster.nodes", "every node of a cluster serves egress alike"},
      {"cluster_egress_is_anothers_snat",
       base("egress: {sources: [10.0.0.0/8], addresses: [203.0.113.1]}\n"
            "cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1], egress: [203.0.113.1]}\n"
            "    - {id: 2, address: 10.9.0.2:7946, snat: [203.0.113.1], egress: [203.0.113.9]}\n"),
       8, 5, "cluster.nodes", "is listed twice"},
      {"cluster_egress_here_only",
       base("egress: {sources: [10.0.0.0/8], addresses: [203.0.113.1]}\n"
            "cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1], egress: [203.0.113.1]}\n"
            "    - {id: 2, address: 10.9.0.2:7946, snat: [198.51.100.2]}\n"),
       8, 5, "cluster.nodes", "node 2 has no egress addresses"},
      {"cluster_egress_family_missing_here",
       base("egress: {sources: [10.0.0.0/8], addresses: [203.0.113.1]}\n"
            "cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1], egress: [203.0.113.1]}\n"
            "    - {id: 2, address: 10.9.0.2:7946, egress: [\"2001:db8::2\"]}\n"),
       8, 5, "cluster.nodes", "of a family this node's egress.addresses lack"},
      {"cluster_pull_timeout",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  "
            "pull_timeout: "
            "2s\n  nodes: []\n"),
       6, 17, "cluster.pull_timeout", "a duration in 0s..1s"},
      {"cluster_join_timeout",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  join_timeout: "
            "0s\n  nodes: []\n"),
       6, 17, "cluster.join_timeout", "a duration in"},
      {"cluster_mode",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  mode: both\n  "
            "nodes: []\n"),
       6, 9, "cluster.mode", "must be one of"},
      {"checkpoint_without_cluster",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    checkpoint_interval: 10ms\n"
            "    backends: [{address: 10.0.0.1}]\n"),
       6, 26, "vips[0].checkpoint_interval", "needs a cluster section"},
      {"checkpoint_with_sync",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    checkpoint_interval: 10ms\n"
            "    replication: sync\n    backends: [{address: 10.0.0.1}]\n"
            "cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"),
       6, 26, "vips[0].checkpoint_interval", "is for async replication"},
      {"checkpoint_classes",
       base("vips:\n"
            "  - {address: 192.0.2.1, port: 80, checkpoint_interval: 2ms, backends: []}\n"
            "  - {address: 192.0.2.1, port: 81, checkpoint_interval: 3ms, backends: []}\n"
            "  - {address: 192.0.2.1, port: 82, checkpoint_interval: 4ms, backends: []}\n"
            "  - {address: 192.0.2.1, port: 83, checkpoint_interval: 2ms, backends: []}\n"
            "  - {address: 192.0.2.1, port: 84, checkpoint_interval: 5ms, backends: []}\n"
            "  - {address: 192.0.2.1, port: 85, checkpoint_interval: 6ms, backends: []}\n"
            "cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"),
       9, 57, "vips[5].checkpoint_interval", "at most 4 distinct"},
      {"replication_without_cluster",
       base("vips:\n  - address: 192.0.2.1\n    port: 80\n    replication: sync\n"
            "    backends: [{address: 10.0.0.1}]\n"),
       6, 18, "vips[0].replication", "needs a cluster section"},
      {"cluster_dead_after",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  "
            "heartbeat_interval: 20ms\n"
            "  dead_after: 20ms\n  nodes: []\n"),
       7, 15, "cluster.dead_after", "longer than heartbeat_interval"},
      {"cluster_endpoint_v6",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: fd00::1:7946}\n"),
       7, 24, "cluster.nodes[0].address", "needs brackets"},
      {"cluster_endpoint_port",
       base("cluster:\n  node_id: 1\n  key: "
            "\"abababababababababababababababababababababababababababababababab\"\n  nodes:\n"
            "    - {id: 1, address: 10.9.0.1}\n"),
       7, 24, "cluster.nodes[0].address", "address:port"},
      // yaml-cpp 0.7's LoadAll() would loop forever on these.
      {"stray_comma", ",", 1, 1, "", "YAML syntax: unexpected text after the document"},
      {"stray_comma_after_list", "[a]\n,\n", 2, 1, "", "YAML syntax"},
      {"stray_comma_after_map", "interfaces: [{name: eth0}]\n,\n", 2, 1, "", "YAML syntax"},
  };
}

class ConfigErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, NamesFileLineColumnAndPath) {
  const ErrorCase& c = GetParam();
  try {
    load_config_string(c.text, "t.yaml");
    FAIL() << "loaded without error:\n" << c.text;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "t.yaml");
    EXPECT_EQ(e.line(), c.line) << e.what();
    EXPECT_EQ(e.column(), c.col) << e.what();
    EXPECT_EQ(e.path(), c.path) << e.what();
    EXPECT_NE(e.reason().find(c.reason), std::string::npos) << e.what();
    // what() is the one-line form the daemon logs.
    std::string prefix = "t.yaml:";
    if (c.line > 0) prefix += std::to_string(c.line) + ":" + std::to_string(c.col) + ":";
    EXPECT_EQ(std::string(e.what()).rfind(prefix, 0), 0u) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ConfigErrorTest, testing::ValuesIn(error_cases()),
                         [](const testing::TestParamInfo<ErrorCase>& i) { return i.param.name; });

// Two nodes of one cluster derive the same shared keys from the cluster key,
// and every node's SNAT addresses reach the data plane.
// `mode` is the VIPs' default; a VIP's own `replication` wins.
TEST(ConfigTest, ReplicationModeSetsOutputCommitPerVip) {
  const std::string text =
      "interfaces: [{name: eth0}]\n"
      "snat: {addresses: [198.51.100.1]}\n"
      "vips:\n"
      "  - {address: 192.0.2.1, port: 80, backends: [{address: 10.0.0.1}]}\n"
      "  - {address: 192.0.2.2, port: 80, replication: async, backends: [{address: 10.0.0.1}]}\n"
      "cluster:\n"
      "  node_id: 1\n"
      "  key: \"abababababababababababababababababababababababababababababababab\"\n"
      "  mode: sync\n"
      "  nodes: [{id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}]\n";
  const TripodConfig c = load_config_string(text);
  EXPECT_EQ(c.cluster.mode, ReplicationMode::kSync);
  EXPECT_TRUE(c.gateway.vips[0].output_commit);
  EXPECT_FALSE(c.gateway.vips[1].output_commit);
  std::string async = text;
  async.replace(async.find("mode: sync"), 10, "mode: async");
  async.replace(async.find("replication: async"), 18, "replication: sync");
  const TripodConfig d = load_config_string(async);
  EXPECT_FALSE(d.gateway.vips[0].output_commit);
  EXPECT_TRUE(d.gateway.vips[1].output_commit);
  EXPECT_TRUE(d.gateway.vips[0].replicated);
  EXPECT_TRUE(d.gateway.vips[1].replicated);
  std::string off = async;
  off.replace(off.find("replication: sync"), 17, "replication: off");
  const TripodConfig e = load_config_string(off);
  EXPECT_FALSE(e.gateway.vips[1].output_commit);
  EXPECT_FALSE(e.gateway.vips[1].replicated);
  EXPECT_TRUE(e.gateway.vips[0].replicated);
  off.replace(off.find("mode: async"), 11, "mode: off");
  const TripodConfig f = load_config_string(off);
  EXPECT_FALSE(f.gateway.vips[0].replicated);
  // A checkpoint interval of its own (async): longer than the cluster's.
  std::string ci = async;
  ci.replace(ci.find("replication: sync"), 17, "checkpoint_interval: 20ms");
  const TripodConfig g = load_config_string(ci);
  EXPECT_EQ(g.gateway.vips[1].checkpoint_ns, 20'000'000u);
  EXPECT_EQ(g.gateway.vips[0].checkpoint_ns, 0u);
  ci.replace(ci.find("checkpoint_interval: 20ms"), 25, "checkpoint_interval: 1ms");
  EXPECT_EQ(load_config_string(ci).gateway.vips[1].checkpoint_ns, 0u);  // the cluster's anyway
}

TEST(ConfigTest, ClusterNodesShareDerivedKeys) {
  auto node = [](int id, const char* snat) {
    return "interfaces: [{name: eth0}]\n"
           "snat: {addresses: [" +
           std::string(snat) +
           "]}\n"
           "cluster:\n"
           "  node_id: " +
           std::to_string(id) +
           "\n"
           "  key: \"abababababababababababababababababababababababababababababababab\"\n"
           "  heartbeat_interval: 5ms\n"
           "  nodes:\n"
           "    - {id: 1, address: 10.9.0.1:7946, snat: [198.51.100.1]}\n"
           "    - {id: 2, address: \"[fd00::2]:7946\", snat: [198.51.100.2]}\n";
  };
  const TripodConfig a = load_config_string(node(1, "198.51.100.1"));
  const TripodConfig b = load_config_string(node(2, "198.51.100.2"));
  EXPECT_TRUE(a.cluster.enabled);
  EXPECT_EQ(a.cluster.heartbeat_interval_ns, 5'000'000u);
  EXPECT_EQ(b.cluster.nodes[1].port, 7946);
  EXPECT_EQ(b.cluster.nodes[1].address.to_string(), "fd00::2");
  EXPECT_EQ(a.gateway.cluster.node_id, 1);
  EXPECT_EQ(b.gateway.cluster.node_id, 2);
  EXPECT_EQ(a.gateway.cluster.snat_addresses.size(), 2u);
  EXPECT_TRUE(a.gateway.cluster.egress_addresses.empty());
  // Egress: every node's addresses reach the data plane, apart from the SNAT ones.
  std::string eg = node(1, "198.51.100.1");
  eg.insert(eg.find("cluster:"),
            "egress: {sources: [10.0.0.0/8], addresses: [203.0.113.1, \"2001:db8::1\"]}\n");
  eg.replace(eg.find("snat: [198.51.100.1]}"), 21,
             "snat: [198.51.100.1], egress: [\"2001:db8::1\", 203.0.113.1]}");
  eg.replace(eg.find("snat: [198.51.100.2]}"), 21,
             "snat: [198.51.100.2], egress: [\"2001:db8::2\", 203.0.113.2]}");
  const TripodConfig e = load_config_string(eg);
  ASSERT_EQ(e.gateway.cluster.egress_addresses.size(), 4u);
  EXPECT_EQ(e.gateway.cluster.snat_addresses.size(), 2u);
  EXPECT_EQ(IpAddress::from_bytes(e.gateway.cluster.egress_addresses[2].family,
                                  e.gateway.cluster.egress_addresses[2].addr)
                .to_string(),
            "2001:db8::2");
  EXPECT_EQ(a.gateway.cluster.slot_key.k0, b.gateway.cluster.slot_key.k0);  // derived, shared
  EXPECT_EQ(a.gateway.cluster.slot_key.k1, b.gateway.cluster.slot_key.k1);
  EXPECT_EQ(a.gateway.cluster.pull_timeout_ms, 20u);  // the default: misses pull
  std::string on = node(1, "198.51.100.1");
  on.insert(on.find("  nodes:"), "  pull_timeout: 0\n");
  EXPECT_EQ(load_config_string(on).gateway.cluster.pull_timeout_ms, 0u);
  EXPECT_EQ(a.cluster.join_timeout_ns, 3'000'000'000u);  // the default
  on.insert(on.find("  nodes:"), "  join_timeout: 10s\n");
  EXPECT_EQ(load_config_string(on).cluster.join_timeout_ns, 10'000'000'000u);
  for (const TripodConfig* c : {&a, &b}) {
    EXPECT_FALSE(c->generated.lb_key);
    EXPECT_FALSE(c->generated.synproxy_key);
  }
  EXPECT_EQ(a.gateway.lb_hash_key.k0, b.gateway.lb_hash_key.k0);
  EXPECT_EQ(a.gateway.synproxy_master.k1, b.gateway.synproxy_master.k1);
  EXPECT_EQ(a.gateway.cluster.slot_key.k0, b.gateway.cluster.slot_key.k0);
  EXPECT_NE(a.gateway.cluster.slot_key.k0, a.gateway.lb_hash_key.k0);
  EXPECT_NE(a.gateway.table_hash_key.k0, b.gateway.table_hash_key.k0);  // per process
  // A cluster change needs a restart.
  TripodConfig c = a;
  c.cluster.replicas = 2;
  EXPECT_FALSE(plan_reload(a, c).ok());
}

// The brief's example message, verbatim.
TEST(ConfigTest, WhatIsTheOneLineForm) {
  try {
    load_config_string(base(kVip) + "        weight: heavy\n", "tripod.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "tripod.yaml:8:17: vips[0].backends[0].weight: must be an integer in 0..65535, "
                 "got \"heavy\"");
  }
}

TEST(ConfigTest, SecretsAreNotEchoed) {
  try {
    load_config_string(base("secrets: {lb_key: 0011223344556677889900aabbccddzz}\n"), "t.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("0011223344"), std::string::npos) << e.what();
  }
}

TEST(ConfigTest, ShorthandsAndAlternatives) {
  const TripodConfig c = load_config_string(
      "interfaces: [{name: eth0, queues: 4, bind_mode: zerocopy}]\n"
      "workers: 4\n"
      "snat: {addresses: [198.51.100.1], port_range: 5000}\n"
      "logging: {format: json}\n"
      "firewall:\n"  // empty sections take defaults
      "vips:\n"
      "  - {address: 192.0.2.1, port: 443, synproxy: true, backends: [{address: 10.0.0.1, "
      "weight: 0}]}\n"
      "  - {address: 192.0.2.1, port: 444, synproxy: {enabled: false, mss: 1400}, backends: []}\n",
      "t.yaml");
  EXPECT_EQ(c.interfaces[0].queues, (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(c.interfaces[0].bind_mode, BindMode::kZeroCopy);
  EXPECT_EQ(c.effective_workers(), 4u);
  EXPECT_EQ(c.gateway.snat.port_lo, 5000);
  EXPECT_EQ(c.gateway.snat.port_hi, 5000);
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_TRUE(c.gateway.vips[0].synproxy);
  EXPECT_EQ(c.gateway.vips[0].pool.backends[0].weight, 0u);
  EXPECT_FALSE(c.gateway.vips[1].synproxy);
  EXPECT_EQ(c.gateway.vips[1].synproxy_options.mss, 1400);
}

TEST(ConfigTest, HealthCheckTimeoutDefaultsInsideTheInterval) {
  const TripodConfig c =
      load_config_string(base(kVip) + "    health_check: {type: tcp, interval: 500ms}\n", "t.yaml");
  EXPECT_EQ(c.vips[0].health_check.interval_ms, 500u);
  EXPECT_EQ(c.vips[0].health_check.timeout_ms, 250u);
}

TEST(ConfigTest, RulesKeepTheirOrder) {
  const TripodConfig c = load_config_string(base("firewall:\n  default: allow\n  rules:\n"
                                                 "    - deny in tcp to any port 22\n"
                                                 "    - allow in tcp\n"),
                                            "t.yaml");
  ASSERT_EQ(c.gateway.firewall.acl.rules.size(), 2u);
  EXPECT_EQ(c.gateway.firewall.acl.rules[0], parse_rule("deny in tcp to any port 22"));
  EXPECT_EQ(c.gateway.firewall.acl.default_action, FwAction::kAllow);
}

}  // namespace
}  // namespace tripod
