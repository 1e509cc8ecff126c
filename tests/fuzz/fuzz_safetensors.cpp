// libFuzzer target: runtime/safetensors.h parse_safetensors + to_floats on arbitrary bytes.
//   tools/fuzz.sh fuzz_safetensors 60
#include "tests/fuzz/targets.h"

GRAFT_FUZZ_TARGET(graft::fuzz::check_safetensors)
