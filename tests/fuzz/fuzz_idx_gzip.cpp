// libFuzzer target: runtime/idx.h read_idx on the bytes gzip-compressed into a file (the
// streaming gzread path), compared with parse_idx on the bytes.
//   tools/fuzz.sh fuzz_idx_gzip 60
#include "tests/fuzz/targets.h"

GRAFT_FUZZ_TARGET(graft::fuzz::check_idx_gzip)
