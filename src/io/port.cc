#include "io/port.h"

#include <cstring>
#include <stdexcept>

#include "packet/pcap_io.h"

namespace tripod {

PcapPort::PcapPort(const std::string& in_path, const std::string& out_path)
    : pool_(4 * kBurstSize) {
  std::string err;
  in_ = PcapReader::open(in_path, &err);
  if (!in_) throw std::runtime_error(in_path + ": " + err);
  if (!out_path.empty()) {
    out_ = PcapWriter::open(out_path, &err);
    if (!out_) throw std::runtime_error(out_path + ": " + err);
  }
}

PcapPort::~PcapPort() = default;

uint32_t PcapPort::rx_burst(Packet* pkts, uint32_t max) {
  uint32_t n = 0;
  while (n < max && !eof_) {
    std::span<const uint8_t> frame;
    uint64_t ts = 0;
    if (!in_->next(&frame, &ts)) {
      eof_ = true;
      break;
    }
    if (frame.size() > kMaxFrameLen) {  // jumbo frames are not in scope: count them
      ++oversize_;
      continue;
    }
    if (!pool_.alloc(&pkts[n])) break;
    if (!frame.empty()) std::memcpy(pkts[n].data, frame.data(), frame.size());
    pkts[n].len = static_cast<uint32_t>(frame.size());
    pkts[n].ts_ns = ts;
    ++n;
  }
  return n;
}

void PcapPort::tx_burst(const Packet* pkts, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (out_) out_->write({pkts[i].data, pkts[i].len}, pkts[i].ts_ns);
    pool_.release(pkts[i]);
  }
}

void PcapPort::release(const Packet* pkts, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    pool_.release(pkts[i]);
}

MemoryPort::MemoryPort(std::vector<std::vector<uint8_t>> input, uint64_t ts_step_ns)
    : pool_(4 * kBurstSize), input_(std::move(input)), ts_step_ns_(ts_step_ns) {}

uint32_t MemoryPort::rx_burst(Packet* pkts, uint32_t max) {
  uint32_t n = 0;
  while (n < max && next_ < input_.size()) {
    const auto& f = input_[next_];
    if (f.size() > kMaxFrameLen) {
      ++next_;
      ++oversize_;
      continue;
    }
    if (!pool_.alloc(&pkts[n])) break;
    if (!f.empty()) std::memcpy(pkts[n].data, f.data(), f.size());  // data() may be null
    pkts[n].len = static_cast<uint32_t>(f.size());
    pkts[n].ts_ns = ++next_ * ts_step_ns_;
    ++n;
  }
  return n;
}

void MemoryPort::tx_burst(const Packet* pkts, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    output_.emplace_back(pkts[i].data, pkts[i].data + pkts[i].len);
    pool_.release(pkts[i]);
  }
}

void MemoryPort::release(const Packet* pkts, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    pool_.release(pkts[i]);
}

}  // namespace tripod
