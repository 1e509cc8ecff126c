// libFuzzer target: check_head_spec in tests/fuzz/targets.h (what it covers is described there).
//   tools/fuzz.sh fuzz_head_spec 60
#include "tests/fuzz/targets.h"

GRAFT_FUZZ_TARGET(graft::fuzz::check_head_spec)
