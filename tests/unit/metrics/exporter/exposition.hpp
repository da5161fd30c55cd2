#pragma once
// Test helpers: a strict little parser of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), and a runner for promtool when it is installed.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::metrics::testing {

struct parsed_sample {
    std::string name;  // as written: for histograms with _bucket, _sum or _count
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct parsed_family {
    std::string help;
    std::string type;
    std::vector<parsed_sample> samples;
};

struct exposition {
    std::map<std::string, parsed_family> families;
    std::vector<std::string> errors;  // empty when the text is well formed

    // The samples named `name` whose labels include every pair of `match`.
    [[nodiscard]] std::vector<parsed_sample> find(const std::string& name,
                                                  const std::map<std::string, std::string>& match = {}) const {
        std::vector<parsed_sample> out;
        for (const auto& [family_name, f] : families)
            for (const auto& s : f.samples) {
                if (s.name != name)
                    continue;
                bool all = true;
                for (const auto& [k, v] : match) {
                    const auto it = s.labels.find(k);
                    all = all && it != s.labels.end() && it->second == v;
                }
                if (all)
                    out.push_back(s);
            }
        return out;
    }

    // The value of the one sample named `name` matching `match`; nullopt if there is not exactly one.
    [[nodiscard]] std::optional<double> value(const std::string& name,
                                              const std::map<std::string, std::string>& match = {}) const {
        const auto found = find(name, match);
        if (found.size() != 1)
            return std::nullopt;
        return found.front().value;
    }
};

inline bool is_name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

inline std::optional<double> parse_value(std::string_view s) {
    if (s == "+Inf")
        return std::numeric_limits<double>::infinity();
    if (s == "-Inf")
        return -std::numeric_limits<double>::infinity();
    if (s == "NaN")
        return std::numeric_limits<double>::quiet_NaN();
    std::string copy(s);
    char* end = nullptr;
    const double v = std::strtod(copy.c_str(), &end);
    if (copy.empty() || end != copy.c_str() + copy.size())
        return std::nullopt;
    return v;
}

// The family a sample name belongs to, given the families declared so far.
inline std::string family_of(const std::map<std::string, parsed_family>& families, const std::string& sample) {
    if (families.count(sample))
        return sample;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (sample.size() > suffix.size() && sample.ends_with(suffix)) {
            const auto base = sample.substr(0, sample.size() - suffix.size());
            const auto it = families.find(base);
            if (it != families.end() && it->second.type == "histogram")
                return base;
        }
    }
    return {};
}

