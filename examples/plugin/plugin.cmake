# The example task plugin: ${CMAKE_BINARY_DIR}/plugins/jobd_wordcount.so.
# Included from service/tasks.cmake, so it is built with jobd.
#
# A plugin links against nothing of jobd: the jobd executable exports
# jobd_task_* (ENABLE_EXPORTS) and the dynamic loader resolves them at load.
include_guard(GLOBAL)
add_library(jobd_wordcount MODULE ${CMAKE_CURRENT_LIST_DIR}/wordcount.c)
target_include_directories(jobd_wordcount PRIVATE ${CMAKE_SOURCE_DIR}/lib/include)
target_link_libraries(jobd_wordcount PRIVATE PkgConfig::JANSSON)
set_target_properties(jobd_wordcount PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY
                                                           ${CMAKE_BINARY_DIR}/plugins)
