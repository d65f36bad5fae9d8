# Cluster tests (issue 4, worker nodes): each test file starts one coordinator
# and a few worker nodes as jobd processes on ephemeral loopback ports
# (tests/cluster/clustertest.py, built on tests/integration/jobdtest.py).
# Included by tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
# Run them with `ctest -L cluster`, one alone with:
#   JOBD_BIN=build/jobd python3 tests/cluster/test_cluster_jobs.py
# The files start their own processes on their own ports and may run in
# parallel; the network partition test (netns) adds a network namespace and a
# veth pair with fixed addresses (10.77.0.0/24), so it runs alone, and exits
# 77 (skipped) unless it runs as root with a working `ip netns`.
#
# Contract: the answers these tests get from coordinators and nodes (those to
# paths openapi/openapi.yaml documents) are recorded in <build>/cluster-recordings
# and checked against the openapi by cluster.contract, after the others. The
# tests are not named integration.*, so contract.integration does not wait for
# them; cluster.contract does.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
find_program(JOBD_NODE node)

set(JOBD_CLUSTER_RECORDINGS ${CMAKE_BINARY_DIR}/cluster-recordings)
set(JOBD_CLUSTER_ENV "JOBD_BIN=$<TARGET_FILE:jobd-bin>;PYTHONDONTWRITEBYTECODE=1")
set(JOBD_CLUSTER_TESTS jobs sched failures auth netns)

add_test(NAME cluster.recordings_reset COMMAND ${CMAKE_COMMAND} -E rm -rf ${JOBD_CLUSTER_RECORDINGS})
set_tests_properties(cluster.recordings_reset PROPERTIES FIXTURES_SETUP cluster_recordings LABELS cluster)

foreach(t ${JOBD_CLUSTER_TESTS})
  add_test(NAME cluster.${t}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/cluster/test_cluster_${t}.py)
  set_tests_properties(cluster.${t} PROPERTIES
    ENVIRONMENT "${JOBD_CLUSTER_ENV};JOBD_RECORD=${JOBD_CLUSTER_RECORDINGS}/cluster.${t}.jsonl"
    FIXTURES_REQUIRED cluster_recordings
    TIMEOUT 240
    LABELS cluster)
endforeach()
set_tests_properties(cluster.netns PROPERTIES
  TIMEOUT 180
  RUN_SERIAL TRUE
  SKIP_RETURN_CODE 77)

if(JOBD_NODE)
  list(TRANSFORM JOBD_CLUSTER_TESTS PREPEND "cluster." OUTPUT_VARIABLE JOBD_CLUSTER_RECORDED)
  add_test(NAME cluster.contract
           COMMAND ${CMAKE_COMMAND} -DNODE=${JOBD_NODE} -DDIR=${JOBD_CLUSTER_RECORDINGS}
                   -DVALIDATE=${CMAKE_CURRENT_SOURCE_DIR}/contract/validate.mjs
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/contract/validate_dir.cmake)
  set_tests_properties(cluster.contract PROPERTIES
    DEPENDS "${JOBD_CLUSTER_RECORDED}"
    FIXTURES_REQUIRED "contract_npm;cluster_recordings"
    ENVIRONMENT "CONTRACT_NODE_PREFIX=${CMAKE_BINARY_DIR}/contract-npm"
    LABELS "cluster;contract"
    TIMEOUT 180)
endif()
