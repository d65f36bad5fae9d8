# Tasks: the registry and task API (lib/task.c), the builtins
# (service/tasks_builtin.c), the plugin loader (service/plugin.c), and the
# test-only plugins in tests/plugins/.

# Test plugins, next to the example one in ${CMAKE_BINARY_DIR}/plugins.
foreach(p testtasks badplugin noinit)
  set(t jobd_${p})
  add_library(${t} MODULE ${CMAKE_SOURCE_DIR}/tests/plugins/${p}.c)
  target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/lib/include)
  target_link_libraries(${t} PRIVATE PkgConfig::JANSSON Threads::Threads)
  set_target_properties(${t} PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY
                                                  ${CMAKE_BINARY_DIR}/plugins)
endforeach()

add_executable(test_task ${CMAKE_CURRENT_LIST_DIR}/test_task.c
               ${CMAKE_SOURCE_DIR}/service/tasks_builtin.c ${CMAKE_SOURCE_DIR}/service/plugin.c)
target_include_directories(test_task PRIVATE ${CMAKE_SOURCE_DIR}/service ${CMAKE_SOURCE_DIR}/lib)
target_link_libraries(test_task PRIVATE jobd PkgConfig::CMOCKA PkgConfig::CURL Threads::Threads
                                        ${CMAKE_DL_LIBS})
target_compile_definitions(test_task PRIVATE PLUGIN_DIR="${CMAKE_BINARY_DIR}/plugins")
# The plugins resolve jobd_task_register and friends from the test binary.
set_target_properties(test_task PROPERTIES ENABLE_EXPORTS ON)
add_dependencies(test_task jobd_wordcount jobd_testtasks jobd_badplugin jobd_noinit)
add_test(NAME unit.test_task COMMAND test_task)
set_tests_properties(unit.test_task PROPERTIES TIMEOUT 120 LABELS unit
                                               ENVIRONMENT "CMOCKA_TEST_ABORT=1")
