// deploy/grafana/*.json: valid JSON dashboards with a Prometheus datasource variable, and every
// PromQL expression (panel targets and template-variable queries) names only metrics the node's
// registry defines (# TYPE lines of the serialized output; _bucket/_sum/_count of histograms) or
// that Prometheus itself makes (ALERTS, the alerts' state series).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <cctype>
#include <sstream>
#include <string_view>
#include <set>
#include <string>
#include <vector>

#include "tests/metrics/metrics_fixture.hpp"

namespace {

namespace fs = std::filesystem;

std::set<std::string> registry_names() {
  auto m = cvqkd::metrics::node_metrics::create("n");
  EXPECT_TRUE(m.has_value());
  cvqkd::test_support::fill_fixture_metrics(**m);
  std::set<std::string> names{"ALERTS"};
  std::istringstream in((*m)->serialize());
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("# TYPE ")) continue;
    std::istringstream words(line.substr(7));
    std::string name, type;
    words >> name >> type;
    names.insert(name);
    if (type == "histogram")
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(name + suffix);
  }
  return names;
}

// Metric names of a PromQL expression: identifiers that are not functions (followed by '('),
// keywords, label names (inside {...} or by/without/on/ignoring/group_x (...)), durations, numbers,
// string literals or Grafana variables. (A hand-written scanner: g++ 12 warns inside <regex> under
// the sanitizer build.)
std::set<std::string> metric_names(const std::string& e) {
  static const std::set<std::string> keywords{"bool", "and", "or", "unless", "inf", "nan", "Inf", "NaN"};
  static const std::set<std::string> label_lists{"by", "without", "on", "ignoring", "group_left", "group_right"};
  auto is_start = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
  auto is_part = [&](char c) { return is_start(c) || std::isdigit(static_cast<unsigned char>(c)); };
  auto skip_to = [&](std::size_t i, char close) {
    const auto j = e.find(close, i);
    return j == std::string::npos ? e.size() : j + 1;
  };
  auto skip_space = [&](std::size_t i) {
    while (i < e.size() && std::isspace(static_cast<unsigned char>(e[i]))) ++i;
    return i;
  };
  std::set<std::string> out;
  std::size_t i = 0;
  while (i < e.size()) {
    const char c = e[i];
    if (c == '"' || c == '\'') {  // string literal
      ++i;
      while (i < e.size() && e[i] != c) i += e[i] == '\\' ? 2 : 1;
      ++i;
    } else if (c == '{') {
      i = skip_to(i, '}');
    } else if (c == '[') {
      i = skip_to(i, ']');
    } else if (c == '$') {  // Grafana variable: $name or ${name}
      ++i;
      if (i < e.size() && e[i] == '{') i = skip_to(i, '}');
      else
        while (i < e.size() && is_part(e[i])) ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < e.size() && std::isdigit(static_cast<unsigned char>(e[i + 1])))) {
      while (i < e.size() && (std::isalnum(static_cast<unsigned char>(e[i])) || e[i] == '.' ||
                              ((e[i] == '-' || e[i] == '+') && (e[i - 1] == 'e' || e[i - 1] == 'E'))))
        ++i;  // 0.5, 1e-3, and durations such as 5m
    } else if (is_start(c)) {
      const auto b = i;
      while (i < e.size() && is_part(e[i])) ++i;
      const std::string name = e.substr(b, i - b);
      const auto next = skip_space(i);
      if (label_lists.contains(name)) {
        if (next < e.size() && e[next] == '(') i = skip_to(next, ')');
      } else if (name == "offset") {
        i = skip_space(i);
        while (i < e.size() && std::isalnum(static_cast<unsigned char>(e[i]))) ++i;
      } else if (next < e.size() && e[next] == '(') {
        // a function call
      } else if (auto w = std::string_view(e).substr(next);
                 (w.starts_with("by") && (w.size() == 2 || !is_part(w[2]))) ||
                 (w.starts_with("without") && (w.size() == 7 || !is_part(w[7])))) {
        // an aggregation written `sum by (...) (...)`
      } else if (!keywords.contains(name)) {
        out.insert(name);
      }
    } else {
      ++i;
    }
  }
  return out;
}

