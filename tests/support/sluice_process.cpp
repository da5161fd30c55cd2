#include "sluice_process.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "free_port.hpp"

namespace sluice::test {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r");
    return text.substr(first, last - first + 1);
}

bool iequals(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
    });
}

// The section name of a "[name]" line, or nullopt for any other line.
std::optional<std::string_view> section_of(std::string_view line) {
    const auto text = trim(line);
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        return trim(text.substr(1, text.size() - 2));
    }
    return std::nullopt;
}

// The key of a "key = value" line, or nullopt for comments, blanks and section headers.
std::optional<std::string_view> key_of(std::string_view line) {
    const auto text = trim(line);
    if (text.empty() || text.front() == ';' || text.front() == '#' || text.front() == '[') {
        return std::nullopt;
    }
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) {
        return std::nullopt;
    }
    return trim(text.substr(0, eq));
}

// Sluice accepts [sluice] as another name for PgBouncer's [pgbouncer] section.
bool is_settings_section(std::string_view name) {
    return iequals(name, "pgbouncer") || iequals(name, "sluice");
}

}  // namespace

std::optional<std::string> get_pgbouncer_setting(std::string_view ini, std::string_view key) {
    std::optional<std::string> value;
    bool in_settings = false;
    std::istringstream in{std::string(ini)};
    for (std::string line; std::getline(in, line);) {
        if (const auto section = section_of(line)) {
            in_settings = is_settings_section(*section);
        } else if (const auto name = key_of(line); in_settings && name && iequals(*name, key)) {
            value = std::string(trim(std::string_view(line).substr(line.find('=') + 1)));
        }
    }
    return value;
}

fs::path sluice_binary() {
    const char* env = std::getenv("SLUICE_BINARY");
    return env == nullptr ? fs::path() : fs::path(env);
}

std::string set_pgbouncer_settings(std::string_view ini,
                                   const std::vector<std::pair<std::string, std::string>>& settings) {
    std::vector<std::string> lines;
    std::istringstream in{std::string(ini)};
    for (std::string line; std::getline(in, line);) {
        lines.push_back(std::move(line));
    }

    std::vector<bool> found(settings.size(), false);
    std::optional<std::size_t> section_end;  // index after the last non-blank line of [pgbouncer]
    bool in_pgbouncer = false;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (const auto section = section_of(lines[i])) {
            in_pgbouncer = is_settings_section(*section);
            if (in_pgbouncer && !section_end) {
                section_end = i + 1;
            }
            continue;
        }
        if (!in_pgbouncer) {
            continue;
        }
        if (!trim(lines[i]).empty()) {
            section_end = i + 1;
        }
        if (const auto key_view = key_of(lines[i])) {
            const std::string key(*key_view);  // a view into lines[i], which the loop below may replace
            for (std::size_t s = 0; s < settings.size(); ++s) {
                if (iequals(key, settings[s].first)) {
                    lines[i] = settings[s].first + " = " + settings[s].second;
                    found[s] = true;
                }
            }
        }
    }

    std::vector<std::string> missing;
    for (std::size_t s = 0; s < settings.size(); ++s) {
        if (!found[s]) {
            missing.push_back(settings[s].first + " = " + settings[s].second);
        }
    }
    if (!section_end) {
        missing.insert(missing.begin(), "[pgbouncer]");
        missing.emplace_back();
        section_end = 0;
    }
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(*section_end), missing.begin(), missing.end());

    std::string out;
    for (const auto& line : lines) {
        out += line;
        out += '\n';
    }
    return out;
}

