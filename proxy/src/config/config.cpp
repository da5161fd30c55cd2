#include "config/config.hpp"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <map>

#include "config/text.hpp"

namespace sluice::config {

namespace {

// The name PgBouncer reserves for its admin console (docs, "Section [databases]").
constexpr std::string_view admin_database = "pgbouncer";

std::string directory_of(const std::string& file) {
    return std::filesystem::path(file).parent_path().string();
}

template <class Entry>
void add_or_replace(std::vector<Entry>& entries, Entry entry, std::vector<diagnostic>& warnings,
                    std::string_view what) {
    const auto existing =
        std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.name == entry.name; });
    if (existing == entries.end()) {
        entries.push_back(std::move(entry));
        return;
    }
    warnings.push_back({entry.defined_at.file, entry.defined_at.line, entry.name,
                        std::string(what) + " defined again; replaces the definition at " + existing->defined_at.file +
                            ":" + std::to_string(existing->defined_at.line)});
    *existing = std::move(entry);
}

class config_builder {
  public:
    explicit config_builder(std::string path) { config_.path = std::move(path); }

    load_result build(ini_result ini) {
        errors_ = std::move(ini.errors);
        for (const auto& section : ini.sections) {
            check_section(section);
        }
        for (const auto& entry : ini.entries) {
            if (entry.section == "pgbouncer" || entry.section == "sluice") {
                apply_setting(entry);
            } else if (entry.section == "databases") {
                add_database(entry);
            } else if (entry.section == "users") {
                add_user(entry);
            }
            // [peers] and unknown sections were reported once, at their header.
        }
        check_consistency();
        if (!errors_.empty()) {
            return {std::nullopt, std::move(errors_)};
        }
        return {std::move(config_), {}};
    }

  private:
    void check_section(const ini_section& section) {
        if (section.name == "pgbouncer" || section.name == "sluice" || section.name == "databases" ||
            section.name == "users") {
            return;
        }
        if (section.name == "peers") {
            warn({section.file,
                  section.line,
                  {},
                  "[peers] is accepted and ignored: Sluice does not forward cancel requests to peers"});
            return;
        }
        errors_.push_back({section.file,
                           section.line,
                           {},
                           "unknown section [" + section.name +
                               "]; expected [pgbouncer] (or [sluice]), "
                               "[databases], [users] or [peers]"});
    }

    void apply_setting(const ini_entry& entry) {
        if (const auto* def = find_setting(entry.key)) {
            if (auto error = def->assign(config_.settings, entry.value, directory_of(entry.file))) {
                errors_.push_back({entry.file, entry.line, std::string(def->name), std::move(*error)});
                return;
            }
            set_at_[def->name] = {entry.file, entry.line};
            return;
        }
        if (const auto* unused = find_unused_setting(entry.key)) {
            warn({entry.file, entry.line, std::string(unused->name),
                  "accepted, not used by Sluice (" + std::string(unused->reason) + ")"});
            return;
        }
        warn({entry.file, entry.line, entry.key, "unknown setting, ignored"});
    }

    void add_database(const ini_entry& entry) {
        if (entry.key == admin_database) {
            errors_.push_back({entry.file, entry.line, entry.key,
                               "the database name \"pgbouncer\" is reserved for the admin console"});
            return;
        }
        auto parsed = parse_database_entry(entry.key, entry.value, {entry.file, entry.line});
        take_diagnostics(parsed);
        if (!parsed.entry) {
            return;
        }
        if (parsed.entry->name == "*") {
            if (config_.fallback) {
                warn({entry.file, entry.line, "*",
                      "fallback database defined again; replaces the definition at " +
                          config_.fallback->defined_at.file + ":" + std::to_string(config_.fallback->defined_at.line)});
            }
            config_.fallback = std::move(*parsed.entry);
            return;
        }
        add_or_replace(config_.databases, std::move(*parsed.entry), config_.warnings, "database");
    }

    void add_user(const ini_entry& entry) {
        auto parsed = parse_user_entry(entry.key, entry.value, {entry.file, entry.line});
        take_diagnostics(parsed);
        if (parsed.entry) {
            add_or_replace(config_.users, std::move(*parsed.entry), config_.warnings, "user");
        }
    }

    template <class Entry>
    void take_diagnostics(entry_result<Entry>& parsed) {
        std::move(parsed.errors.begin(), parsed.errors.end(), std::back_inserter(errors_));
        std::move(parsed.warnings.begin(), parsed.warnings.end(), std::back_inserter(config_.warnings));
    }

    // Settings that only make sense together. Reported at the line that turned the feature on, or at the
    // main file when the default did.
    void check_consistency() {
        const auto& s = config_.settings;
        if (s.client_tls_sslmode != ssl_mode::disable && (!s.client_tls_key_file || !s.client_tls_cert_file)) {
            error_at("client_tls_sslmode", std::string(to_string(s.client_tls_sslmode)) +
                                               " needs client_tls_key_file and client_tls_cert_file");
        }
        if (s.auth_type == auth_type::hba && !s.auth_hba_file) {
            error_at("auth_type", "hba needs auth_hba_file");
        }
        if (config_.databases.empty() && !config_.fallback) {
            warn({config_.path, 0, {}, "no [databases] entries: clients can reach only the admin console"});
        }
    }

    void error_at(std::string_view setting, std::string message) {
        const auto where = set_at_.find(setting);
        if (where == set_at_.end()) {
            errors_.push_back({config_.path, 0, std::string(setting), std::move(message)});
        } else {
            errors_.push_back({where->second.file, where->second.line, std::string(setting), std::move(message)});
        }
    }

    void warn(diagnostic warning) { config_.warnings.push_back(std::move(warning)); }

    config config_;
    std::vector<diagnostic> errors_;
    std::map<std::string_view, source_location, std::less<>> set_at_;
};

}  // namespace

load_result load_config_file(const std::string& path) {
    return load_config_file(path, read_file_from_disk);
}

load_result load_config_file(const std::string& path, const file_reader& reader) {
    return config_builder(path).build(parse_ini_file(path, reader));
}

load_result load_config_string(std::string_view text, const std::string& virtual_name, const file_reader& reader) {
    return config_builder(virtual_name).build(parse_ini(text, virtual_name, reader));
}

const database_entry* find_database(const config& cfg, std::string_view name) {
    for (const auto& entry : cfg.databases) {
        if (entry.name == name) {
            return &entry;
        }
    }
    return cfg.fallback ? &*cfg.fallback : nullptr;
}

std::optional<database_entry> resolve_database(const config& cfg, std::string_view name) {
    const auto* found = find_database(cfg, name);
    if (found == nullptr) {
        return std::nullopt;
    }
    auto resolved = *found;
    resolved.name = std::string(name);
    if (!resolved.dbname) {
        resolved.dbname = std::string(name);
    }
    return resolved;
}

const user_entry* find_user(const config& cfg, std::string_view name) {
    for (const auto& entry : cfg.users) {
        if (entry.name == name) {
            return &entry;
        }
    }
    return nullptr;
}

}  // namespace sluice::config