void collect_queries(const nlohmann::json& j, std::vector<std::string>& exprs) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (k == "expr" && v.is_string()) exprs.push_back(v.get<std::string>());
      else collect_queries(v, exprs);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) collect_queries(v, exprs);
  }
}

TEST(dashboards, metric_names_are_extracted_from_promql) {
  EXPECT_EQ(metric_names(R"(sum by (node, le) (rate(cvqkd_x_bucket{node=~"$node",le!="+Inf"}[$__rate_interval])) * 8)"),
            std::set<std::string>{"cvqkd_x_bucket"});
  EXPECT_EQ(metric_names("histogram_quantile(0.99, a_b) / ignoring(kind) c offset 1h > bool 1e-3"),
            (std::set<std::string>{"a_b", "c"}));
}

TEST(dashboards, are_valid_and_query_only_defined_metrics) {
  const auto known = registry_names();
  const fs::path dir = fs::path(CVQKD_SOURCE_DIR) / "deploy" / "grafana";
  std::set<std::string> seen_files;
  for (const char* name : {"executive.json", "oncall.json", "debug.json"}) {
    SCOPED_TRACE(name);
    std::ifstream in(dir / name);
    ASSERT_TRUE(in.good()) << "missing " << (dir / name);
    const auto d = nlohmann::json::parse(in, nullptr, false);
    ASSERT_FALSE(d.is_discarded()) << name << " is not valid JSON";
    seen_files.insert(name);
    EXPECT_TRUE(d.contains("title") && d["title"].is_string());
    EXPECT_TRUE(d.contains("uid") && d["uid"].is_string());
    EXPECT_TRUE(d.contains("schemaVersion"));
    ASSERT_TRUE(d.contains("panels") && d["panels"].is_array() && !d["panels"].empty());
    // A Prometheus datasource variable, used by every panel.
    bool has_ds_var = false;
    for (const auto& v : d["templating"]["list"])
      if (v["type"] == "datasource" && v["query"] == "prometheus" && v["name"] == "datasource") has_ds_var = true;
    EXPECT_TRUE(has_ds_var) << "no datasource variable of type prometheus named 'datasource'";
    std::set<int> ids;
    for (const auto& p : d["panels"]) {
      ASSERT_TRUE(p.contains("id") && p.contains("type") && p.contains("title") && p.contains("gridPos")) << p.dump();
      EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << "duplicate panel id " << p["id"];
      if (p["type"] == "row") continue;
      EXPECT_EQ(p["datasource"]["uid"], "${datasource}") << p["title"];
      ASSERT_TRUE(p.contains("targets") && !p["targets"].empty()) << p["title"] << " has no query";
    }
    std::vector<std::string> exprs;
    collect_queries(d["panels"], exprs);
    // Template variables: label_values(metric, label) and query_result(expr).
    for (const auto& v : d["templating"]["list"]) {
      if (v["type"] != "query") continue;
      const std::string q = v["query"].is_object() ? v["query"]["query"].get<std::string>() : v["query"].get<std::string>();
      // label_values(<selector>, <label>)
      const auto comma = q.rfind(',');
      ASSERT_TRUE(q.starts_with("label_values(") && q.ends_with(")") && comma != std::string::npos) << q;
      exprs.push_back(q.substr(13, comma - 13));
    }
    EXPECT_GE(exprs.size(), 6u);
    for (const auto& e : exprs) {
      const auto names = metric_names(e);
      EXPECT_FALSE(names.empty()) << "no metric in: " << e;
      for (const auto& n : names) EXPECT_TRUE(known.contains(n)) << "unknown metric '" << n << "' in: " << e;
    }
  }
  EXPECT_EQ(seen_files.size(), 3u);
}

}  // namespace
