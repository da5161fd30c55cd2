#pragma once
// Message type bytes of PostgreSQL protocol 3.0, named as in the documentation's "Message Formats" section
// (protocol-message-formats.html). One table per direction because several bytes mean different things each way
// ('C' is Close from a client and CommandComplete from a server; 'D' is Describe / DataRow; 'S' is Sync /
// ParameterStatus; 'd', 'c' are CopyData / CopyDone in both directions).

#include <cstdint>

namespace sluice::protocol {

enum class frontend : char {
    bind = 'B',
    close = 'C',
    copy_data = 'd',
    copy_done = 'c',
    copy_fail = 'f',
    describe = 'D',
    execute = 'E',
    flush = 'H',
    function_call = 'F',
    parse = 'P',
    password = 'p',  // also SASLInitialResponse, SASLResponse and GSSResponse: the context tells them apart
    query = 'Q',
    sync = 'S',
    terminate = 'X',
};

enum class backend : char {
    authentication = 'R',
    backend_key_data = 'K',
    bind_complete = '2',
    close_complete = '3',
    command_complete = 'C',
    copy_data = 'd',
    copy_done = 'c',
    copy_in_response = 'G',
    copy_out_response = 'H',
    copy_both_response = 'W',
    data_row = 'D',
    empty_query_response = 'I',
    error_response = 'E',
    function_call_response = 'V',
    negotiate_protocol_version = 'v',
    no_data = 'n',
    notice_response = 'N',
    notification_response = 'A',
    parameter_description = 't',
    parameter_status = 'S',
    parse_complete = '1',
    portal_suspended = 's',
    ready_for_query = 'Z',
    row_description = 'T',
};

// Authentication request codes carried in an Authentication ('R') message.
enum class auth_request : std::int32_t {
    ok = 0,
    kerberos_v5 = 2,
    cleartext_password = 3,
    md5_password = 5,
    gss = 7,
    gss_continue = 8,
    sspi = 9,
    sasl = 10,
    sasl_continue = 11,
    sasl_final = 12,
};

// Transaction status byte of ReadyForQuery.
enum class transaction_status : char {
    idle = 'I',
    in_transaction = 'T',
    failed = 'E',
};

[[nodiscard]] constexpr bool is_frontend_type(char c) noexcept {
    switch (c) {
        case 'B':
        case 'C':
        case 'd':
        case 'c':
        case 'f':
        case 'D':
        case 'E':
        case 'H':
        case 'F':
        case 'P':
        case 'p':
        case 'Q':
        case 'S':
        case 'X':
            return true;
        default:
            return false;
    }
}

[[nodiscard]] constexpr bool is_backend_type(char c) noexcept {
    switch (c) {
        case 'R':
        case 'K':
        case '2':
        case '3':
        case 'C':
        case 'd':
        case 'c':
        case 'G':
        case 'H':
        case 'W':
        case 'D':
        case 'I':
        case 'E':
        case 'V':
        case 'v':
        case 'n':
        case 'N':
        case 'A':
        case 't':
        case 'S':
        case '1':
        case 's':
        case 'Z':
        case 'T':
            return true;
        default:
            return false;
    }
}

[[nodiscard]] constexpr char to_char(frontend t) noexcept {
    return static_cast<char>(t);
}
[[nodiscard]] constexpr char to_char(backend t) noexcept {
    return static_cast<char>(t);
}

}  // namespace sluice::protocol
