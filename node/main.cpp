// cvqkd: one binary, one subcommand per job. Exit codes: 0 ok, 1 runtime failure, 2 usage or
// configuration error.
#include <CLI/CLI.hpp>

#include <iostream>

#include "node/cli_common.hpp"

namespace cvqkd::cli {
void add_keyrate(CLI::App& app);
void add_link(CLI::App& app);
void add_profiles(CLI::App& app);
void add_bench(CLI::App& app);
void add_codes(CLI::App& app);
void add_pki(CLI::App& app);
void add_node(CLI::App& app);
void add_network(CLI::App& app);
void add_ctl(CLI::App& app);
}  // namespace cvqkd::cli

int main(int argc, char** argv) {
  CLI::App app{"cvqkd: continuous-variable QKD key network with trusted nodes"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cvqkd 0.1.0");
  // Prefix CLI11's own messages like ours, so every error line starts with "cvqkd:".
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    return "cvqkd: " + CLI::FailureMessage::simple(a, e);
  });
  cvqkd::cli::add_keyrate(app);
  cvqkd::cli::add_link(app);
  cvqkd::cli::add_profiles(app);
  cvqkd::cli::add_bench(app);
  cvqkd::cli::add_codes(app);
  cvqkd::cli::add_pki(app);
  cvqkd::cli::add_node(app);
  cvqkd::cli::add_network(app);
  cvqkd::cli::add_ctl(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and the relevant help
    return cvqkd::cli::usage_error;
  } catch (const cvqkd::cli::cli_exit& e) {
    if (!e.message.empty()) std::cerr << "cvqkd: " << e.message << '\n';
    return e.code;
  } catch (const std::exception& e) {
    std::cerr << "cvqkd: internal error: " << e.what() << " (please report it with the command line)\n";
    return cvqkd::cli::runtime_failure;
  }
  return cvqkd::cli::ok;
}
