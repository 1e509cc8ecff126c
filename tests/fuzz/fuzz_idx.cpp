// libFuzzer target: runtime/idx.h parse_idx on the bytes, and read_idx on them as a file
// (plain, or gzip when the bytes are gzip: corrupt/truncated gzip framing).
//   tools/fuzz.sh fuzz_idx 60
#include "tests/fuzz/targets.h"

GRAFT_FUZZ_TARGET(graft::fuzz::check_idx)
