# sluice_warnings: an interface target every Sluice target links, so that warning flags live in one place.
add_library(sluice_warnings INTERFACE)
target_compile_options(sluice_warnings INTERFACE -Wall -Wextra -Wpedantic -Wnon-virtual-dtor -Wimplicit-fallthrough)
# -Wshadow=local is GCC's spelling; Clang (the fuzz build) has no equivalent that is not stricter.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(sluice_warnings INTERFACE -Wshadow=local)
endif()
# GCC 12 reports -Wrestrict, -Wstringop-overflow and -Warray-bounds false positives inside libstdc++ for `"literal" + std::string&&` at -O2
# (GCC bug 105329); the warning says nothing about our code there.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(sluice_warnings INTERFACE -Wno-restrict -Wno-stringop-overflow -Wno-array-bounds)
endif()
if(SLUICE_WERROR)
  target_compile_options(sluice_warnings INTERFACE -Werror)
endif()
if(SLUICE_SANITIZE)
  if(SLUICE_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # Asio uses atomic_thread_fence, which GCC's -Wtsan flags as unsupported by TSan; the fences are not the
    # synchronisation our code relies on.
    target_compile_options(sluice_warnings INTERFACE -Wno-tsan)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC's manual (Instrumentation Options): "sanitizers tend to increase the rate of false positive warnings, most
    # notably those around -Wmaybe-uninitialized". GCC 12 reports one inside libstdc++'s std::regex (std::function
    # in _State) with ASan; the sanitizers check actual uses of uninitialized state at run time instead.
    # At -O1, GCC 12 also reports Asio's awaitable frames (class-specific operator new/delete of a coroutine) as
    # -Wmismatched-new-delete (GCC bug 109224: sized class delete after unsized new); Release keeps the warning.
    target_compile_options(sluice_warnings INTERFACE -Wno-maybe-uninitialized -Wno-mismatched-new-delete)
  endif()
  # -fno-sanitize-recover=all: a UBSan report aborts the test instead of scrolling past in its output.
  target_compile_options(sluice_warnings INTERFACE -fsanitize=${SLUICE_SANITIZE} -fno-sanitize-recover=all
                                                   -fno-omit-frame-pointer)
  target_link_options(sluice_warnings INTERFACE -fsanitize=${SLUICE_SANITIZE} -fno-sanitize-recover=all)
endif()
if(SLUICE_BUILD_FUZZ)
  # Coverage instrumentation for libFuzzer in every Sluice object; the fuzz targets add -fsanitize=fuzzer at link time.
  target_compile_options(sluice_warnings INTERFACE -fsanitize=fuzzer-no-link)
endif()
