// Daemon logs on stderr: text for people, or one JSON object per line for
// collectors (time, level, msg), with the message escaped as JSON.
#pragma once

#include <string>
#include <string_view>

#include "control/config.h"

namespace tripod {

void setup_logging(const LoggingConfig& cfg);
// `s` as the contents of a JSON string (quotes, backslashes and control
// characters escaped; other bytes as they are).
std::string json_escape(std::string_view s);

}  // namespace tripod
