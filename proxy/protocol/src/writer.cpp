#include "sluice/protocol/writer.hpp"

namespace sluice::protocol {

namespace {
void write_auth_code(std::string& out, auth_request code) {
    message_writer w(out, to_char(backend::authentication));
    w.i32(static_cast<std::int32_t>(code));
    w.finish();
}
void write_empty(std::string& out, char type) {
    message_writer w(out, type);
    w.finish();
}
}  // namespace

void write_authentication_ok(std::string& out) {
    write_auth_code(out, auth_request::ok);
}
void write_authentication_cleartext(std::string& out) {
    write_auth_code(out, auth_request::cleartext_password);
}

void write_authentication_md5(std::string& out, std::span<const std::uint8_t, 4> salt) {
    message_writer w(out, to_char(backend::authentication));
    w.i32(static_cast<std::int32_t>(auth_request::md5_password));
    for (auto b : salt)
        w.u8(b);
    w.finish();
}

void write_authentication_sasl(std::string& out, std::initializer_list<std::string_view> mechanisms) {
    message_writer w(out, to_char(backend::authentication));
    w.i32(static_cast<std::int32_t>(auth_request::sasl));
    for (auto m : mechanisms)
        w.cstring(m);
    w.u8(0);
    w.finish();
}

void write_authentication_sasl_continue(std::string& out, std::string_view data) {
    message_writer w(out, to_char(backend::authentication));
    w.i32(static_cast<std::int32_t>(auth_request::sasl_continue)).bytes(data);
    w.finish();
}

void write_authentication_sasl_final(std::string& out, std::string_view data) {
    message_writer w(out, to_char(backend::authentication));
    w.i32(static_cast<std::int32_t>(auth_request::sasl_final)).bytes(data);
    w.finish();
}

void write_parameter_status(std::string& out, std::string_view name, std::string_view value) {
    message_writer w(out, to_char(backend::parameter_status));
    w.cstring(name).cstring(value);
    w.finish();
}

void write_backend_key_data(std::string& out, std::uint32_t process_id, std::uint32_t secret_key) {
    message_writer w(out, to_char(backend::backend_key_data));
    w.i32(static_cast<std::int32_t>(process_id)).i32(static_cast<std::int32_t>(secret_key));
    w.finish();
}

void write_ready_for_query(std::string& out, transaction_status status) {
    message_writer w(out, to_char(backend::ready_for_query));
    w.u8(static_cast<std::uint8_t>(status));
    w.finish();
}

void write_command_complete(std::string& out, std::string_view tag) {
    message_writer w(out, to_char(backend::command_complete));
    w.cstring(tag);
    w.finish();
}

void write_empty_query_response(std::string& out) {
    write_empty(out, to_char(backend::empty_query_response));
}
void write_parse_complete(std::string& out) {
    write_empty(out, to_char(backend::parse_complete));
}
void write_close_complete(std::string& out) {
    write_empty(out, to_char(backend::close_complete));
}
void write_bind_complete(std::string& out) {
    write_empty(out, to_char(backend::bind_complete));
}
void write_no_data(std::string& out) {
    write_empty(out, to_char(backend::no_data));
}

void write_negotiate_protocol_version(std::string& out, std::int32_t newest_minor,
                                      std::span<const std::string> unrecognized_options) {
    message_writer w(out, to_char(backend::negotiate_protocol_version));
    w.i32(newest_minor).i32(static_cast<std::int32_t>(unrecognized_options.size()));
    for (const auto& o : unrecognized_options)
        w.cstring(o);
    w.finish();
}

void write_row_description(std::string& out, std::span<const column> columns) {
    message_writer w(out, to_char(backend::row_description));
    w.i16(static_cast<std::int16_t>(columns.size()));
    for (const auto& c : columns) {
        w.cstring(c.name).i32(0).i16(0).i32(static_cast<std::int32_t>(c.type_oid)).i16(c.type_size).i32(-1).i16(0);
    }
    w.finish();
}

void write_data_row(std::string& out, std::span<const std::optional<std::string>> values) {
    message_writer w(out, to_char(backend::data_row));
    w.i16(static_cast<std::int16_t>(values.size()));
    for (const auto& v : values) {
        if (!v) {
            w.i32(-1);
        } else {
            w.i32(static_cast<std::int32_t>(v->size())).bytes(std::string_view(*v));
        }
    }
    w.finish();
}

void write_startup_message(std::string& out, std::span<const std::pair<std::string, std::string>> parameters) {
    message_writer w(out);
    w.i32(protocol_version_3_0);
    for (const auto& [k, v] : parameters)
        w.cstring(k).cstring(v);
    w.u8(0);
    w.finish();
}

void write_ssl_request(std::string& out) {
    message_writer w(out);
    w.i32(ssl_request_code);
    w.finish();
}

void write_cancel_request(std::string& out, std::uint32_t process_id, std::uint32_t secret_key) {
    message_writer w(out);
    w.i32(cancel_request_code).i32(static_cast<std::int32_t>(process_id)).i32(static_cast<std::int32_t>(secret_key));
    w.finish();
}

void write_password_message(std::string& out, std::string_view password) {
    message_writer w(out, to_char(frontend::password));
    w.cstring(password);
    w.finish();
}

void write_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data) {
    message_writer w(out, to_char(frontend::password));
    w.cstring(mechanism).i32(static_cast<std::int32_t>(data.size())).bytes(data);
    w.finish();
}

void write_sasl_response(std::string& out, std::string_view data) {
    message_writer w(out, to_char(frontend::password));
    w.bytes(data);
    w.finish();
}

void write_query(std::string& out, std::string_view sql) {
    message_writer w(out, to_char(frontend::query));
    w.cstring(sql);
    w.finish();
}

void write_sync(std::string& out) {
    write_empty(out, to_char(frontend::sync));
}
void write_flush(std::string& out) {
    write_empty(out, to_char(frontend::flush));
}
void write_terminate(std::string& out) {
    write_empty(out, to_char(frontend::terminate));
}

void write_parse(std::string& out, std::string_view statement, std::string_view query,
                 std::span<const std::uint32_t> param_types) {
    message_writer w(out, to_char(frontend::parse));
    w.cstring(statement).cstring(query).i16(static_cast<std::int16_t>(param_types.size()));
    for (auto oid : param_types)
        w.i32(static_cast<std::int32_t>(oid));
    w.finish();
}

void write_close_statement(std::string& out, std::string_view statement) {
    message_writer w(out, to_char(frontend::close));
    w.u8('S').cstring(statement);
    w.finish();
}

}  // namespace sluice::protocol
