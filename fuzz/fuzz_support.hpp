#pragma once
// Helpers shared by the libFuzzer targets: an invariant check that stays on in every build type (assert() vanishes
// under NDEBUG), a small deterministic generator for the choices a target derives from its input, and a splitter of
// the input into NUL- or byte-separated parts.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

namespace sluice::fuzz {

[[noreturn]] inline void check_failed(const char* condition, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, condition);
    std::abort();
}

// SplitMix64: every choice a target makes (chunk sizes, policies, read sequences) comes from its input, so a crash
// reproduces from the crash file alone.
class choices {
  public:
    explicit choices(std::uint64_t seed) noexcept : state_(seed) {}

    std::uint64_t next() noexcept {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31U);
    }
    // Uniform enough in [0, bound) for bound >= 1.
    std::uint64_t below(std::uint64_t bound) noexcept { return next() % bound; }

  private:
    std::uint64_t state_;
};

// The parts of `input` separated by `separator`; always at least one (possibly empty) part.
[[nodiscard]] inline std::vector<std::string_view> split(std::string_view input, char separator) {
    std::vector<std::string_view> parts;
    for (;;) {
        const auto at = input.find(separator);
        parts.push_back(input.substr(0, at));
        if (at == std::string_view::npos) {
            return parts;
        }
        input.remove_prefix(at + 1);
    }
}

[[nodiscard]] inline std::string_view as_text(const std::uint8_t* data, std::size_t size) noexcept {
    return {reinterpret_cast<const char*>(data), size};
}

// True when `inner` is empty or lies within `outer` (a view returned by a parser must point into its input).
[[nodiscard]] inline bool within(std::string_view inner, std::span<const char> outer) noexcept {
    if (inner.empty()) {
        return true;
    }
    const auto begin = reinterpret_cast<std::uintptr_t>(outer.data());
    const auto first = reinterpret_cast<std::uintptr_t>(inner.data());
    return first >= begin && first - begin <= outer.size() && inner.size() <= outer.size() - (first - begin);
}

}  // namespace sluice::fuzz

#define SLUICE_FUZZ_CHECK(condition) \
    ((condition) ? static_cast<void>(0) : ::sluice::fuzz::check_failed(#condition, __FILE__, __LINE__))
