// Writes the seed corpus of rtnl_decode_fuzz: one datagram per file, shaped
// like the kernel's dump replies and notifications.
//   route_corpus_gen fuzz/corpus/rtnl_decode
#include <cstdio>
#include <fstream>
#include <string>

#include "route/rtnl_test_util.h"

using namespace tripod::route;
using namespace tripod::route::testing;

namespace {

void write(const std::string& dir, const char* name, const Bytes& b) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const Mac m1{2, 0, 0, 0, 0, 1}, m2{2, 0, 0, 0, 0, 2}, peer{2, 0, 0, 0, 0, 0xAA};
  // The first byte (the low byte of nlmsg_len) selects dump (odd) or event
  // semantics in the harness; both kinds occur naturally.
  write(dir, "link_dump",
        concat({link_msg(RTM_NEWLINK, 1, true, m1, 1500, "eth0"),
                link_msg(RTM_NEWLINK, 2, false, m2, 9000, "eth1"), done_msg(1)}));
  write(dir, "link_del", link_msg(RTM_DELLINK, 2, false, m2));
  write(dir, "neigh_v4_v6",
        concat({neigh_msg(RTM_NEWNEIGH, 1, A("10.0.0.1"), NUD_REACHABLE, &peer),
                neigh_msg(RTM_NEWNEIGH, 1, A("fe80::1"), NUD_STALE, &peer),
                neigh_msg(RTM_NEWNEIGH, 2, A("10.0.1.9"), NUD_INCOMPLETE, nullptr),
                neigh_msg(RTM_DELNEIGH, 2, A("10.0.1.8"), NUD_FAILED, nullptr)}));
  write(dir, "route_v4",
        concat({route_msg(RTM_NEWROUTE, NLM_F_MULTI, "0.0.0.0", 0, {{1, "10.0.0.1"}}),
                route_msg(RTM_NEWROUTE, NLM_F_MULTI, "10.1.0.0", 16, {{2, nullptr}}, 100),
                route_msg(RTM_NEWROUTE, NLM_F_MULTI, "10.1.2.0", 24, {}, 0, RTN_BLACKHOLE),
                neigh_msg(RTM_NEWNEIGH, 1, A("10.0.0.1"), NUD_REACHABLE, &peer)}));
  write(dir, "route_v4_multipath",
        route_msg(RTM_NEWROUTE, NLM_F_CREATE, "172.16.0.0", 12,
                  {{1, "10.0.0.5", 0}, {2, "10.0.1.5", 2, RTNH_F_ONLINK}}));
  write(dir, "route_v6_multipath",
        concat({route_msg(RTM_NEWROUTE, NLM_F_MULTI, "fd00:1::", 64,
                          {{1, "fe80::1"}, {2, "fe80::2", 1}}, 1024),
                neigh_msg(RTM_NEWNEIGH, 2, A("fe80::2"), NUD_PERMANENT, &peer)}));
  write(dir, "route_v6_events",
        concat({route_msg(RTM_NEWROUTE, NLM_F_CREATE, "fd00:2::", 64, {{1, nullptr}}, 256),
                route_msg(RTM_NEWROUTE, NLM_F_REPLACE, "fd00:2::", 64, {{2, "fe80::9"}}, 256),
                route_msg(RTM_DELROUTE, 0, "fd00:2::", 64, {{2, "fe80::9"}}, 256)}));
  write(
      dir, "route_v4_alias",
      concat(
          {route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, "10.5.0.0", 16, {{1, "10.0.0.1"}}),
           route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, "10.5.0.0", 16, {{1, "10.0.0.2"}}),
           route_msg(RTM_DELROUTE, 0, "10.5.0.0", 16, {{1, "10.0.0.1"}})}));
  write(dir, "route_other_table",
        route_msg(RTM_NEWROUTE, 0, "10.7.0.0", 16, {{1, "10.0.0.2"}}, 0, RTN_UNICAST, 1000));
  {
    int32_t err = -19;  // -ENODEV, as a failed RTM_NEWNEIGH reply
    NlMsg e(NLMSG_ERROR, 0, 42);
    e.hdr(err);
    write(dir, "error", e.bytes());
  }
  write(dir, "done", done_msg(7));
  return 0;
}
