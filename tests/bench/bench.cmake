# Benchmarks (tests/bench/): programs that measure jobd against baselines taken
# in the same run and print ratios. They are built with everything else so they
# never rot, but only the quick smoke runs are CTest tests, and they assert that
# the programs ran and printed numbers, never how fast anything was.
# run.sh does the real measurement (see tests/bench/README.md).
set(JOBD_BENCH_DIR ${CMAKE_CURRENT_SOURCE_DIR}/bench)

add_executable(spawn_baseline ${JOBD_BENCH_DIR}/spawn_baseline.c)

add_executable(jobd_load ${JOBD_BENCH_DIR}/jobd_load.c)
target_link_libraries(jobd_load PRIVATE PkgConfig::CURL PkgConfig::JANSSON)

add_executable(batch_load ${JOBD_BENCH_DIR}/batch_load.c)
target_link_libraries(batch_load PRIVATE PkgConfig::CURL PkgConfig::JANSSON)

add_executable(bare_mhd ${JOBD_BENCH_DIR}/bare_mhd.c)
target_link_libraries(bare_mhd PRIVATE PkgConfig::MHD PkgConfig::JANSSON Threads::Threads)

set_target_properties(spawn_baseline jobd_load batch_load bare_mhd PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

# BENCH_QUICK=1: 300 jobs and 2 s of wrk per server, plus 3 x 300 echo tasks
# (batch, single POSTs, batch under the process executor), 10 to 20 s in all. Without wrk
# run.sh measures the rest and exits 77, which CTest reports as skipped.
# Part (e), the worker nodes, is the test below instead (BENCH_CLUSTER=0 here).
add_test(NAME bench.smoke
  COMMAND ${CMAKE_COMMAND} -E env BENCH_QUICK=1 BENCH_NO_BUILD=1 BENCH_CLUSTER=0
          BENCH_BUILD_DIR=${CMAKE_BINARY_DIR} bash ${JOBD_BENCH_DIR}/run.sh)
set_tests_properties(bench.smoke PROPERTIES TIMEOUT 60 LABELS bench SKIP_RETURN_CODE 77)

# Part (e) in smoke mode: a coordinator and two nodes, 100 remote and 100 local
# jobs as a batch and as single POSTs, 20 latency pairs (about 2 s). Fails when
# a job did not succeed or a node ran no remote job; never looks at speed.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_test(NAME bench.cluster
  COMMAND ${Python3_EXECUTABLE} ${JOBD_BENCH_DIR}/cluster_load.py --quick
          --jobd ${CMAKE_BINARY_DIR}/jobd)
set_tests_properties(bench.cluster PROPERTIES TIMEOUT 60 LABELS bench)
