// pcap files through libpcap: read captures into tests and the demo, write
// what the pipeline emitted. Ethernet link type only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

struct pcap;
struct pcap_dumper;

namespace tripod {

class PcapReader {
 public:
  // Returns nullptr and sets *error on failure (missing file, not Ethernet).
  static std::unique_ptr<PcapReader> open(const std::string& path, std::string* error);
  ~PcapReader();
  PcapReader(const PcapReader&) = delete;
  PcapReader& operator=(const PcapReader&) = delete;

  // Next frame; false at end of file (or on a read error: see error()).
  // The span stays valid until the next call.
  bool next(std::span<const uint8_t>* frame, uint64_t* timestamp_ns = nullptr);
  const std::string& error() const { return error_; }

 private:
  explicit PcapReader(pcap* p) : p_(p) {}
  pcap* p_;
  std::string error_;
};

class PcapWriter {
 public:
  static std::unique_ptr<PcapWriter> open(const std::string& path, std::string* error);
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;

  void write(std::span<const uint8_t> frame, uint64_t timestamp_ns = 0);

 private:
  PcapWriter(pcap* p, pcap_dumper* d) : p_(p), d_(d) {}
  pcap* p_;
  pcap_dumper* d_;
};

}  // namespace tripod
