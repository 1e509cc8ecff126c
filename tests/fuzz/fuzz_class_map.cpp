// libFuzzer target: check_class_map in tests/fuzz/targets.h (what it covers is described there).
//   tools/fuzz.sh fuzz_class_map 60
#include "tests/fuzz/targets.h"

GRAFT_FUZZ_TARGET(graft::fuzz::check_class_map)
