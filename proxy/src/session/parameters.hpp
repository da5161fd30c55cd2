#pragma once
// Session parameters that PostgreSQL reports with ParameterStatus and that differ per client: Sluice records each
// client's values (from its StartupMessage and from ParameterStatus seen while it holds a server) and each server's,
// and on assignment sends the SETs that make the server match the client (protocol-flow.html, "Asynchronous
// Operations": the server reports these whenever they change).

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sluice::session {

// The tracked parameters, in the order SETs are issued.
inline constexpr std::array<std::string_view, 6> tracked_parameter_names = {
    "client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings", "application_name",
};

// Index of a tracked parameter, matching names case-insensitively as PostgreSQL does; nullopt if not tracked.
[[nodiscard]] std::optional<std::size_t> tracked_parameter_index(std::string_view name) noexcept;

// Every client holds one for its whole life, so it is packed for idle memory per client: one heap block (the values'
// lengths, then their bytes) instead of six optional<string>s (240 bytes), and copies share it (clients with the same
// values can hold one block: pool::share_login_parameters). A block never changes: values change rarely (login,
// ParameterStatus), so set() builds a new block; reads are views into it, valid until the next set() or assignment.
// Copies may live on different threads: the block's reference count is atomic.
class parameter_set {
  public:
    parameter_set() noexcept = default;
    parameter_set(const parameter_set& other) noexcept;
    parameter_set& operator=(const parameter_set& other) noexcept;
    parameter_set(parameter_set&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
    parameter_set& operator=(parameter_set&& other) noexcept;
    ~parameter_set() { release(); }

    // Returns true if `name` is tracked (and so was stored). Setting the value a parameter already has keeps the
    // block, shared or not.
    bool set(std::string_view name, std::string_view value);
    // The same by index (< tracked_parameter_names.size()), for callers that already looked the name up.
    void set(std::size_t index, std::string_view value);
    [[nodiscard]] std::optional<std::string_view> get(std::size_t index) const noexcept;
    [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const noexcept;
    // Every tracked value, in index order, from one walk of the block (get(i) walks from the start each time).
    using values_type = std::array<std::optional<std::string_view>, tracked_parameter_names.size()>;
    [[nodiscard]] values_type values() const noexcept;
    // The same parameters set, to the same values.
    [[nodiscard]] bool operator==(const parameter_set& other) const noexcept;
    [[nodiscard]] bool shares_block_with(const parameter_set& other) const noexcept {
        return block_ != nullptr && block_ == other.block_;
    }

  private:
    // 16-bit lengths keep the block of a usual client within 56 bytes (one 64-byte heap chunk) with its reference
    // count. Values are far shorter: a startup packet has at most 10,000 bytes, and PostgreSQL reports these
    // parameters in a few dozen (application_name is cut to 63).
    using length_type = std::uint16_t;
    static constexpr length_type absent = 0xffff;
    static constexpr std::size_t lengths_offset = sizeof(std::atomic<std::uint32_t>);
    static constexpr std::size_t header_bytes = lengths_offset + tracked_parameter_names.size() * sizeof(length_type);
    [[nodiscard]] length_type length(std::size_t index) const noexcept;
    [[nodiscard]] std::size_t total_bytes() const noexcept;
    [[nodiscard]] std::atomic<std::uint32_t>& references() const noexcept;
    void release() noexcept;

    // Null when no value is set; otherwise the reference count, a length per tracked parameter (`absent` when not
    // set), then the values in index order.
    char* block_ = nullptr;
};

// Appends to `sql` the SET statements that turn `server` into `client` for every parameter the client has a value
// for and the server's differs. Values are quoted as string literals. Returns true if anything was appended.
bool append_parameter_sync(const parameter_set& client, const parameter_set& server, std::string& sql);

// The spelling PostgreSQL reports for a tracked parameter set to `value` (e.g. client_encoding utf8 -> UTF8, DateStyle
// iso -> "ISO, MDY", TimeZone utc -> UTC), so that a client sees at login what a direct connection shows.
// `current` is the server's value, for the parts `value` leaves out (the DateStyle order). Values it does not
// recognise come back unchanged; the server's report after the first sync corrects them.
[[nodiscard]] std::string canonical_value(std::string_view name, std::string_view value, std::string_view current);

// Quotes a value as an escape string literal E'...' (quotes and backslashes doubled), which the server reads the same
// whether standard_conforming_strings is on or off.
void append_quoted_literal(std::string& out, std::string_view value);

}  // namespace sluice::session
