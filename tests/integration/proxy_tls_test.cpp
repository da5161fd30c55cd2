// TLS on both sides of Sluice, with PgBouncer's settings: client_tls_* towards libpq clients (require, verify-ca,
// verify-full as libpq checks it, "SSL required" for plaintext clients, Unix sockets exempt), server_tls_* towards a
// PostgreSQL started with ssl = on (require, verify-full, a wrong CA refused), certificates swapped by SIGHUP, and
// large results, large parameters and pipelines through TLS to exercise partial reads and writes.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

namespace fs = std::filesystem;

// A CA, two certificates for Sluice (CN sluice-a, sluice-b), one for PostgreSQL, a client certificate, and a second
// CA with its own client certificate, made with the openssl CLI in a temporary directory. Server certificates name
// localhost and 127.0.0.1 (SAN), as libpq's verify-full checks them.
class certificates {
  public:
    certificates() {
        std::string pattern = (fs::temp_directory_path() / "sluice-tls-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        dir_ = pattern;
        std::ofstream(dir_ / "san.cnf") << "subjectAltName = DNS:localhost, IP:127.0.0.1\n";
        std::ofstream(dir_ / "client.cnf") << "extendedKeyUsage = clientAuth\n";
        make_ca("ca", "sluice-test-ca");
        make_ca("rogue-ca", "rogue-ca");
        make_cert("sluice-a", "ca", "san.cnf");
        make_cert("sluice-b", "ca", "san.cnf");
        make_cert("postgres", "ca", "san.cnf");
        make_cert("sluice_test", "ca", "client.cnf");  // client certificate, CN = the user
        make_cert("someone_else", "ca", "client.cnf");
        make_cert("rogue-client", "rogue-ca", "client.cnf");
        // PostgreSQL (as the postgres user) reads the certificate files from its own copy; the directory must be
        // traversable for libpq as well.
        fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    }
    ~certificates() {
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }
    [[nodiscard]] std::string crt(std::string_view name) const {
        return (dir_ / (std::string(name) + ".crt")).string();
    }
    [[nodiscard]] std::string key(std::string_view name) const {
        return (dir_ / (std::string(name) + ".key")).string();
    }
    [[nodiscard]] const fs::path& dir() const { return dir_; }

  private:
    void openssl(const std::string& args) const {
        const std::string command = "cd '" + dir_.string() + "' && openssl " + args + " >>openssl.log 2>&1";
        if (std::system(command.c_str()) != 0) {
            std::ifstream log(dir_ / "openssl.log");
            throw std::runtime_error("openssl " + args +
                                     " failed: " + std::string(std::istreambuf_iterator<char>(log), {}));
        }
    }
    void make_ca(const std::string& name, const std::string& cn) const {
        openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=" + cn +
                " -keyout " + name + ".key -out " + name + ".crt");
    }
    void make_cert(const std::string& name, const std::string& ca, const std::string& ext) const {
        openssl("req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" + name + " -keyout " + name +
                ".key -out " + name + ".csr");
        openssl("x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
                ".key -CAcreateserial -days 2 -out " + name + ".crt -extfile " + ext);
        fs::permissions(dir_ / (name + ".key"), fs::perms::owner_read | fs::perms::owner_write,
                        fs::perm_options::replace);
    }

    fs::path dir_;
};

const certificates& certs() {
    static const certificates instance;
    return instance;
}

// Sluice's TLS settings for clients with certificate `name` and client_tls_sslmode `mode`.
std::vector<std::pair<std::string, std::string>> client_tls(std::string_view mode, std::string_view name = "sluice-a") {
    return {{"client_tls_sslmode", std::string(mode)},
            {"client_tls_cert_file", certs().crt(name)},
            {"client_tls_key_file", certs().key(name)},
            {"client_tls_ca_file", certs().crt("ca")}};
}

pooler_options with_settings(std::vector<std::pair<std::string, std::string>> settings) {
    pooler_options options;
    options.settings = std::move(settings);
    return options;
}

