# Unit tests of libjobd (spec, job, util). They link the library alone, not
# the service modules, so they build while the service is in flux.
add_executable(test_spec ${CMAKE_CURRENT_LIST_DIR}/test_spec.c)
target_link_libraries(test_spec PRIVATE jobd PkgConfig::CMOCKA)
# test_spec fails every allocation of a parse in turn: it wraps the allocator
# of libjobd and hands the wrappers to jansson (json_set_alloc_funcs).
target_link_options(test_spec PRIVATE -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc
                    -Wl,--wrap=free)
add_test(NAME unit.test_spec COMMAND test_spec)

add_executable(test_job ${CMAKE_CURRENT_LIST_DIR}/test_job.c)
target_link_libraries(test_job PRIVATE jobd PkgConfig::CMOCKA)
add_test(NAME unit.test_job COMMAND test_job)

add_executable(test_util ${CMAKE_CURRENT_LIST_DIR}/test_util.c)
target_link_libraries(test_util PRIVATE jobd PkgConfig::CMOCKA)
add_test(NAME unit.test_util COMMAND test_util)

set_tests_properties(unit.test_spec unit.test_job unit.test_util PROPERTIES TIMEOUT 120)
