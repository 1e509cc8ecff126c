// libFuzzer target: check_specs in tests/fuzz/targets.h (what it covers is described there).
//   tools/fuzz.sh fuzz_specs 60
#include "tests/fuzz/targets.h"

GRAFT_FUZZ_TARGET(graft::fuzz::check_specs)
