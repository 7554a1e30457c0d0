# One helper per target kind (Abseil's habit), so warnings, sanitizers and
# test registration are set in exactly one place.

set(TRIPOD_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wnull-dereference -Wimplicit-fallthrough)
if(TRIPOD_WERROR)
  list(APPEND TRIPOD_WARNINGS -Werror)
endif()

add_library(tripod_options INTERFACE)
target_compile_features(tripod_options INTERFACE cxx_std_20)
target_compile_options(tripod_options INTERFACE ${TRIPOD_WARNINGS})
target_include_directories(tripod_options INTERFACE ${PROJECT_SOURCE_DIR}/src)
if(TRIPOD_FUZZ)
  # libFuzzer is guided by coverage of the code under test: every library is
  # instrumented, not only the harness (which links with -fsanitize=fuzzer).
  target_compile_options(tripod_options INTERFACE -fsanitize=fuzzer-no-link)
endif()
if(TRIPOD_SANITIZE)
  target_compile_options(tripod_options INTERFACE -fsanitize=${TRIPOD_SANITIZE} -fno-omit-frame-pointer
                                                  -fno-sanitize-recover=all)
  target_link_options(tripod_options INTERFACE -fsanitize=${TRIPOD_SANITIZE})
endif()

# tripod_library(NAME SRCS ... DEPS ...)
function(tripod_library name)
  cmake_parse_arguments(A "" "" "SRCS;DEPS" ${ARGN})
  if(A_SRCS)
    add_library(${name} STATIC ${A_SRCS})
    target_link_libraries(${name} PUBLIC tripod_options ${A_DEPS})
  else()
    add_library(${name} INTERFACE)
    target_link_libraries(${name} INTERFACE tripod_options ${A_DEPS})
  endif()
endfunction()

# tripod_test(NAME SRCS ... DEPS ... [LABELS ...]): a GoogleTest binary registered with CTest.
function(tripod_test name)
  cmake_parse_arguments(A "" "" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT TRIPOD_BUILD_TESTS)
    return()
  endif()
  add_executable(${name} ${A_SRCS})
  target_link_libraries(${name} PRIVATE tripod_options ${A_DEPS} GTest::gtest_main GTest::gmock)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${A_LABELS};unit")
endfunction()

# tripod_benchmark(NAME SRCS ... DEPS ...): linked into the single tripod_bench
# binary, whose main prints the `figure` summary lines.
function(tripod_benchmark name)
  cmake_parse_arguments(A "" "" "SRCS;DEPS" ${ARGN})
  if(NOT TRIPOD_BUILD_BENCH)
    return()
  endif()
  add_library(${name} OBJECT ${A_SRCS})
  target_link_libraries(${name} PUBLIC tripod_options ${A_DEPS} benchmark::benchmark)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/bench)
  set_property(GLOBAL APPEND PROPERTY TRIPOD_BENCH_OBJECTS ${name})
endfunction()

# tripod_fuzz(NAME SRCS ... DEPS ... CORPUS dir): a libFuzzer target (fuzz preset only).
# Outside the fuzz preset the same source is built as a regression test that
# replays the checked-in corpus, so the corpus keeps passing in every build.
function(tripod_fuzz name)
  cmake_parse_arguments(A "" "CORPUS" "SRCS;DEPS" ${ARGN})
  if(TRIPOD_FUZZ)
    add_executable(${name} ${A_SRCS})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE tripod_options ${A_DEPS})
  elseif(TRIPOD_BUILD_TESTS)
    add_executable(${name}_replay ${A_SRCS} ${PROJECT_SOURCE_DIR}/fuzz/replay_main.cc)
    target_link_libraries(${name}_replay PRIVATE tripod_options ${A_DEPS})
    add_test(NAME ${name}.corpus_replay COMMAND ${name}_replay ${A_CORPUS})
    set_tests_properties(${name}.corpus_replay PROPERTIES LABELS "fuzz-replay;unit")
  endif()
endfunction()
