# Integration tests: each test file starts the real jobd on an ephemeral
# loopback port and talks HTTP to it (Python 3 standard library only).
# Included by tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
# Run one alone with: JOBD_BIN=build/jobd python3 tests/integration/test_auth.py
find_package(Python3 COMPONENTS Interpreter REQUIRED)

set(JOBD_INTEGRATION_TESTS api_jobs http_errors auth concurrency recovery events)
foreach(t ${JOBD_INTEGRATION_TESTS})
  add_test(NAME integration.${t}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_${t}.py)
  set_tests_properties(integration.${t} PROPERTIES
    ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 300
    LABELS integration)
endforeach()
