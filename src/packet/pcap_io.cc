// pcap files through libpcap, nanosecond timestamps both ways (libpcap
// converts microsecond files on read).
#include "packet/pcap_io.h"

#include <pcap/pcap.h>

#include <algorithm>

namespace tripod {
namespace {

// Frames up to a jumbo frame's size; pcap readers reject caplen > snaplen.
constexpr int kSnapLen = 262144;
constexpr uint64_t kNsPerSec = 1000000000;

}  // namespace

std::unique_ptr<PcapReader> PcapReader::open(const std::string& path, std::string* error) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p =
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (p == nullptr) {
    if (error != nullptr) *error = errbuf;
    return nullptr;
  }
  if (pcap_datalink(p) != DLT_EN10MB) {
    if (error != nullptr) {
      *error = path + ": link type " + std::to_string(pcap_datalink(p)) + " is not Ethernet";
    }
    pcap_close(p);
    return nullptr;
  }
  return std::unique_ptr<PcapReader>(new PcapReader(p));
}

PcapReader::~PcapReader() {
  pcap_close(p_);
}

bool PcapReader::next(std::span<const uint8_t>* frame, uint64_t* timestamp_ns) {
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  const int r = pcap_next_ex(p_, &hdr, &data);
  if (r != 1) {
    if (r == PCAP_ERROR) error_ = pcap_geterr(p_);  // PCAP_ERROR_BREAK is a clean EOF
    return false;
  }
  *frame = std::span<const uint8_t>(data, hdr->caplen);
  if (timestamp_ns != nullptr) {
    // With nanosecond precision, tv_usec holds nanoseconds.
    *timestamp_ns =
        static_cast<uint64_t>(hdr->ts.tv_sec) * kNsPerSec + static_cast<uint64_t>(hdr->ts.tv_usec);
  }
  return true;
}

std::unique_ptr<PcapWriter> PcapWriter::open(const std::string& path, std::string* error) {
  pcap_t* p =
      pcap_open_dead_with_tstamp_precision(DLT_EN10MB, kSnapLen, PCAP_TSTAMP_PRECISION_NANO);
  if (p == nullptr) {
    if (error != nullptr) *error = "pcap_open_dead failed";
    return nullptr;
  }
  pcap_dumper_t* d = pcap_dump_open(p, path.c_str());
  if (d == nullptr) {
    if (error != nullptr) *error = pcap_geterr(p);
    pcap_close(p);
    return nullptr;
  }
  return std::unique_ptr<PcapWriter>(new PcapWriter(p, d));
}

PcapWriter::~PcapWriter() {
  pcap_dump_close(d_);
  pcap_close(p_);
}

void PcapWriter::write(std::span<const uint8_t> frame, uint64_t timestamp_ns) {
  pcap_pkthdr h{};
  h.ts.tv_sec = static_cast<time_t>(timestamp_ns / kNsPerSec);
  h.ts.tv_usec = static_cast<suseconds_t>(timestamp_ns % kNsPerSec);
  h.len = static_cast<bpf_u_int32>(frame.size());
  h.caplen = static_cast<bpf_u_int32>(std::min<size_t>(frame.size(), kSnapLen));
  pcap_dump(reinterpret_cast<u_char*>(d_), &h, frame.data());
}

}  // namespace tripod
