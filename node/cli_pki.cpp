// `cvqkd pki init|issue|show`: commissions the demo PKI (CA, node/SAE/operator certificates, link
// authentication secrets) in the layout of node/pki/pki.hpp.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "node/cli_common.hpp"
#include "node/pki/pki.hpp"

namespace cvqkd::cli {
namespace {

struct pki_options {
  std::string dir;
  std::vector<std::string> nodes, links, saes, operators;
  unsigned validity_days = 825;
  bool force = false, json = false;
  // `issue`: exactly one of these.
  std::string node, sae, operator_name, link;
  std::vector<std::string> addresses;  // `issue --node`: extra IP SANs
};

void check_name(std::string_view flag, std::string_view what, std::string_view name) {
  if (auto ok = pki::validate_name(what, name); !ok) usage(flag, ok.error().message);
}

// "ID:A:B" -> link_spec; a usage error naming `flag` otherwise.
pki::link_spec parse_link(std::string_view flag, const std::string& spec) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t colon; (colon = spec.find(':', start)) != std::string::npos; start = colon + 1)
    parts.push_back(spec.substr(start, colon - start));
  parts.push_back(spec.substr(start));
  if (parts.size() != 3)
    usage(flag, fmt::format("got '{}', expected LINK_ID:NODE_A:NODE_B (e.g. ko1-ko2:ko1:ko2)", spec));
  check_name(flag, "link ID", parts[0]);
  check_name(flag, "node ID", parts[1]);
  check_name(flag, "node ID", parts[2]);
  if (parts[1] == parts[2])
    usage(flag, fmt::format("'{}' joins node {} to itself; a link needs two different nodes", spec, parts[1]));
  return {parts[0], parts[1], parts[2]};
}

// "ID@NODE" -> sae_spec (NODE optional when `node_required` is false).
pki::sae_spec parse_sae(std::string_view flag, const std::string& spec, bool node_required) {
  const auto at = spec.find('@');
  if (at == std::string::npos && node_required)
    usage(flag, fmt::format("got '{}', expected SAE_ID@HOME_NODE (e.g. app1@ko1)", spec));
  pki::sae_spec s{spec.substr(0, at), at == std::string::npos ? std::string{} : spec.substr(at + 1)};
  check_name(flag, "SAE ID", s.id);
  if (at != std::string::npos) check_name(flag, "home node", s.node);
  return s;
}

void add_dir(CLI::App* cmd, pki_options& o) {
  cmd->add_option("--dir", o.dir, "PKI directory (created 0700 when missing)")->required();
}

void add_validity(CLI::App* cmd, pki_options& o) {
  cmd->add_option("--validity-days", o.validity_days, "validity of issued certificates in days (1..3650)")
    ->capture_default_str();
}

nlohmann::json to_json(const pki::certificate_info& c) {
  nlohmann::json j{{"kind", c.kind},           {"name", c.name}, {"common_name", c.common_name},
                   {"role", c.role},           {"not_after", c.not_after}, {"file", c.file.string()},
                   {"ip_addresses", c.ip_addresses}, {"ok", c.problem.empty()}};
  if (!c.problem.empty()) j["problem"] = c.problem;
  return j;
}

nlohmann::json to_json(const pki::inventory& inv, const std::string& dir) {
  nlohmann::json certs = nlohmann::json::array(), links = nlohmann::json::array();
  for (const auto& c : inv.certificates) certs.push_back(to_json(c));
  for (const auto& l : inv.links) {
    nlohmann::json j{{"id", l.id}, {"nodes", l.nodes}, {"bytes", l.bytes}, {"ok", l.problem.empty()}};
    if (!l.problem.empty()) j["problem"] = l.problem;
    links.push_back(std::move(j));
  }
  return {{"dir", dir}, {"ca", to_json(inv.ca)}, {"certificates", certs}, {"links", links}};
}

void print_inventory(const pki::inventory& inv, const std::string& dir, bool json) {
  if (json) {
    print_json(to_json(inv, dir));
    return;
  }
  const auto status = [](const std::string& problem) { return problem.empty() ? std::string{"ok"} : "PROBLEM: " + problem; };
  std::cout << fmt::format("PKI {}\nCA        {:<28} expires {}  {}\n", dir, inv.ca.common_name, inv.ca.not_after,
                           status(inv.ca.problem));
  for (const auto& c : inv.certificates) {
    std::string ips;
    for (const auto& a : c.ip_addresses) ips += (ips.empty() ? "  IP " : ",") + a;
    std::cout << fmt::format("{:<9} {:<28} OU={:<15} expires {}  {}{}\n", c.kind,
                             c.common_name.empty() ? c.name : c.common_name, c.role, c.not_after, status(c.problem), ips);
  }
  for (const auto& l : inv.links) {
    std::string ends;
    for (const auto& n : l.nodes) ends += (ends.empty() ? "" : " <-> ") + n;
    std::cout << fmt::format("link      {:<28} {}  {} bytes  {}\n", l.id, ends, l.bytes, status(l.problem));
  }
}