sluice_process::sluice_process(std::string_view config, std::string_view auth_file, sluice_process_options options) {
    const fs::path binary = options.binary.empty() ? sluice_binary() : options.binary;
    if (binary.empty()) {
        throw std::runtime_error("no sluice binary: set SLUICE_BINARY");
    }
    if (::access(binary.c_str(), X_OK) != 0) {
        throw std::runtime_error("sluice binary " + binary.string() + " is not executable: " + std::strerror(errno));
    }
    std::string pattern = (fs::temp_directory_path() / "sluice-proc-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    dir_ = pattern;
    port_ = free_port();
    try {
        write_config(config, auth_file);
        pid_ = spawn_process({binary.string(), config_path().string()}, dir_, dir_ / "sluice.log");
        const bool listening = wait_until(
            [&] {
                if (const auto code = wait_process(pid_, 0ms)) {
                    exit_code_ = code;
                    return true;
                }
                return port_accepts(port_);
            },
            options.start_timeout);
        if (exit_code_) {
            throw std::runtime_error("sluice exited with code " + std::to_string(*exit_code_) +
                                     " before listening on port " + std::to_string(port_) + ":\n" +
                                     file_tail(dir_ / "sluice.log", 4096));
        }
        if (!listening) {
            throw std::runtime_error("sluice does not accept connections on port " + std::to_string(port_) + " after " +
                                     std::to_string(options.start_timeout.count()) + " ms:\n" +
                                     file_tail(dir_ / "sluice.log", 4096));
        }
    } catch (...) {
        stop();
        std::error_code ec;
        fs::remove_all(dir_, ec);
        throw;
    }
}

sluice_process::~sluice_process() {
    stop();
    if (::testing::Test::HasFailure()) {
        std::cerr << "--- sluice log (" << (dir_ / "sluice.log").string() << ") ---\n"
                  << file_tail(dir_ / "sluice.log", 8192) << "--- end of sluice log ---\n";
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void sluice_process::stop() noexcept {
    if (pid_ <= 0 || exit_code_) {
        return;
    }
    try {
        ::kill(pid_, SIGTERM);
        exit_code_ = wait_process(pid_, 10s);
        if (!exit_code_) {
            std::cerr << "sluice " << pid_ << " ignored SIGTERM for 10 s: SIGKILL\n";
            ::kill(pid_, SIGKILL);
            exit_code_ = wait_process(pid_, 10s);
        }
    } catch (const std::exception& e) {
        std::cerr << "sluice_process: " << e.what() << '\n';
    }
}

std::string sluice_process::log() const {
    return read_file(dir_ / "sluice.log");
}

void sluice_process::write_config(std::string_view config, std::string_view auth_file) {
    std::vector<std::pair<std::string, std::string>> settings = {
        {"listen_addr", "127.0.0.1"},
        {"listen_port", std::to_string(port_)},
        {"unix_socket_dir", dir_.string()},
    };
    // Concurrent tests must not share the metrics port either; 0 (off) stays off.
    if (const auto metrics = get_pgbouncer_setting(config, "metrics_port"); metrics && *metrics != "0") {
        if (metrics_port_ == 0) {
            metrics_port_ = free_port();
        }
        settings.emplace_back("metrics_port", std::to_string(metrics_port_));
    }
    const fs::path auth_path = dir_ / "userlist.txt";
    if (!auth_file.empty()) {
        std::ofstream(auth_path, std::ios::trunc) << auth_file;
    }
    if (fs::exists(auth_path)) {
        settings.emplace_back("auth_file", auth_path.string());
    }
    const fs::path path = config_path();
    const fs::path temp = dir_ / "sluice.ini.tmp";
    std::ofstream(temp, std::ios::trunc) << set_pgbouncer_settings(config, settings);
    fs::rename(temp, path);  // atomic, so a reload never reads half a file
}

void sluice_process::send_signal(int sig) {
    if (exit_code_) {
        throw std::runtime_error("sluice has already exited with code " + std::to_string(*exit_code_));
    }
    if (::kill(pid_, sig) != 0) {
        throw std::runtime_error("kill(" + std::to_string(pid_) + "): " + std::strerror(errno));
    }
}

std::optional<int> sluice_process::wait_exit(std::chrono::milliseconds timeout) {
    if (!exit_code_) {
        exit_code_ = wait_process(pid_, timeout);
    }
    return exit_code_;
}

}  // namespace sluice::test
