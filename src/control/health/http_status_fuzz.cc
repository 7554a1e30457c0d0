// libFuzzer target for the bytes a health-checked server sends back, and for
// the status-range config text. Properties checked:
//  - the status-line parser never reads past its input and decides within
//    kHttpStatusDecisionBytes: kNeedMore only for shorter inputs;
//  - kOk carries a code in 100..599 equal to the digits at offsets 9..11;
//  - the verdict is stable when bytes are appended and every prefix of an
//    accepted or rejected input either needs more or agrees (the checker
//    parses a response that arrives in pieces);
//  - parse_status_range throws only std::invalid_argument and returns
//    ranges within 100..599 with lo <= hi.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/fuzz_check.h"
#include "control/health/http_status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  if (size > 4096) return 0;
  // A copy of exactly `size` bytes, so ASan catches any read past the end.
  const std::vector<char> buf(data, data + size);
  const std::string_view in(buf.data(), buf.size());

  const HttpStatus s = parse_http_status_line(in);
  if (s.result == HttpParse::kNeedMore) FUZZ_CHECK(size < kHttpStatusDecisionBytes);
  if (s.result == HttpParse::kOk) {
    FUZZ_CHECK(s.code >= 100 && s.code <= 599);
    FUZZ_CHECK(size >= kHttpStatusDecisionBytes);
    const int digits = (in[9] - '0') * 100 + (in[10] - '0') * 10 + (in[11] - '0');
    FUZZ_CHECK(digits == s.code);
  }
  for (size_t n = 0; n <= size && n <= 2 * kHttpStatusDecisionBytes; ++n) {
    const HttpStatus p = parse_http_status_line(in.substr(0, n));
    FUZZ_CHECK(p.result == HttpParse::kNeedMore || (p.result == s.result && p.code == s.code));
  }
  std::string longer(in);
  longer += "HTTP/1.1 200 OK\r\n";
  const HttpStatus l = parse_http_status_line(longer);
  if (s.result != HttpParse::kNeedMore) FUZZ_CHECK(l.result == s.result && l.code == s.code);

  try {
    const StatusRange r = parse_status_range(in);
    FUZZ_CHECK(r.lo >= 100 && r.hi <= 599 && r.lo <= r.hi);
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(std::strlen(e.what()) > 0);
  }
  return 0;
}
