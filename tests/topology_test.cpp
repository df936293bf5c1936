// Topology files (config/topology.hpp): the shipped ones parse with the published figures, and
// every kind of mistake is refused naming the field.
#include <gtest/gtest.h>

#include "config/topology.hpp"

namespace cvqkd::config {
namespace {

TEST(topology, the_shipped_tokyo_network_has_its_published_links) {
  auto t = resolve_topology("tokyo-2010");
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->nodes.size(), 6u);
  ASSERT_EQ(t->links.size(), 7u);
  const auto find = [&](std::string_view id) -> const topology_link& {
    for (const auto& l : t->links)
      if (l.id == id) return l;
    throw std::runtime_error("no link");
  };
  EXPECT_DOUBLE_EQ(find("ko1-ot").loss_db, 14.5);
  EXPECT_DOUBLE_EQ(find("ko3-ot").loss_db, 30.0);
  EXPECT_DOUBLE_EQ(find("ot-ha").length_km, 12.0);
  EXPECT_EQ(find("ot-ho").profile.detection, detection::heterodyne);
  EXPECT_EQ(find("ko2-ot").profile.detection, detection::homodyne);
  // the 45 and 90 km links take their block size from the finite-size plan
  for (const char* id : {"ko1-ot", "ko2-ot", "ko3-ot"}) EXPECT_TRUE(find(id).block_auto) << id;
  EXPECT_NE(t->find_node("Ha"), nullptr);
  EXPECT_EQ(t->find_node("Ot")->saes.front(), "SAE-Otemachi");
  auto ring = resolve_topology("test-ring");
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  EXPECT_EQ(ring->links.size(), 4u);
  EXPECT_TRUE(ring->links.front().short_codes);
  EXPECT_DOUBLE_EQ(ring->links.front().beta, 0.8);
}

TEST(topology, mistakes_are_refused_naming_the_field) {
  const std::string nodes = "[[nodes]]\nid = \"A\"\nsaes = [\"S1\"]\n[[nodes]]\nid = \"B\"\n";
  const std::string link = "[[links]]\nid = \"a-b\"\na = \"A\"\nb = \"B\"\nlength_km = 5\nprofile = \"llo_metro\"\n";
  ASSERT_TRUE(parse_topology(nodes + link, "t").has_value());
  const auto expect_error = [&](const std::string& text, std::string_view field) {
    auto r = parse_topology(text, "t");
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code, errc::config_error);
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
  };
  auto planned = parse_topology(nodes + link + "block_symbols = \"auto\"\n", "t");
  ASSERT_TRUE(planned.has_value()) << planned.error().message;
  EXPECT_TRUE(planned->links[0].block_auto);
  expect_error(nodes + link + "block_symbols = \"big\"\n", "links[0].block_symbols");
  expect_error(nodes + link + "colour = 1\n", "links[0].colour");
  expect_error(nodes + "[[links]]\nid = \"x\"\na = \"A\"\nb = \"Z\"\nlength_km = 1\nprofile = \"llo_metro\"\n", "links[0].b");
  expect_error(nodes + "[[links]]\nid = \"x\"\na = \"A\"\nb = \"A\"\nlength_km = 1\nprofile = \"llo_metro\"\n", "links[0].b");
  expect_error(nodes + link + link, "links[1].id");
  expect_error(nodes + "[[links]]\nid = \"x\"\na = \"A\"\nb = \"B\"\nlength_km = -1\nprofile = \"llo_metro\"\n",
               "links[0].length_km");
  expect_error(nodes + "[[links]]\nid = \"x\"\na = \"A\"\nb = \"B\"\nlength_km = 1\nprofile = \"nope\"\n", "links[0].profile");
  expect_error(nodes + "[[nodes]]\nid = \"C\"\nsaes = [\"S1\"]\n", "nodes[2].saes[0]");
  expect_error(nodes + "[[nodes]]\nid = \"A\"\n", "nodes[2].id");
  expect_error("[[nodes]]\nid = \"bad name\"\n", "nodes[0].id");
  expect_error(nodes + link + "[[links]]\nid = \"y\"\na = \"B\"\nb = \"A\"\nlength_km = 1\nprofile = \"llo_metro\"\n",
               "links[1].b");
  expect_error("nodes = [", "line");
  // Site addresses: a dotted-quad IPv4 address peers can dial.
  auto hosted = parse_topology("[[nodes]]\nid = \"A\"\nhost = \"10.91.0.2\"\n[[nodes]]\nid = \"B\"\n" + link, "t");
  ASSERT_TRUE(hosted.has_value()) << hosted.error().message;
  EXPECT_EQ(hosted->nodes[0].host, "10.91.0.2");
  EXPECT_EQ(hosted->nodes[1].host, "");
  for (const char* bad : {"\"10.91.0\"", "\"node-a.example\"", "\"::1\"", "\"0.0.0.0\"", "\"255.255.255.255\"",
                          "\"239.1.1.1\"", "\"10.91.0.2:7000\"", "\"010.91.0.2\"", "10"})
    expect_error("[[nodes]]\nid = \"A\"\nhost = " + std::string(bad) + "\n[[nodes]]\nid = \"B\"\n" + link, "nodes[0].host");
  for (const char* good : {"127.0.0.2", "192.168.1.250", "10.0.0.1"}) {
    auto a = parse_host_address(good, "x");
    ASSERT_TRUE(a.has_value()) << good;
    EXPECT_EQ(*a, good);
  }
  auto multicast = parse_host_address("224.0.0.1", "--host A");
  ASSERT_FALSE(multicast.has_value());
  EXPECT_NE(multicast.error().message.find("--host A: '224.0.0.1' is a multicast address"), std::string::npos)
    << multicast.error().message;
  auto missing = resolve_topology("no-such-topology");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("tokyo-2010"), std::string::npos);
}

}  // namespace
}  // namespace cvqkd::config
