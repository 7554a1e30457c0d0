#include "common/siphash.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <vector>

#include "common/random.h"

namespace tripod {
namespace {

// Our templated SipHash-2-4 must match libsodium's (the reference
// implementation's) on every length, which pins down the shared code path
// that SipHash-1-3 uses with fewer rounds.
TEST(SipHash, MatchesLibsodiumSipHash24) {
  ASSERT_GE(sodium_init(), 0);
  SplitMix64 rng(7);
  for (size_t len = 0; len < 80; ++len) {
    unsigned char k[crypto_shorthash_KEYBYTES];
    for (auto& b : k)
      b = static_cast<unsigned char>(rng.next());
    std::vector<uint8_t> msg(len);
    for (auto& b : msg)
      b = static_cast<uint8_t>(rng.next());
    uint64_t expect = 0;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&expect), msg.data(), len, k);
    SipKey key{load_le<uint64_t>(k), load_le<uint64_t>(k + 8)};
    EXPECT_EQ((siphash<2, 4>(key, msg.data(), len)), expect) << "len=" << len;
  }
}

// Published test vector: key 00..0f, message 00..0e (15 bytes), SipHash-2-4.
TEST(SipHash, PaperVector) {
  uint8_t k[16], m[15];
  for (int i = 0; i < 16; ++i)
    k[i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 15; ++i)
    m[i] = static_cast<uint8_t>(i);
  SipKey key{load_le<uint64_t>(k), load_le<uint64_t>(k + 8)};
  EXPECT_EQ((siphash<2, 4>(key, m, sizeof m)), 0xa129ca6149be45e5ULL);
}

TEST(SipHash, KeyChangesOutput) {
  uint8_t m[40] = {};
  EXPECT_NE(siphash13(SipKey{1, 2}, m, 40), siphash13(SipKey{1, 3}, m, 40));
}

}  // namespace
}  // namespace tripod
