# Fault tests (tests/integration/test_faults.py): a full data disk (a tmpfs the
# test mounts, so it must run as root), SQLite busy/locked, output files deleted
# under a running job, daemons forked by jobs, closed stdout, 1 GiB of output,
# and 10,000 queued jobs across a kill -9. Included by tests/CMakeLists.txt, so
# CMAKE_CURRENT_SOURCE_DIR is tests/. Run alone with (as root):
#   JOBD_BIN=build/jobd python3 tests/integration/test_faults.py
find_package(Python3 COMPONENTS Interpreter REQUIRED)

add_test(NAME integration.faults
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_faults.py)
set_tests_properties(integration.faults PROPERTIES
  ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 600
  LABELS integration)
