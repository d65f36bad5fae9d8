# The client library of jobd (jobd/client.h): libcurl + jansson over the REST
# API. Included from lib/CMakeLists.txt. Installed with its header and a
# pkg-config file (jobd-client.pc); the example program is built with it.
add_library(jobd_client STATIC ${CMAKE_CURRENT_LIST_DIR}/client.c)
target_include_directories(jobd_client PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_LIST_DIR}/include>
  $<INSTALL_INTERFACE:include>)
target_link_libraries(jobd_client PUBLIC jobd PkgConfig::CURL Threads::Threads)
set_target_properties(jobd_client PROPERTIES POSITION_INDEPENDENT_CODE ON)

# A 20-line program using the library, built so that the README's example compiles.
add_executable(example_client ${CMAKE_SOURCE_DIR}/examples/client/example.c)
target_link_libraries(example_client PRIVATE jobd_client)

# Install: the public headers client.h needs (spec.h, job.h), both static
# libraries (jobd_client uses libjobd's spec codec), and jobd-client.pc.
include(GNUInstallDirs)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/include/jobd/client.h
              ${CMAKE_CURRENT_LIST_DIR}/include/jobd/spec.h
              ${CMAKE_CURRENT_LIST_DIR}/include/jobd/job.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/jobd)
install(TARGETS jobd_client jobd ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The template is written here (configure time) so this file stays self-contained.
# The libraries are static, so their dependencies are public Requires.
# prefix is found from the .pc file's own place, so `cmake --install --prefix P` works.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(JOBD_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  string(REGEX REPLACE "[^/]+" ".." JOBD_PC_UP "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(JOBD_PC_PREFIX "\${pcfiledir}/${JOBD_PC_UP}")
endif()
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/jobd-client.pc.in [=[
prefix=@JOBD_PC_PREFIX@
libdir=${prefix}/@CMAKE_INSTALL_LIBDIR@
includedir=${prefix}/@CMAKE_INSTALL_INCLUDEDIR@

Name: jobd-client
Description: C client library of the jobd job orchestration service
Version: @PROJECT_VERSION@
Requires: libcurl jansson
Libs: -L${libdir} -ljobd_client -ljobd -pthread
Cflags: -I${includedir}
]=])
configure_file(${CMAKE_CURRENT_BINARY_DIR}/jobd-client.pc.in
               ${CMAKE_CURRENT_BINARY_DIR}/jobd-client.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/jobd-client.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
