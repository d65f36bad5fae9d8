# Process executor and output files (service/exec_process.c, service/output.c).
# Built from their sources rather than jobd_service, so these tests link only what they test.
add_executable(test_output ${CMAKE_CURRENT_LIST_DIR}/test_output.c
               ${CMAKE_SOURCE_DIR}/service/output.c)
target_include_directories(test_output PRIVATE ${CMAKE_SOURCE_DIR}/service)
target_link_libraries(test_output PRIVATE jobd PkgConfig::CMOCKA Threads::Threads)
add_test(NAME unit.test_output COMMAND test_output)
set_tests_properties(unit.test_output PROPERTIES TIMEOUT 120 ENVIRONMENT "CMOCKA_TEST_ABORT=1")

add_executable(test_exec_process ${CMAKE_CURRENT_LIST_DIR}/test_exec_process.c
               ${CMAKE_SOURCE_DIR}/service/exec_process.c ${CMAKE_SOURCE_DIR}/service/output.c)
# Task specs need the task API (lib/task.c) in libjobd. Until lib/CMakeLists.txt includes
# lib/task.cmake itself, include it here; it has an include guard, so this is harmless after.
include(${CMAKE_SOURCE_DIR}/lib/task.cmake)
target_include_directories(test_exec_process PRIVATE ${CMAKE_SOURCE_DIR}/service)
target_link_libraries(test_exec_process PRIVATE jobd PkgConfig::CMOCKA Threads::Threads)
add_test(NAME unit.test_exec_process COMMAND test_exec_process)
set_tests_properties(unit.test_exec_process PROPERTIES TIMEOUT 120 ENVIRONMENT "CMOCKA_TEST_ABORT=1")