// The subject of the certificate the server of `conn` presented, e.g. "/CN=sluice-a"; empty without TLS.
std::string peer_subject(PGconn* conn) {
    auto* ssl = static_cast<SSL*>(PQsslStruct(conn, "OpenSSL"));
    if (ssl == nullptr) {
        return {};
    }
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) {
        return {};
    }
    char text[256] = {};
    X509_NAME_oneline(X509_get_subject_name(cert), text, sizeof text);
    X509_free(cert);
    return text;
}

// The values of column `name` in every row of a SHOW result.
std::vector<std::string> show_column(PGconn* admin, const std::string& show, const std::string& name) {
    const auto res = exec(admin, show);
    std::vector<std::string> out;
    const int column = PQfnumber(res.get(), name.c_str());
    for (int row = 0; column >= 0 && row < PQntuples(res.get()); ++row) {
        out.emplace_back(PQgetvalue(res.get(), row, column));
    }
    return out;
}

// True when a new TLS client gets a correct answer through Sluice.
bool serves_queries_over_tls(const pooler& sluice) {
    auto conn = connect(sluice.conninfo("sslmode=require"));
    return PQstatus(conn.get()) == CONNECTION_OK && scalar(conn.get(), "SELECT 6 * 7") == "42";
}

std::string verify_full(std::string_view host = "127.0.0.1") {
    return "sslmode=verify-full sslrootcert=" + certs().crt("ca") + " host=" + std::string(host);
}

TEST(proxy_tls, sslmode_require_client_is_served_over_tls) {
    auto settings = client_tls("require");
    settings.emplace_back("admin_users", "sluice_test");
    pooler sluice(with_settings(settings));
    auto conn = connect_or_throw(sluice.conninfo("sslmode=require"));
    EXPECT_EQ(PQsslInUse(conn.get()), 1);
    EXPECT_EQ(peer_subject(conn.get()), "/CN=sluice-a");
    EXPECT_EQ(scalar(conn.get(), "SELECT 6 * 7"), "42");
    // Transaction pooling hands the server on between statements; the TLS client keeps working.
    for (int i = 0; i < 20; ++i) {
        ASSERT_EQ(scalar(conn.get(), "SELECT " + std::to_string(i)), std::to_string(i));
    }
    // SHOW CLIENTS marks both clients (this one and the console's own, also over TLS).
    auto admin = connect_or_throw(sluice.conninfo("sslmode=require", "sluice_test", "pgbouncer"));
    EXPECT_EQ(show_column(admin.get(), "SHOW CLIENTS", "tls"), (std::vector<std::string>{"TLS", "TLS"}));
}

TEST(proxy_tls, verify_full_client_checks_the_certificate_host_name) {
    pooler sluice(with_settings(client_tls("require")));
    auto by_ip = connect_or_throw(sluice.conninfo(verify_full("127.0.0.1")));
    EXPECT_EQ(scalar(by_ip.get(), "SELECT 'ip'"), "ip");
    auto by_name = connect_or_throw(sluice.conninfo(verify_full("localhost")));
    EXPECT_EQ(scalar(by_name.get(), "SELECT 'name'"), "name");
    // A name the certificate does not carry: libpq refuses the server.
    auto wrong = connect(sluice.conninfo(verify_full("wrong.invalid") + " hostaddr=127.0.0.1"));
    EXPECT_NE(PQstatus(wrong.get()), CONNECTION_OK);
    EXPECT_NE(std::string(PQerrorMessage(wrong.get())).find("does not match host name"), std::string::npos)
        << PQerrorMessage(wrong.get());
}

