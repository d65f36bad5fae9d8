# Integration tests of in-process tasks, plugins and batches
# (test_tasks.py, test_batches.py). Included by tests/CMakeLists.txt, so
# CMAKE_CURRENT_SOURCE_DIR is tests/. The plugins they load (jobd_testtasks,
# jobd_badplugin, jobd_noinit, jobd_wordcount) are built into
# ${CMAKE_BINARY_DIR}/plugins (tests/unit/task.cmake, examples/plugin/plugin.cmake).
# Run one alone with:
#   JOBD_BIN=build/jobd JOBD_PLUGIN_DIR=build/plugins python3 tests/integration/test_tasks.py
find_package(Python3 COMPONENTS Interpreter REQUIRED)

foreach(t tasks batches)
  add_test(NAME integration.${t}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_${t}.py)
  set_tests_properties(integration.${t} PROPERTIES
    ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;JOBD_PLUGIN_DIR=${CMAKE_BINARY_DIR}/plugins;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 300
    LABELS integration)
endforeach()
