#pragma once
// Field reader over a message body. Errors are sticky: once a read runs past the end, every later read returns an
// empty value and ok() is false, so parsers can read all fields and check once. Never reads outside the span.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "sluice/protocol/frame.hpp"

namespace sluice::protocol {

class message_reader {
  public:
    explicit message_reader(std::span<const char> body) noexcept : data_(body) {}

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] bool at_end() const noexcept { return pos_ == data_.size(); }
    [[nodiscard]] std::size_t remaining() const noexcept { return data_.size() - pos_; }
    [[nodiscard]] std::size_t position() const noexcept { return pos_; }

    std::uint8_t u8() noexcept {
        if (!need(1))
            return 0;
        return static_cast<std::uint8_t>(data_[pos_++]);
    }
    std::int16_t i16() noexcept {
        if (!need(2))
            return 0;
        auto v = static_cast<std::int16_t>(load_u16(data_.data() + pos_));
        pos_ += 2;
        return v;
    }
    std::int32_t i32() noexcept {
        if (!need(4))
            return 0;
        auto v = static_cast<std::int32_t>(load_u32(data_.data() + pos_));
        pos_ += 4;
        return v;
    }
    // A NUL-terminated String; the view excludes the terminator.
    std::string_view cstring() noexcept {
        if (!ok_)
            return {};
        for (std::size_t i = pos_; i < data_.size(); ++i) {
            if (data_[i] == '\0') {
                std::string_view s(data_.data() + pos_, i - pos_);
                pos_ = i + 1;
                return s;
            }
        }
        ok_ = false;
        return {};
    }
    std::span<const char> bytes(std::size_t n) noexcept {
        if (!need(n))
            return {};
        auto s = data_.subspan(pos_, n);
        pos_ += n;
        return s;
    }
    std::span<const char> rest() noexcept {
        if (!ok_)
            return {};
        auto s = data_.subspan(pos_);
        pos_ = data_.size();
        return s;
    }

  private:
    bool need(std::size_t n) noexcept {
        if (!ok_ || data_.size() - pos_ < n) {
            ok_ = false;
            return false;
        }
        return true;
    }

    std::span<const char> data_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

}  // namespace sluice::protocol
