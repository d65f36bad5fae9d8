# Unit tests of service/store.c (SQLite persistence). Built on their own,
# not with jobd_unit_test, so they link only the store and libjobd.
add_executable(test_store ${CMAKE_CURRENT_LIST_DIR}/test_store.c ${CMAKE_SOURCE_DIR}/service/store.c)
target_include_directories(test_store PRIVATE ${CMAKE_SOURCE_DIR}/service)
target_link_libraries(test_store PRIVATE jobd PkgConfig::SQLITE PkgConfig::CMOCKA Threads::Threads)
add_test(NAME unit.test_store COMMAND test_store)
set_tests_properties(unit.test_store PROPERTIES TIMEOUT 120 ENVIRONMENT "CMOCKA_TEST_ABORT=1")
