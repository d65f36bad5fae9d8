# The remote executor (service/exec_remote.c): its pure helpers, and its thread
# against a fake node served by libmicrohttpd in the test process.
jobd_unit_test(test_exec_remote ${CMAKE_CURRENT_LIST_DIR}/test_exec_remote.c)
target_link_libraries(test_exec_remote PRIVATE PkgConfig::CURL PkgConfig::MHD)
set_tests_properties(unit.test_exec_remote PROPERTIES LABELS unit TIMEOUT 60)
