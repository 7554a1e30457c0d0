// `tripod status`: asks a running daemon for its status document over the
// status socket and prints it (JSON as is, or a summary for people).
#pragma once

#include <string>

namespace tripod {

// Reads the whole document; throws std::runtime_error naming the socket.
std::string fetch_status(const std::string& socket_path, int timeout_ms = 5000);
// A human summary: VIPs with backends and health, connection counts, and
// every non-zero drop counter by reason.
std::string format_status(const std::string& json_text);

}  // namespace tripod
