// ThreadSanitizer's built-in suppressions for unit_bridge (TSan calls this hook at start-up; other builds ignore it).
//
// Only one entry, a known false positive: an exception crossing threads (worker -> coroutine -> std::future or
// async_to_sync's caller) is reference-counted by std::exception_ptr inside libstdc++.so, which is not instrumented.
// TSan then misses the atomic decrement that orders the last reader before the free, and reports the free on the
// event-loop thread (where Asio's handlers drop their copies) as racing with the catching thread's read.

extern "C" const char* __tsan_default_suppressions();

extern "C" const char* __tsan_default_suppressions() {
    return "race:std::__exception_ptr::exception_ptr::_M_release\n";
}
