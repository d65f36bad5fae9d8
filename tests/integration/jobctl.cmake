# Integration tests of jobctl and the client library against the real jobd.
# Included by tests/CMakeLists.txt. Run alone with:
#   JOBD_BIN=build/jobd JOBCTL_BIN=build/jobctl python3 tests/integration/test_jobctl.py
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_test(NAME integration.jobctl
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_jobctl.py)
set_tests_properties(integration.jobctl PROPERTIES
  ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;JOBCTL_BIN=$<TARGET_FILE:jobctl>;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 600
  LABELS integration)

# The worker-node commands (nodes, node, drain, nodes rm) and remote jobs
# from jobctl, against a jobd with a cluster token. Run alone with:
#   JOBD_BIN=build/jobd JOBCTL_BIN=build/jobctl python3 tests/integration/test_jobctl_nodes.py
add_test(NAME integration.jobctl_nodes
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_jobctl_nodes.py)
set_tests_properties(integration.jobctl_nodes PROPERTIES
  ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;JOBCTL_BIN=$<TARGET_FILE:jobctl>;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 300
  LABELS integration)
