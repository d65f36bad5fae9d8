# Unit tests of jobctl (client/cli.c, client/format.c: parsing, help, output
# formatting) and of the client library without a server (lib/client.c).
# Included by tests/CMakeLists.txt.
add_executable(test_jobctl_cli ${CMAKE_CURRENT_LIST_DIR}/test_jobctl_cli.c
               ${CMAKE_SOURCE_DIR}/client/cli.c)
add_executable(test_jobctl_format ${CMAKE_CURRENT_LIST_DIR}/test_jobctl_format.c
               ${CMAKE_SOURCE_DIR}/client/format.c)
add_executable(test_jobctl_lib ${CMAKE_CURRENT_LIST_DIR}/test_jobctl_lib.c)
foreach(t test_jobctl_cli test_jobctl_format test_jobctl_lib)
  target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/client)
  target_link_libraries(${t} PRIVATE jobd_client PkgConfig::CMOCKA)
  add_test(NAME unit.${t} COMMAND ${t})
  set_tests_properties(unit.${t} PROPERTIES TIMEOUT 60 LABELS unit)
endforeach()
