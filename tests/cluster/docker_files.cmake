# Cluster files (docker/ and tests/cluster/local_cluster.sh): static checks
# that need no Docker engine. Included by tests/CMakeLists.txt, so
# CMAKE_CURRENT_SOURCE_DIR is tests/. Run it alone with:
#   python3 tests/cluster/check_docker_files.py --jobd build/jobd --root .
find_package(Python3 COMPONENTS Interpreter REQUIRED)

add_test(NAME cluster.docker_files
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/cluster/check_docker_files.py
                 --jobd $<TARGET_FILE:jobd-bin> --root ${CMAKE_SOURCE_DIR})
set_tests_properties(cluster.docker_files PROPERTIES
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 60
  LABELS cluster)

# local_cluster.sh stays shellcheck-clean (where shellcheck is installed).
find_program(JOBD_SHELLCHECK shellcheck)
if(JOBD_SHELLCHECK)
  add_test(NAME cluster.local_cluster_shellcheck
           COMMAND ${JOBD_SHELLCHECK} ${CMAKE_CURRENT_SOURCE_DIR}/cluster/local_cluster.sh)
  set_tests_properties(cluster.local_cluster_shellcheck PROPERTIES TIMEOUT 60 LABELS cluster)
endif()

# ... and actually runs: start, a remote job through it, status, stop.
add_test(NAME cluster.local_script
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/cluster/test_local_script.py)
set_tests_properties(cluster.local_script PROPERTIES
  ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 120
  LABELS cluster)