void show_dir(const std::string& dir, bool json) {
  auto inv = pki::inspect(dir);
  if (!inv) fail_with(inv.error());
  print_inventory(*inv, dir, json);
}

}  // namespace

void add_pki(CLI::App& app) {
  auto* cmd = app.add_subcommand("pki", "demo PKI: CA, node/SAE/operator certificates and link secrets");
  cmd->require_subcommand(1);
  auto o = std::make_shared<pki_options>();

  auto* init = cmd->add_subcommand(
    "init", "create the demo CA and issue certificates and link secrets (adds missing names to an existing CA)");
  add_dir(init, *o);
  init->add_option("--node", o->nodes, "node ID (repeat)");
  init->add_option("--link", o->links, "link as LINK_ID:NODE_A:NODE_B (repeat); its secret goes to both nodes");
  init->add_option("--sae", o->saes, "SAE (application) as SAE_ID@HOME_NODE (repeat)");
  init->add_option("--operator", o->operators, "operator name (repeat)");
  init->add_flag("--force", o->force, "discard the existing CA and everything issued under DIR, then start over");
  add_validity(init, *o);
  init->add_flag("--json", o->json, "print JSON");
  init->callback([o] {
    require_range("--validity-days", o->validity_days, 1, 3650, false, false, "a validity in days");
    pki::init_options opts{.dir = o->dir, .validity_days = o->validity_days, .force = o->force};
    for (const auto& n : o->nodes) check_name("--node", "node ID", n);
    opts.nodes = o->nodes;
    for (const auto& l : o->links) opts.links.push_back(parse_link("--link", l));
    for (const auto& s : o->saes) opts.saes.push_back(parse_sae("--sae", s, true));
    for (const auto& n : o->operators) check_name("--operator", "operator name", n);
    opts.operators = o->operators;
    if (auto ok = pki::init(opts); !ok) fail_with(ok.error());
    if (!o->json)
      for (const auto& s : opts.saes) std::cout << fmt::format("SAE {} has home node {}\n", s.id, s.node);
    show_dir(o->dir, o->json);
  });

  auto* issue = cmd->add_subcommand("issue", "issue one more certificate or link secret under an existing CA");
  add_dir(issue, *o);
  auto* node = issue->add_option("--node", o->node, "node ID");
  auto* sae = issue->add_option("--sae", o->sae, "SAE ID (or SAE_ID@HOME_NODE)");
  auto* op = issue->add_option("--operator", o->operator_name, "operator name");
  auto* link = issue->add_option("--link", o->link, "link secret as LINK_ID:NODE_A:NODE_B");
  auto* address = issue->add_option("--address", o->addresses,
                                    "with --node: an IP address the node listens on, named in its certificate besides "
                                    "127.0.0.1 (repeat)");
  address->needs(node);
  node->excludes(sae, op, link);
  sae->excludes(op, link);
  op->excludes(link);
  issue->add_flag("--force", o->force, "replace an existing certificate and key (renewal)");
  add_validity(issue, *o);
  issue->callback([o, node, sae, op, link] {
    require_range("--validity-days", o->validity_days, 1, 3650, false, false, "a validity in days");
    expected<void> r;
    if (node->count() > 0) {
      check_name("--node", "node ID", o->node);
      r = pki::issue(o->dir, pki::kind::node, o->node, o->validity_days, o->force, o->addresses);
    } else if (sae->count() > 0) {
      r = pki::issue(o->dir, pki::kind::sae, parse_sae("--sae", o->sae, false).id, o->validity_days, o->force);
    } else if (op->count() > 0) {
      check_name("--operator", "operator name", o->operator_name);
      r = pki::issue(o->dir, pki::kind::operator_, o->operator_name, o->validity_days, o->force);
    } else if (link->count() > 0) {
      const auto l = parse_link("--link", o->link);
      r = pki::issue_link_secret(o->dir, l.id, l.node_a, l.node_b);
    } else {
      usage("pki issue", "name what to issue: --node NAME, --sae NAME, --operator NAME or --link ID:A:B");
    }
    if (!r) fail_with(r.error());
    show_dir(o->dir, false);
  });

  auto* show = cmd->add_subcommand("show", "list the CA, the certificates (CN, OU, expiry) and the link secrets");
  add_dir(show, *o);
  show->add_flag("--json", o->json, "print JSON");
  show->callback([o] { show_dir(o->dir, o->json); });
}

}  // namespace cvqkd::cli