inline exposition parse_exposition(std::string_view text) {
    exposition out;
    std::string current;  // family of the last TYPE line
    std::size_t line_no = 0;
    auto error = [&](const std::string& what) {
        out.errors.push_back("line " + std::to_string(line_no) + ": " + what);
    };
    if (!text.empty() && text.back() != '\n')
        out.errors.push_back("text does not end with a newline");
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (line.empty())
            continue;
        if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
            const bool help = line[2] == 'H';
            line.remove_prefix(7);
            const auto space = line.find(' ');
            const std::string name(line.substr(0, space));
            const std::string rest(space == std::string_view::npos ? "" : line.substr(space + 1));
            if (help) {
                std::string unescaped;
                for (std::size_t i = 0; i < rest.size(); ++i) {
                    if (rest[i] == '\\' && i + 1 < rest.size() && (rest[i + 1] == '\\' || rest[i + 1] == 'n')) {
                        unescaped += rest[i + 1] == 'n' ? '\n' : '\\';
                        ++i;
                    } else {
                        unescaped += rest[i];
                    }
                }
                out.families[name].help = unescaped;
            } else {
                auto& f = out.families[name];
                if (!f.type.empty())
                    error("second TYPE line for " + name);
                if (!f.samples.empty())
                    error("TYPE after samples for " + name);
                if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" &&
                    rest != "untyped")
                    error("unknown type " + rest);
                f.type = rest;
                current = name;
            }
            continue;
        }
        if (line.front() == '#')
            continue;
        // name{label="value",...} value [timestamp]
        parsed_sample s;
        std::size_t i = 0;
        while (i < line.size() && is_name_char(line[i], i == 0))
            ++i;
        s.name = std::string(line.substr(0, i));
        if (s.name.empty()) {
            error("no metric name");
            continue;
        }
        bool ok = true;
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (ok && i < line.size() && line[i] != '}') {
                std::size_t start = i;
                while (i < line.size() && is_name_char(line[i], i == start))
                    ++i;
                const std::string key(line.substr(start, i - start));
                if (key.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
                    ok = false;
                    break;
                }
                i += 2;
                std::string value;
                while (i < line.size() && line[i] != '"') {
                    if (line[i] == '\\') {
                        if (i + 1 >= line.size()) {
                            ok = false;
                            break;
                        }
                        const char e = line[i + 1];
                        if (e == 'n')
                            value += '\n';
                        else if (e == '\\' || e == '"')
                            value += e;
                        else
                            ok = false;
                        i += 2;
                    } else {
                        value += line[i++];
                    }
                }
                if (i >= line.size()) {
                    ok = false;
                    break;
                }
                ++i;  // closing quote
                if (s.labels.count(key))
                    ok = false;
                s.labels[key] = value;
                if (i < line.size() && line[i] == ',')
                    ++i;
            }
            if (!ok || i >= line.size()) {
                error("bad label set in: " + std::string(line));
                continue;
            }
            ++i;  // closing brace
        }
        if (i >= line.size() || line[i] != ' ') {
            error("no value in: " + std::string(line));
            continue;
        }
        auto rest = line.substr(i + 1);
        const auto space = rest.find(' ');
        const auto v = parse_value(rest.substr(0, space));
        if (!v) {
            error("bad value in: " + std::string(line));
            continue;
        }
        s.value = *v;
        const auto family = family_of(out.families, s.name);
        if (family.empty()) {
            error("sample without a TYPE line: " + s.name);
            continue;
        }
        if (family != current)
            error("samples of " + family + " are not contiguous");
        out.families[family].samples.push_back(std::move(s));
    }
    return out;
}

// The path of an executable found on PATH, or empty.
inline std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path ? path : "/usr/bin:/bin";
    while (!dirs.empty()) {
        const auto colon = dirs.find(':');
        const std::filesystem::path candidate = std::filesystem::path(dirs.substr(0, colon)) / name;
        if (::access(candidate.c_str(), X_OK) == 0)
            return candidate.string();
        dirs.remove_prefix(colon == std::string_view::npos ? dirs.size() : colon + 1);
    }
    return {};
}

struct command_result {
    int exit_code = -1;
    std::string output;  // stdout and stderr
};

inline command_result run_command(const std::string& command) {
    command_result r;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr)
        return r;
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
        r.output.append(buffer, n);
    const int status = ::pclose(pipe);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// A file in a fresh temporary directory, removed with it.
class temp_file {
  public:
    temp_file(const std::string& name, const std::string& contents) {
        std::string pattern = (std::filesystem::temp_directory_path() / "sluice-metrics-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        path_ = dir_ / name;
        std::ofstream(path_, std::ios::binary) << contents;
    }
    ~temp_file() {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

  private:
    std::filesystem::path dir_;
    std::filesystem::path path_;
};

// Runs `promtool check metrics` on `text`. Skips the calling test when promtool is not installed (Debian package
// prometheus; scripts/install-deps installs it).
#define SLUICE_EXPECT_PROMTOOL_ACCEPTS_METRICS(text)                                                           \
    do {                                                                                                       \
        const std::string promtool_ = ::sluice::metrics::testing::find_program("promtool");                    \
        if (promtool_.empty())                                                                                 \
            GTEST_SKIP() << "promtool not installed (apt-get install prometheus)";                             \
        const ::sluice::metrics::testing::temp_file input_("metrics.txt", (text));                             \
        const auto result_ =                                                                                   \
            ::sluice::metrics::testing::run_command(promtool_ + " check metrics < " + input_.path().string()); \
        EXPECT_EQ(result_.exit_code, 0) << result_.output;                                                     \
        EXPECT_EQ(result_.output, "") << "promtool reported problems";                                         \
    } while (false)

}  // namespace sluice::metrics::testing