TEST(proxy_tls, plaintext_client_is_refused_with_ssl_required) {
    pooler sluice(with_settings(client_tls("require")));
    auto libpq = connect(sluice.conninfo("sslmode=disable"));
    EXPECT_NE(PQstatus(libpq.get()), CONNECTION_OK);
    EXPECT_NE(std::string(PQerrorMessage(libpq.get())).find("SSL required"), std::string::npos)
        << PQerrorMessage(libpq.get());

    auto raw = raw_connection::tcp(sluice.port());
    std::string startup;
    const std::vector<std::pair<std::string, std::string>> parameters{{"user", "sluice_test"},
                                                                      {"database", "sluice_test"}};
    protocol::write_startup_message(startup, parameters);
    ASSERT_TRUE(raw.send(startup));
    const auto r = read_refusal(raw);
    EXPECT_EQ(r.severity, "FATAL");
    EXPECT_EQ(r.sqlstate, "28000");
    EXPECT_EQ(r.message, "SSL required");
    EXPECT_TRUE(r.closed);
    EXPECT_TRUE(wait_until([&] { return sluice.log().find("SSL required") != std::string::npos; }, 5s));
}

TEST(proxy_tls, unix_socket_clients_need_no_tls) {
    pooler sluice(with_settings(client_tls("verify-full")));
    auto conn = connect_or_throw(sluice.unix_conninfo());
    EXPECT_EQ(PQsslInUse(conn.get()), 0);
    EXPECT_EQ(scalar(conn.get(), "SELECT 'unix'"), "unix");
}

TEST(proxy_tls, verify_ca_requires_a_client_certificate_from_the_ca) {
    pooler sluice(with_settings(client_tls("verify-ca")));
    const std::string good =
        "sslmode=require sslcert=" + certs().crt("sluice_test") + " sslkey=" + certs().key("sluice_test");
    auto conn = connect_or_throw(sluice.conninfo(good));
    EXPECT_EQ(scalar(conn.get(), "SELECT 'with cert'"), "with cert");

    const std::string none = "sslmode=require sslcert=" + (certs().dir() / "missing.crt").string() +
                             " sslkey=" + (certs().dir() / "missing.key").string();
    auto without = connect(sluice.conninfo(none));
    EXPECT_NE(PQstatus(without.get()), CONNECTION_OK);

    const std::string rogue =
        "sslmode=require sslcert=" + certs().crt("rogue-client") + " sslkey=" + certs().key("rogue-client");
    auto foreign = connect(sluice.conninfo(rogue));
    EXPECT_NE(PQstatus(foreign.get()), CONNECTION_OK);
    EXPECT_TRUE(wait_until([&] { return sluice.log().find("certificate verify failed") != std::string::npos; }, 5s))
        << sluice.log();

    auto plaintext = connect(sluice.conninfo("sslmode=disable"));
    EXPECT_NE(PQstatus(plaintext.get()), CONNECTION_OK);
}

TEST(proxy_tls, auth_type_cert_logs_in_the_user_named_by_the_certificate) {
    auto settings = client_tls("verify-full");
    settings.emplace_back("auth_type", "cert");
    pooler sluice(with_settings(settings));
    const auto cert_for = [](std::string_view name) {
        return "sslmode=require sslcert=" + certs().crt(name) + " sslkey=" + certs().key(name);
    };
    auto conn = connect_or_throw(sluice.conninfo(cert_for("sluice_test"), "unused"));
    EXPECT_EQ(scalar(conn.get(), "SELECT current_user"), "sluice_test");

    auto other = connect(sluice.conninfo(cert_for("someone_else")));
    EXPECT_NE(PQstatus(other.get()), CONNECTION_OK);
    EXPECT_NE(std::string(PQerrorMessage(other.get())).find("certificate authentication failed for user"),
              std::string::npos)
        << PQerrorMessage(other.get());
}

TEST(proxy_tls, a_stalled_handshake_is_closed_by_client_login_timeout) {
    auto settings = client_tls("require");
    settings.emplace_back("client_login_timeout", "1");
    pooler sluice(with_settings(settings));
    auto raw = raw_connection::tcp(sluice.port());
    std::string request;
    protocol::write_ssl_request(request);
    ASSERT_TRUE(raw.send(request));
    EXPECT_EQ(raw.read_bytes(1, 5s), "S");
    // No ClientHello follows: the handshake waits without holding a thread, until the login timeout.
    const auto started = std::chrono::steady_clock::now();
    EXPECT_TRUE(raw.wait_closed(10s));
    EXPECT_GE(std::chrono::steady_clock::now() - started, 500ms);
    EXPECT_TRUE(serves_queries_over_tls(sluice));
}

