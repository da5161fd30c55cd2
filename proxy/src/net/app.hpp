#pragma once
// The proxy process: workers, listeners, signals. main() builds one from a loaded config and runs it.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace sluice::net {

// Loads the auth_file named by the config (if any). Returns an error message, or empty on success.
class credential_store;
[[nodiscard]] std::string load_credentials(const config::config& cfg, std::shared_ptr<const credential_store>& out);

// Settings whose promise Sluice cannot keep: an error message naming them, or empty (TLS is implemented; a TLS
// context that cannot be built is reported by runtime::tls_error()).
[[nodiscard]] std::string unsupported_settings(const config::config& cfg);

// Settings that load and validate but that this version does not act on yet, when set to something other than their
// default: one warning line each, so an operator is never misled into relying on them.
[[nodiscard]] std::vector<std::string> unimplemented_setting_warnings(const config::config& cfg);

class app {
  public:
    explicit app(config::config cfg);
    ~app();
    // Called on the main thread once workers run and listeners accept (e.g. to start the metrics endpoint), and
    // before workers stop.
    void on_started(std::function<void(class runtime&)> hook) { started_hook_ = std::move(hook); }
    void on_stopping(std::function<void()> hook) { stopping_hook_ = std::move(hook); }

    // Runs until SIGINT (immediate) or SIGTERM (graceful, bounded by shutdown_timeout). SIGHUP reloads the config.
    // Returns the process exit code.
    [[nodiscard]] int run();

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
    std::function<void(class runtime&)> started_hook_;
    std::function<void()> stopping_hook_;
};

}  // namespace sluice::net
