# The task registry and task API (lib/task.c), part of libjobd.
# Included from lib/CMakeLists.txt after add_library(jobd ...).
include_guard(GLOBAL)
target_sources(jobd PRIVATE ${CMAKE_CURRENT_LIST_DIR}/task.c)
