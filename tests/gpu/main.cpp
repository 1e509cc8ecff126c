// main of graft_gpu_tests: like gtest_main, but exits 77 (ctest's SKIP_RETURN_CODE) when every
// test that ran was skipped, so a machine without a device shows the GPU tests as skipped in
// ctest, never as passed.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (rc != 0) return rc;
  const auto* unit = ::testing::UnitTest::GetInstance();
  const int ran = unit->successful_test_count() + unit->failed_test_count() + unit->skipped_test_count();
  if (ran > 0 && unit->skipped_test_count() == ran) return 77;
  return 0;
}
