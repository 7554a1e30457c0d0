// The only bytes the health checker reads from the outside: the start of an
// HTTP/1.x response. It needs the status code and nothing else, so it stops
// as soon as the code is known (13 bytes) and never looks at headers or body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tripod {

// "HTTP/1.1 200 " — version, SP, three digits and the byte after them.
inline constexpr size_t kHttpStatusDecisionBytes = 13;

enum class HttpParse : uint8_t { kNeedMore, kOk, kInvalid };

struct HttpStatus {
  HttpParse result = HttpParse::kNeedMore;
  uint16_t code = 0;  // 100..599 when kOk
};

// Parses the start of a response: "HTTP/" DIGIT "." DIGIT SP 3DIGIT, then SP,
// CR or LF (RFC 9112 §4; a bare LF and a missing reason phrase are accepted
// because real servers send them). kNeedMore only while `data` is a proper
// prefix of something valid; the verdict never changes when bytes are
// appended.
HttpStatus parse_http_status_line(std::string_view data);

// Inclusive range of status codes counted as healthy.
struct StatusRange {
  uint16_t lo = 200;
  uint16_t hi = 399;
  bool contains(uint16_t code) const { return code >= lo && code <= hi; }
  friend bool operator==(const StatusRange&, const StatusRange&) = default;
};

// Config text: "200", "200-299" or "2xx" (codes within 100..599, lo <= hi).
// Throws std::invalid_argument naming the problem.
StatusRange parse_status_range(std::string_view text);

}  // namespace tripod
