# Bad input, end to end (issue 6): hostile and broken requests thrown at a
# running jobd, with /healthz polled throughout. Included by
# tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
# Run it alone with: JOBD_BIN=build/jobd python3 tests/integration/test_bad_input.py
find_package(Python3 COMPONENTS Interpreter REQUIRED)

add_test(NAME integration.bad_input
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_bad_input.py)
set_tests_properties(integration.bad_input PROPERTIES
  ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 300
  # It measures /healthz latency (under a second throughout): no other test
  # may share the two cores with it.
  RUN_SERIAL TRUE
  LABELS integration)
