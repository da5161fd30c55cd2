# sluice_warnings: an interface target every Sluice target links, so that warning flags live in one place.
add_library(sluice_warnings INTERFACE)
target_compile_options(sluice_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor
                                                 -Wimplicit-fallthrough)
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
  target_compile_options(sluice_warnings INTERFACE -fsanitize=${SLUICE_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(sluice_warnings INTERFACE -fsanitize=${SLUICE_SANITIZE})
endif()
