# libFuzzer targets (clang only), built when JOBD_FUZZ is ON. Included from
# the top-level CMakeLists.txt after lib/ and service/, so the libraries
# exist: they get coverage instrumentation and the sanitizers here, and each
# target links them with the libFuzzer runtime. tests/fuzz/run.sh builds and
# runs them; fuzz_checks.c is also compiled into tests/unit/test_fuzz_regressions.
include_guard(GLOBAL)

if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "JOBD_FUZZ needs clang (-DCMAKE_C_COMPILER=clang)")
endif()

set(JOBD_FUZZ_SAN -fsanitize=address,undefined -fno-sanitize-recover=undefined
                  -fno-omit-frame-pointer)
foreach(lib jobd jobd_service)
  target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link ${JOBD_FUZZ_SAN})
  # Whatever else links them (jobd, jobctl) needs the sanitizer runtimes too.
  target_link_options(${lib} INTERFACE -fsanitize=address,undefined)
endforeach()

set(JOBD_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(jobd_fuzz_checks STATIC ${JOBD_FUZZ_DIR}/fuzz_checks.c)
# The checks themselves are not instrumented for coverage: their loops over the
# model are not code under test, and would only distract the fuzzer.
target_compile_options(jobd_fuzz_checks PRIVATE ${JOBD_FUZZ_SAN})
target_link_libraries(jobd_fuzz_checks PUBLIC jobd_service)
target_include_directories(jobd_fuzz_checks PUBLIC ${JOBD_FUZZ_DIR})

set(JOBD_FUZZ_TARGETS fuzz_spec fuzz_batch fuzz_route fuzz_output fuzz_node)
foreach(t ${JOBD_FUZZ_TARGETS})
  add_executable(${t} ${JOBD_FUZZ_DIR}/${t}.c)
  target_compile_options(${t} PRIVATE -fsanitize=fuzzer ${JOBD_FUZZ_SAN})
  target_link_options(${t} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${t} PRIVATE jobd_fuzz_checks)
  set_target_properties(${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
endforeach()
add_custom_target(fuzz-targets DEPENDS ${JOBD_FUZZ_TARGETS})
