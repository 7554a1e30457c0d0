// libFuzzer target for the YAML configuration. Properties checked:
//  - load_config_string never crashes and throws nothing but ConfigError
//    (yaml-cpp's own exceptions must be converted);
//  - every error message starts with the file name given;
//  - a configuration that loads can be planned against itself with no change.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/fuzz_check.h"
#include "control/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  if (size > 8192) return 0;  // bigger inputs only slow the search down
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const TripodConfig cfg = load_config_string(text, "fuzz.yaml");
    FUZZ_CHECK(!cfg.interfaces.empty());
    FUZZ_CHECK(cfg.vips.size() == cfg.gateway.vips.size());
    const ReloadPlan plan = plan_reload(cfg, cfg);
    FUZZ_CHECK(plan.empty());
  } catch (const ConfigError& e) {
    FUZZ_CHECK(std::string_view(e.what()).starts_with("fuzz.yaml:"));
  } catch (...) {
    FUZZ_CHECK(false);
  }
  return 0;
}
