# In-process tasks of the service: the builtins (sleep, echo, http) and the
# plugin loader, plus the example plugin. Included at the end of
# service/CMakeLists.txt (jobd_service and jobd-bin exist by then).
include_guard(GLOBAL)
target_sources(jobd_service PRIVATE ${CMAKE_CURRENT_LIST_DIR}/tasks_builtin.c
                                    ${CMAKE_CURRENT_LIST_DIR}/plugin.c)
target_link_libraries(jobd_service PUBLIC PkgConfig::CURL ${CMAKE_DL_LIBS})
# Plugins resolve jobd_task_* from the executable.
set_target_properties(jobd-bin PROPERTIES ENABLE_EXPORTS ON)

include(${CMAKE_SOURCE_DIR}/examples/plugin/plugin.cmake)
