// Writes the seed corpus of cluster_wire_fuzz (script format in wire_fuzz.cc):
//   cluster_wire_corpus_gen fuzz/corpus/cluster_wire
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cluster/wire/test_util.h"

using namespace tripod;
using namespace tripod::cluster::wire;
using namespace tripod::cluster::wire::testing;
using Bytes = std::vector<uint8_t>;

namespace {

void write(const std::string& dir, const char* name, const Bytes& b) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Op 0: a datagram from the network.
void dgram(Bytes* s, const Bytes& d) {
  s->push_back(0);
  s->push_back(static_cast<uint8_t>(d.size() >> 8));
  s->push_back(static_cast<uint8_t>(d.size()));
  s->insert(s->end(), d.begin(), d.end());
}

Header from_peer(MsgType type, uint64_t inc = 5) {
  Header h;
  h.type = type;
  h.cluster_id = kClusterId;
  h.sender = 2;
  h.receiver = 1;
  h.sender_inc = inc;
  h.receiver_inc = 1;
  return h;
}

Bytes heartbeat(const Codec& c, uint64_t hb_seq, uint64_t inc = 5) {
  Bytes body(kHeartbeatSize);
  write_heartbeat({hb_seq, 0b110, kStateReady, 1000}, body.data());
  return build(c, from_peer(MsgType::kHeartbeat, inc), body);
}

Bytes data(const Codec& c, uint64_t seq, uint64_t inc = 5) {
  Bytes p;
  append_record(&p, kFlowRecord, Bytes(kFlowRecordSize, 0x11));
  append_record(&p, kSmallRecord, Bytes(kSmallRecordSize, 0x22));
  append_record(&p, kBigRecord, Bytes(kBigRecordSize, 0x33));
  Header h = from_peer(MsgType::kData, inc);
  h.seq = seq;
  h.count = 3;
  return build(c, h, p);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const Codec c(codec_config(2), test_records());
  {
    Bytes s{0x80};  // raw MACs, window 1 + 64 % 64
    dgram(&s, heartbeat(c, 1));
    dgram(&s, data(c, 1));
    dgram(&s, data(c, 3));
    dgram(&s, data(c, 1));  // duplicate
    s.insert(s.end(), {3, 10});
    write(dir, "hb_data_dup", s);
  }
  {
    Bytes s{0x08};
    dgram(&s, heartbeat(c, 1));
    for (int i = 0; i < 30; ++i) {
      s.push_back(1);
      s.push_back(kFlowRecord);
      s.insert(s.end(), kFlowRecordSize, static_cast<uint8_t>(i));
    }
    s.push_back(2);
    Header ack = from_peer(MsgType::kAck);
    ack.ack = 1;
    ack.sack = 0;
    dgram(&s, build(c, ack, {}));
    s.insert(s.end(), {3, 60, 4, 3, 255});
    write(dir, "push_ack_poll", s);
  }
  {
    Bytes s{0x02};
    dgram(&s, heartbeat(c, 1, 5));
    dgram(&s, data(c, 1, 5));
    dgram(&s, heartbeat(c, 1, 6));  // restart
    dgram(&s, data(c, 1, 5));       // old life
    dgram(&s, data(c, 1, 6));
    write(dir, "restart", s);
  }
  {
    // Held behind gaps, drained in order; then held across a restart.
    Bytes s{0x04};
    dgram(&s, heartbeat(c, 1));
    dgram(&s, data(c, 3));
    dgram(&s, data(c, 4));
    dgram(&s, data(c, 3));  // duplicate of a held one
    dgram(&s, data(c, 2));
    dgram(&s, data(c, 1));   // 1 to 4
    dgram(&s, data(c, 5));   // at once
    dgram(&s, data(c, 69));  // the window's edge (ack 5 + 64)
    dgram(&s, data(c, 7));
    dgram(&s, heartbeat(c, 1, 6));  // restart: 7 and 69 discarded
    dgram(&s, data(c, 2, 6));
    dgram(&s, data(c, 1, 6));
    write(dir, "reorder", s);
  }
  {
    // Mode bit 0: the harness seals, so the MAC bytes here are placeholders.
    Bytes s{0x01};
    Header h = from_peer(MsgType::kData);
    h.seq = 2;
    h.count = 1;
    Bytes p;
    append_record(&p, kFlowRecord, Bytes(kFlowRecordSize, 0x44));
    dgram(&s, heartbeat(c, 1));
    dgram(&s, build(c, h, p, false));
    h.seq = 70;
    dgram(&s, build(c, h, p, false));
    write(dir, "sealed_by_harness", s);
  }
  {
    Bytes s{0x00};
    Bytes d = data(c, 1);
    d[10] ^= 1;  // wrong cluster
    dgram(&s, d);
    d = data(c, 1);
    d.back() ^= 1;  // bad MAC
    dgram(&s, d);
    dgram(&s, Bytes(10, 0));
    write(dir, "drops", s);
  }
  return 0;
}
