# The fuzz targets' checks (tests/fuzz/fuzz_checks.c) run without libFuzzer on
# every seed of tests/fuzz/corpus/ and on each input that once failed them.
jobd_unit_test(test_fuzz_regressions ${CMAKE_CURRENT_LIST_DIR}/test_fuzz_regressions.c
               ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_checks.c)
target_include_directories(test_fuzz_regressions PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz)
target_compile_definitions(test_fuzz_regressions
                           PRIVATE JOBD_FUZZ_CORPUS="${CMAKE_SOURCE_DIR}/tests/fuzz/corpus")
set_tests_properties(unit.test_fuzz_regressions PROPERTIES LABELS unit)
