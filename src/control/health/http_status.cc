#include "control/health/http_status.h"

#include <stdexcept>
#include <string>

namespace tripod {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// What each position of "HTTP/d.d ddd" must be; '#' means a digit.
constexpr std::string_view kShape = "HTTP/#.# ###";

int parse_code(std::string_view t, size_t& used) {
  int v = 0;
  used = 0;
  while (used < t.size() && used < 3 && is_digit(t[used])) {
    v = v * 10 + (t[used] - '0');
    ++used;
  }
  return v;
}

[[noreturn]] void bad_range(std::string_view text, const char* why) {
  throw std::invalid_argument("bad status range '" + std::string(text) + "': " + why);
}

}  // namespace

HttpStatus parse_http_status_line(std::string_view data) {
  HttpStatus r;
  const size_t n = data.size() < kShape.size() ? data.size() : kShape.size();
  for (size_t i = 0; i < n; ++i) {
    const bool ok = kShape[i] == '#' ? is_digit(data[i]) : data[i] == kShape[i];
    if (!ok) {
      r.result = HttpParse::kInvalid;
      return r;
    }
  }
  if (data.size() < kHttpStatusDecisionBytes) return r;  // kNeedMore
  const char after = data[kShape.size()];
  if (after != ' ' && after != '\r' && after != '\n') {
    r.result = HttpParse::kInvalid;  // a fourth digit, or garbage
    return r;
  }
  const int code = (data[9] - '0') * 100 + (data[10] - '0') * 10 + (data[11] - '0');
  if (code < 100 || code > 599) {
    r.result = HttpParse::kInvalid;
    return r;
  }
  r.result = HttpParse::kOk;
  r.code = static_cast<uint16_t>(code);
  return r;
}

StatusRange parse_status_range(std::string_view text) {
  StatusRange r;
  size_t used = 0;
  const int lo = parse_code(text, used);
  if (used == 0) bad_range(text, "expected a status code such as 200, 200-399 or 2xx");
  if (used == 1 && text.size() == 3 && (text.substr(1) == "xx" || text.substr(1) == "XX")) {
    if (lo < 1 || lo > 5) bad_range(text, "class must be 1xx..5xx");
    r.lo = static_cast<uint16_t>(lo * 100);
    r.hi = static_cast<uint16_t>(lo * 100 + 99);
    return r;
  }
  if (used != 3) bad_range(text, "status codes have three digits");
  int hi = lo;
  std::string_view rest = text.substr(3);
  if (!rest.empty()) {
    if (rest[0] != '-') bad_range(text, "expected '-' between two codes");
    rest.remove_prefix(1);
    hi = parse_code(rest, used);
    if (used != 3 || rest.size() != 3) bad_range(text, "status codes have three digits");
  }
  if (lo < 100 || hi > 599) bad_range(text, "codes must be within 100..599");
  if (lo > hi) bad_range(text, "low end above high end");
  r.lo = static_cast<uint16_t>(lo);
  r.hi = static_cast<uint16_t>(hi);
  return r;
}

}  // namespace tripod
