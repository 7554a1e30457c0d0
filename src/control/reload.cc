// plan_reload(): what a SIGHUP may change live and what it may not.
//
// Live: VIPs and pools (the LB's two-phase prepare/commit keeps every
// connection on its recorded version, so nothing drops), per-VIP options
// read when a connection starts, health checks, firewall rules and
// timeouts (both for new connections), logging.
// Restart: whatever sized or keyed the data plane at start-up (sockets,
// workers, the connection table, the SNAT allocators that hold live leases,
// hash and cookie secrets): changing them live would strand connections.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "control/config.h"

namespace tripod {
namespace {

bool same_backend(const Backend& a, const Backend& b) {
  return a.addr == b.addr && a.port == b.port && a.weight == b.weight &&
         std::memcmp(a.mac, b.mac, sizeof a.mac) == 0;
}

bool same_pool(const PoolSpec& a, const PoolSpec& b) {
  if (a.backends.size() != b.backends.size()) return false;
  for (size_t i = 0; i < a.backends.size(); ++i) {
    if (!same_backend(a.backends[i], b.backends[i])) return false;
  }
  return true;
}

bool same_synproxy(const SynProxyVip& a, const SynProxyVip& b) {
  return a.mss == b.mss && a.wscale == b.wscale && a.window_scaling == b.window_scaling &&
         a.sack == b.sack && a.timestamps == b.timestamps && a.ecn == b.ecn && a.ttl == b.ttl;
}

bool same_options(const GatewayVipConfig& a, const GatewayVipConfig& b) {
  if (a.mss_clamp != b.mss_clamp || a.synproxy != b.synproxy || a.hash != b.hash) return false;
  return !a.synproxy || same_synproxy(a.synproxy_options, b.synproxy_options);
}

static_assert(std::has_unique_object_representations_v<FwTimeouts>);
bool same_timeouts(const FwTimeouts& a, const FwTimeouts& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

bool same_snat(const SnatPoolConfig& a, const SnatPoolConfig& b) {
  if (a.port_lo != b.port_lo || a.port_hi != b.port_hi || a.partitions != b.partitions ||
      a.addresses.size() != b.addresses.size())
    return false;
  for (size_t i = 0; i < a.addresses.size(); ++i) {
    if (a.addresses[i].family != b.addresses[i].family ||
        std::memcmp(a.addresses[i].addr, b.addresses[i].addr, 16) != 0)
      return false;
  }
  return true;
}

// Membership, keys and timers are fixed for a node's life: a change is a
// rolling restart, node by node (the cluster keeps every flow meanwhile).
bool same_cluster(const ClusterConfig& a, const ClusterConfig& b) {
  if (a.enabled != b.enabled || a.node_id != b.node_id || a.cluster_id != b.cluster_id ||
      a.key != b.key || a.heartbeat_interval_ns != b.heartbeat_interval_ns ||
      a.dead_after_ns != b.dead_after_ns || a.rise != b.rise || a.replicas != b.replicas ||
      a.checkpoint_interval_ns != b.checkpoint_interval_ns || a.mode != b.mode ||
      a.nodes.size() != b.nodes.size())
    return false;
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const ClusterNodeConfig& x = a.nodes[i];
    const ClusterNodeConfig& y = b.nodes[i];
    auto same = [](const std::vector<SnatAddress>& u, const std::vector<SnatAddress>& v) {
      if (u.size() != v.size()) return false;
      for (size_t j = 0; j < u.size(); ++j)
        if (u[j].family != v[j].family || std::memcmp(u[j].addr, v[j].addr, 16) != 0) return false;
      return true;
    };
    if (x.id != y.id || !(x.address == y.address) || x.port != y.port || !same(x.snat, y.snat) ||
        !same(x.egress, y.egress))
      return false;
  }
  return true;
}

bool same_cookies(const CookieConfig& a, const CookieConfig& b) {
  return a.slot_ns == b.slot_ns && a.max_age_slots == b.max_age_slots &&
         a.rotate_every_slots == b.rotate_every_slots &&
         a.options_without_timestamps == b.options_without_timestamps;
}

bool same_key(const SipKey& a, const SipKey& b) {
  return a.k0 == b.k0 && a.k1 == b.k1;
}

const char* mode_name(VipMode m) {
  return m == VipMode::kDsr ? "dsr" : "fullnat";
}

}  // namespace

bool ReloadPlan::empty() const {
  return vips_added.empty() && vips_removed.empty() && pools_changed.empty() &&
         vip_options_changed.empty() && health_checks_changed.empty() && !firewall_changed &&
         !timeouts_changed && !logging_changed && errors.empty();
}

ReloadPlan plan_reload(const TripodConfig& running, const TripodConfig& next) {
  ReloadPlan p;
  auto restart = [&](const std::string& field, const std::string& what) {
    p.errors.push_back(field + ": " + what + "; needs a restart (the running configuration stays)");
  };
  const GatewayConfig& r = running.gateway;
  const GatewayConfig& n = next.gateway;

  if (running.interfaces != next.interfaces) restart("interfaces", "changed");
  if (running.effective_workers() != next.effective_workers())
    restart("workers", std::to_string(running.effective_workers()) + " -> " +
                           std::to_string(next.effective_workers()));
  if (r.max_connections != n.max_connections)
    restart("max_connections",
            std::to_string(r.max_connections) + " -> " + std::to_string(n.max_connections));
  if (r.huge_pages != n.huge_pages) restart("huge_pages", "changed");
  if (running.status_socket != next.status_socket) restart("status_socket", "changed");
  // A key drawn at random on both loads is "absent" on both: no change (the
  // daemon keeps the running one). Anything else must match exactly.
  auto key = [&](const char* field, bool gen_r, bool gen_n, const SipKey& a, const SipKey& b) {
    if (gen_r && gen_n) return;
    if (gen_r != gen_n || !same_key(a, b)) restart(field, "changed");
  };
  key("secrets.table_key", running.generated.table_key, next.generated.table_key, r.table_hash_key,
      n.table_hash_key);
  key("secrets.lb_key", running.generated.lb_key, next.generated.lb_key, r.lb_hash_key,
      n.lb_hash_key);
  key("secrets.synproxy_key", running.generated.synproxy_key, next.generated.synproxy_key,
      r.synproxy_master, n.synproxy_master);
  if (!same_cookies(r.cookies, n.cookies)) restart("syn_cookies", "changed");
  if (!same_cluster(running.cluster, next.cluster)) restart("cluster", "changed");
  // Live connections hold leases by address index and port.
  if (!same_snat(r.snat, n.snat)) restart("snat", "changed");
  if (r.egress.sources != n.egress.sources || !same_snat(r.egress.snat, n.egress.snat))
    restart("egress", "changed");

  for (size_t j = 0; j < n.vips.size(); ++j) {
    size_t i = 0;
    while (i < r.vips.size() && !(r.vips[i].key == n.vips[j].key))
      ++i;
    if (i == r.vips.size()) {
      if (n.vips[j].output_commit &&
          std::none_of(r.vips.begin(), r.vips.end(),
                       [](const GatewayVipConfig& v) { return v.output_commit; }))
        restart("vips[" + std::to_string(j) + "] " + vip_label(n.vips[j].key) + " replication",
                "sync, and no running VIP has it (hold queues are set up at start)");
      const uint64_t ci = n.vips[j].checkpoint_ns;
      if (ci != 0 && std::none_of(r.vips.begin(), r.vips.end(), [ci](const GatewayVipConfig& v) {
            return v.checkpoint_ns == ci;
          }))
        restart(
            "vips[" + std::to_string(j) + "] " + vip_label(n.vips[j].key) + " checkpoint_interval",
            std::to_string(ci / 1'000'000) +
                " ms, and no running VIP has it (its queue is set up at start)");
      p.vips_added.push_back(j);
      continue;
    }
    const GatewayVipConfig& a = r.vips[i];
    const GatewayVipConfig& b = n.vips[j];
    if (a.mode != b.mode) {
      // Live connections were set up for the old mode (NAT records or not).
      restart("vips[" + std::to_string(j) + "] " + vip_label(b.key) + " mode",
              std::string(mode_name(a.mode)) + " -> " + mode_name(b.mode) +
                  " (or remove the VIP in one reload and add it back in the next)");
      continue;
    }
    if (a.output_commit != b.output_commit || a.replicated != b.replicated ||
        a.checkpoint_ns != b.checkpoint_ns) {
      // The agent's ack timing and the workers' hold queues are set at start;
      // live flows were created replicated or not.
      auto name = [](const GatewayVipConfig& v) {
        std::string m = !v.replicated ? "off" : v.output_commit ? "sync" : "async";
        if (v.checkpoint_ns != 0)
          m += " every " + std::to_string(v.checkpoint_ns / 1'000'000) + " ms";
        return m;
      };
      restart("vips[" + std::to_string(j) + "] " + vip_label(b.key) + " replication",
              name(a) + " -> " + name(b));
      continue;
    }
    if (!same_pool(a.pool, b.pool)) p.pools_changed.push_back({i, j});
    if (!same_options(a, b)) p.vip_options_changed.push_back({i, j});
    const bool names_known = i < running.vips.size() && j < next.vips.size();
    if (names_known && (running.vips[i].health_check != next.vips[j].health_check ||
                        running.vips[i].name != next.vips[j].name))
      p.health_checks_changed.push_back({i, j});
  }
  for (size_t i = 0; i < r.vips.size(); ++i) {
    bool kept = false;
    for (const auto& v : n.vips)
      kept = kept || v.key == r.vips[i].key;
    if (!kept) p.vips_removed.push_back(i);
  }

  p.firewall_changed = r.firewall.acl.rules != n.firewall.acl.rules ||
                       r.firewall.acl.default_action != n.firewall.acl.default_action ||
                       r.firewall.tcp_be_liberal != n.firewall.tcp_be_liberal ||
                       r.non_vip_dir != n.non_vip_dir;
  p.timeouts_changed = !same_timeouts(r.firewall.timeouts, n.firewall.timeouts);
  p.logging_changed = running.logging != next.logging;
  return p;
}

std::vector<std::string> ReloadPlan::describe(const TripodConfig& running,
                                              const TripodConfig& next) const {
  std::vector<std::string> out;
  auto name = [](const TripodConfig& c, size_t i) {
    return i < c.vips.size() ? c.vips[i].name : vip_label(c.gateway.vips[i].key);
  };
  for (const auto& e : errors)
    out.push_back("refused: " + e);
  for (size_t j : vips_added)
    out.push_back("vip added: " + name(next, j) + " (" +
                  std::to_string(next.gateway.vips[j].pool.backends.size()) + " backends)");
  for (size_t i : vips_removed)
    out.push_back("vip removed: " + name(running, i) +
                  " (no new connections; established ones drain)");
  for (const auto& c : pools_changed)
    out.push_back("pool changed: " + name(next, c.next) + " (" +
                  std::to_string(running.gateway.vips[c.running].pool.backends.size()) + " -> " +
                  std::to_string(next.gateway.vips[c.next].pool.backends.size()) +
                  " backends; new version, established connections keep theirs)");
  for (const auto& c : vip_options_changed)
    out.push_back("vip options changed: " + name(next, c.next) +
                  " (mss_clamp / synproxy / scheduler; applies to new connections)");
  for (const auto& c : health_checks_changed)
    out.push_back("health check changed: " + name(next, c.next));
  if (firewall_changed)
    out.push_back(
        "firewall changed: applies to new connections (established ones are decided by state)");
  if (timeouts_changed) out.push_back("timeouts changed: apply to new connections");
  if (logging_changed) out.push_back("logging changed");
  return out;
}

}  // namespace tripod
