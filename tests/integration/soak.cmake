# The soak test (tests/soak/soak.py, issue 6 "Load and soak"): wrk on GET
# endpoints plus a steady stream of submissions, waits and follows against one
# jobd, then checks every job's final state, zombies, descriptors and RSS.
# Lives here because tests/CMakeLists.txt includes tests/integration/*.cmake;
# labelled "soak" (not "integration"), and not named integration.*, so the
# contract recordings skip it. This is the short version (30 s of load after a
# 6 s warm-up, about 45 s in all); it runs alone (RUN_SERIAL) since it loads
# both cores. The ten-minute run is `make soak`, or:
#   JOBD_BIN=build/jobd SOAK_SECONDS=600 python3 tests/soak/soak.py
# Without wrk it exits 77, which CTest reports as skipped.
find_package(Python3 COMPONENTS Interpreter REQUIRED)

add_test(NAME soak.short
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/soak/soak.py)
set_tests_properties(soak.short PROPERTIES
  ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;SOAK_SECONDS=30;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 300
  RUN_SERIAL TRUE
  SKIP_RETURN_CODE 77
  LABELS soak)
