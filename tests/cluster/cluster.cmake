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
# Not named integration.*: the contract recordings do not include them.
find_package(Python3 COMPONENTS Interpreter REQUIRED)

set(JOBD_CLUSTER_ENV "JOBD_BIN=$<TARGET_FILE:jobd-bin>;PYTHONDONTWRITEBYTECODE=1")
foreach(t jobs sched failures auth)
  add_test(NAME cluster.${t}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/cluster/test_cluster_${t}.py)
  set_tests_properties(cluster.${t} PROPERTIES
    ENVIRONMENT "${JOBD_CLUSTER_ENV}"
    TIMEOUT 240
    LABELS cluster)
endforeach()

add_test(NAME cluster.netns
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/cluster/test_cluster_netns.py)
set_tests_properties(cluster.netns PROPERTIES
  ENVIRONMENT "${JOBD_CLUSTER_ENV}"
  TIMEOUT 180
  RUN_SERIAL TRUE
  SKIP_RETURN_CODE 77
  LABELS cluster)
