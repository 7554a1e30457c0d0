#include "control/health/http_status.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace tripod {
namespace {

TEST(HttpStatusLine, AcceptsCommonForms) {
  struct {
    const char* in;
    uint16_t code;
  } const ok[] = {
      {"HTTP/1.1 200 OK\r\n", 200},
      {"HTTP/1.0 503 Service Unavailable\r\n", 503},
      {"HTTP/1.1 204\r\n", 204},  // no reason phrase
      {"HTTP/1.1 301\n", 301},    // bare LF
      {"HTTP/1.1 404 ", 404},     // decided without the rest of the line
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 100},
  };
  for (const auto& c : ok) {
    const HttpStatus s = parse_http_status_line(c.in);
    EXPECT_EQ(s.result, HttpParse::kOk) << c.in;
    EXPECT_EQ(s.code, c.code) << c.in;
  }
}

TEST(HttpStatusLine, NeedsMoreOnlyForPrefixes) {
  const std::string full = "HTTP/1.1 200 OK\r\n";
  for (size_t n = 0; n < kHttpStatusDecisionBytes; ++n)
    EXPECT_EQ(parse_http_status_line(full.substr(0, n)).result, HttpParse::kNeedMore) << n;
  EXPECT_EQ(parse_http_status_line(full.substr(0, kHttpStatusDecisionBytes)).result,
            HttpParse::kOk);
}

TEST(HttpStatusLine, RejectsOthers) {
  for (const char* in : {
           "SSH-2.0-OpenSSH_9.2\r\n",
           "http/1.1 200 OK\r\n",  // the version is case-sensitive
           "HTTP/1.1 2000 OK\r\n",
           "HTTP/1.1 20 OK\r\n",
           "HTTP/1.1 099 Low\r\n",
           "HTTP/1.1 600 High\r\n",
           "HTTP/1.1  200 OK\r\n",
           "HTTP/11 200 OK\r\n",
           "HTTP/2 200\r\n",
           " HTTP/1.1 200 OK\r\n",
           "HTTP/1.1 2a0 OK\r\n",
           "HTTP/1.1 200\tOK\r\n",
           "\r\n",
           "X",
       }) {
    EXPECT_EQ(parse_http_status_line(in).result, HttpParse::kInvalid) << in;
  }
}

TEST(StatusRange, ParsesConfigText) {
  EXPECT_EQ(parse_status_range("200"), (StatusRange{200, 200}));
  EXPECT_EQ(parse_status_range("200-399"), (StatusRange{200, 399}));
  EXPECT_EQ(parse_status_range("2xx"), (StatusRange{200, 299}));
  EXPECT_EQ(parse_status_range("5XX"), (StatusRange{500, 599}));
  const StatusRange def;
  EXPECT_TRUE(def.contains(200));
  EXPECT_TRUE(def.contains(302));
  EXPECT_FALSE(def.contains(404));
  EXPECT_FALSE(def.contains(199));
}

TEST(StatusRange, RejectsBadText) {
  for (const char* in : {"", "20", "2000", "abc", "200-", "-200", "399-200", "099", "600",
                         "200-600", "6xx", "0xx", "2x", "200 ", "200-39"}) {
    EXPECT_THROW(parse_status_range(in), std::invalid_argument) << in;
  }
}

}  // namespace
}  // namespace tripod
