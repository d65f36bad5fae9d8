# Integration tests of --run-as (as root; skipped otherwise) and HTTPS with a
# self-signed certificate (needs the openssl command). Included by
# tests/CMakeLists.txt. Run alone with:
#   JOBD_BIN=build/jobd JOBCTL_BIN=build/jobctl python3 tests/integration/test_security.py
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_test(NAME integration.security
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_security.py)
set_tests_properties(integration.security PROPERTIES
  ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;JOBCTL_BIN=$<TARGET_FILE:jobctl>;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 300
  LABELS integration)