TEST(proxy_tls, large_results_parameters_and_pipelines_cross_tls_intact) {
    pooler sluice(with_settings(client_tls("require")));
    auto conn = connect_or_throw(sluice.conninfo("sslmode=require"));
    // Server -> client: 8 MB in one value, and 100k rows.
    const auto big = exec(conn.get(), "SELECT repeat('x', 8000000)");
    ASSERT_EQ(PQresultStatus(big.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
    EXPECT_EQ(PQgetlength(big.get(), 0, 0), 8000000);
    const auto rows = exec(conn.get(), "SELECT g, repeat('y', 100) FROM generate_series(1, 100000) g");
    ASSERT_EQ(PQresultStatus(rows.get()), PGRES_TUPLES_OK);
    EXPECT_EQ(PQntuples(rows.get()), 100000);
    EXPECT_STREQ(PQgetvalue(rows.get(), 99999, 0), "100000");

    // Client -> server: a 6 MB parameter.
    std::string value(6 * 1024 * 1024, 'z');
    value[12345] = 'q';
    const char* params[] = {value.c_str()};
    const auto echoed = result(
        PQexecParams(conn.get(), "SELECT length($1), position('q' in $1)", 1, nullptr, params, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(echoed.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
    EXPECT_STREQ(PQgetvalue(echoed.get(), 0, 0), std::to_string(value.size()).c_str());
    EXPECT_STREQ(PQgetvalue(echoed.get(), 0, 1), "12346");

    // A pipeline of 500 queries sent before any result is read.
    ASSERT_EQ(PQenterPipelineMode(conn.get()), 1);
    constexpr int count = 500;
    for (int i = 0; i < count; ++i) {
        const std::string n = std::to_string(i);
        const char* p[] = {n.c_str()};
        ASSERT_EQ(
            PQsendQueryParams(conn.get(), "SELECT $1::int * 2, repeat('p', 200)", 1, nullptr, p, nullptr, nullptr, 0),
            1);
    }
    ASSERT_EQ(PQpipelineSync(conn.get()), 1);
    int answered = 0;
    int wrong = 0;
    for (int i = 0; i < count; ++i) {
        const result res(PQgetResult(conn.get()));
        ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << i << ": " << PQerrorMessage(conn.get());
        if (std::stoi(PQgetvalue(res.get(), 0, 0)) != 2 * i) {
            ++wrong;
        }
        ++answered;
        EXPECT_EQ(PQgetResult(conn.get()), nullptr);  // end of this query's results
    }
    const result sync(PQgetResult(conn.get()));
    EXPECT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
    ASSERT_EQ(PQexitPipelineMode(conn.get()), 1);
    EXPECT_EQ(answered, count);
    EXPECT_EQ(wrong, 0);
    EXPECT_EQ(scalar(conn.get(), "SELECT 'after'"), "after");
}

TEST(proxy_tls, reload_swaps_the_certificate_for_new_connections) {
    auto options = with_settings(client_tls("require", "sluice-a"));
    pooler sluice(options);
    auto before = connect_or_throw(sluice.conninfo(verify_full()));
    EXPECT_EQ(peer_subject(before.get()), "/CN=sluice-a");

    options.settings = client_tls("require", "sluice-b");
    sluice.process().write_config(pooler_config(options));
    sluice.process().send_signal(SIGHUP);
    EXPECT_TRUE(wait_until(
        [&] {
            auto conn = connect(sluice.conninfo(verify_full()));
            return PQstatus(conn.get()) == CONNECTION_OK && peer_subject(conn.get()) == "/CN=sluice-b";
        },
        10s))
        << sluice.log();
    // The connection made before the reload keeps its session.
    EXPECT_EQ(scalar(before.get(), "SELECT 'still here'"), "still here");

    // A broken certificate file: the reload logs why and the previous certificate stays in use.
    std::ofstream(certs().dir() / "broken.crt") << "not a certificate\n";
    options.settings = client_tls("require", "sluice-b");
    options.settings[1].second = (certs().dir() / "broken.crt").string();
    sluice.process().write_config(pooler_config(options));
    sluice.process().send_signal(SIGHUP);
    EXPECT_TRUE(
        wait_until([&] { return sluice.log().find("TLS configuration not applied") != std::string::npos; }, 10s))
        << sluice.log();
    auto after = connect_or_throw(sluice.conninfo(verify_full()));
    EXPECT_EQ(peer_subject(after.get()), "/CN=sluice-b");
    EXPECT_EQ(scalar(after.get(), "SELECT 'ok'"), "ok");
}

// --- Sluice to PostgreSQL ---

class proxy_server_tls : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        cluster_ = new pg_cluster();
        cluster_->enable_ssl(certs().crt("postgres"), certs().key("postgres"), certs().crt("ca"));
        cluster_->start();
    }
    static void TearDownTestSuite() {
        delete cluster_;
        cluster_ = nullptr;
    }

    static pooler_options to_ssl_cluster(std::string_view host, std::vector<std::pair<std::string, std::string>> tls) {
        pooler_options options;
        options.databases = "sluice_test = host=" + std::string(host) + " port=" + std::to_string(cluster_->port()) +
                            " dbname=sluice_test\n";
        options.settings = std::move(tls);
        return options;
    }

    // Whether the server connection behind `conn` uses TLS, as PostgreSQL sees it.
    static std::string server_ssl(PGconn* conn) {
        return scalar(conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    }

    static pg_cluster* cluster_;
};

pg_cluster* proxy_server_tls::cluster_ = nullptr;

TEST_F(proxy_server_tls, require_uses_tls_to_the_server) {
    pooler sluice(to_ssl_cluster("127.0.0.1", {{"server_tls_sslmode", "require"}, {"admin_users", "sluice_test"}}));
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(server_ssl(conn.get()), "true");
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    const auto tls = show_column(admin.get(), "SHOW SERVERS", "tls");
    ASSERT_FALSE(tls.empty()) << cluster_->log_tail(3000);
    EXPECT_EQ(tls.front(), "TLS");
    const auto big = exec(conn.get(), "SELECT repeat('s', 5000000)");
    ASSERT_EQ(PQresultStatus(big.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
    EXPECT_EQ(PQgetlength(big.get(), 0, 0), 5000000);
}

TEST_F(proxy_server_tls, prefer_uses_tls_when_the_server_offers_it) {
    pooler sluice(to_ssl_cluster("127.0.0.1", {{"server_tls_sslmode", "prefer"}}));
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(server_ssl(conn.get()), "true");
}

TEST_F(proxy_server_tls, disable_stays_plaintext) {
    pooler sluice(to_ssl_cluster("127.0.0.1", {{"server_tls_sslmode", "disable"}}));
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(server_ssl(conn.get()), "false");
}

TEST_F(proxy_server_tls, verify_full_checks_the_server_certificate_and_host) {
    for (const char* host : {"127.0.0.1", "localhost"}) {
        pooler sluice(
            to_ssl_cluster(host, {{"server_tls_sslmode", "verify-full"}, {"server_tls_ca_file", certs().crt("ca")}}));
        auto conn = connect_or_throw(sluice.conninfo());
        EXPECT_EQ(server_ssl(conn.get()), "true") << host;
    }
}

TEST_F(proxy_server_tls, verify_ca_refuses_a_server_signed_by_another_ca) {
    pooler sluice(to_ssl_cluster(
        "127.0.0.1", {{"server_tls_sslmode", "verify-ca"}, {"server_tls_ca_file", certs().crt("rogue-ca")}}));
    // The first client of a pool waits for a server login (to learn the parameters to show): it fails with it.
    auto conn = connect(sluice.conninfo());
    EXPECT_NE(PQstatus(conn.get()), CONNECTION_OK);
    EXPECT_TRUE(wait_until([&] { return sluice.log().find("certificate verify failed") != std::string::npos; }, 5s))
        << sluice.log();
}

TEST_F(proxy_server_tls, client_certificate_is_presented_to_the_server) {
    pooler sluice(to_ssl_cluster("127.0.0.1", {{"server_tls_sslmode", "verify-full"},
                                               {"server_tls_ca_file", certs().crt("ca")},
                                               {"server_tls_cert_file", certs().crt("sluice_test")},
                                               {"server_tls_key_file", certs().key("sluice_test")}}));
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "/CN=sluice_test");
}

TEST_F(proxy_server_tls, cancel_reaches_a_tls_server) {
    pooler sluice(to_ssl_cluster("127.0.0.1", {{"server_tls_sslmode", "require"}}));
    auto conn = connect_or_throw(sluice.conninfo());
    ASSERT_EQ(PQsendQuery(conn.get(), "SELECT pg_sleep(30)"), 1);
    ASSERT_TRUE(wait_until(
        [&] {
            return std::stoi(cluster_->query_scalar(
                       "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")) == 1;
        },
        10s));
    const auto started = std::chrono::steady_clock::now();
    PGcancel* cancel = PQgetCancel(conn.get());
    char error[256];
    ASSERT_EQ(PQcancel(cancel, error, sizeof error), 1) << error;
    PQfreeCancel(cancel);
    const auto last = last_result(conn.get());
    EXPECT_EQ(sqlstate(last.get()), "57014");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

TEST(proxy_server_tls_refused, a_server_that_stalls_the_handshake_hits_server_connect_timeout) {
    // A fake server: accepts, answers the SSLRequest with 'S', then says nothing.
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    ASSERT_EQ(::listen(listener, 8), 0);
    std::atomic<bool> stop{false};
    std::thread fake([&] {
        std::vector<int> held;
        while (!stop) {
            pollfd pfd{listener, POLLIN, 0};
            if (::poll(&pfd, 1, 100) <= 0) {
                continue;
            }
            const int fd = ::accept(listener, nullptr, nullptr);
            char request[8];
            if (fd >= 0 && ::recv(fd, request, sizeof request, MSG_WAITALL) == 8) {
                (void)::send(fd, "S", 1, MSG_NOSIGNAL);
            }
            held.push_back(fd);
        }
        for (int fd : held) {
            ::close(fd);
        }
    });
    pooler_options options;
    options.databases = "sluice_test = host=127.0.0.1 port=" + std::to_string(ntohs(addr.sin_port)) + "\n";
    options.settings = {{"server_tls_sslmode", "require"}, {"server_connect_timeout", "1"}};
    {
        pooler sluice(options);
        const auto started = std::chrono::steady_clock::now();
        auto conn = connect(sluice.conninfo());
        EXPECT_NE(PQstatus(conn.get()), CONNECTION_OK);
        EXPECT_NE(std::string(PQerrorMessage(conn.get())).find("server_connect_timeout"), std::string::npos)
            << PQerrorMessage(conn.get());
        EXPECT_LT(std::chrono::steady_clock::now() - started, 8s);
    }
    stop = true;
    fake.join();
    ::close(listener);
}

TEST(proxy_server_tls_refused, require_fails_clearly_when_the_server_has_no_tls) {
    // The shared cluster runs without ssl.
    pooler sluice(with_settings({{"server_tls_sslmode", "require"}}));
    auto conn = connect(sluice.conninfo());
    EXPECT_NE(PQstatus(conn.get()), CONNECTION_OK);
    EXPECT_NE(std::string(PQerrorMessage(conn.get())).find("server does not support TLS"), std::string::npos)
        << PQerrorMessage(conn.get());
}

}  // namespace
}  // namespace sluice::test::proxy
