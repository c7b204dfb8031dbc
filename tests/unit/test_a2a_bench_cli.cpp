// `qwen3moe a2a-bench` at world 1 (no mpirun): the nccl-tests style rows parse, sizes double up
// to --max-bytes, nothing arrives wrong; --op dispatch checks its combine; bad flags end with one
// line naming the problem.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace qwen3moe {
namespace {

using testing::fresh_dir;
using testing::read_file;

using Result = testing::CliResult;
Result run(const std::string& args) {
  return testing::run_cli(args, "a2a");
}

struct Row {
  size_t size = 0, count = 0;
  std::string type;
  double time_us = 0, algbw = 0, busbw = 0;
  long long wrong = -1;
};

// The lines that are not comments, split into the seven columns.
std::vector<Row> parse_rows(const std::string& out) {
  std::vector<Row> rows;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    Row r;
    in >> r.size >> r.count >> r.type >> r.time_us >> r.algbw >> r.busbw >> r.wrong;
    EXPECT_FALSE(in.fail()) << "unparsable row: " << line;
    std::string extra;
    EXPECT_FALSE(in >> extra) << "extra column in: " << line;
    rows.push_back(r);
  }
  return rows;
}

TEST(A2aBenchCli, AlltoallRowsAtWorldOne) {
  const Result r = run("a2a-bench --max-bytes 65536 --iters 3 --warmup 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("time(us)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("busbw(GB/s)"), std::string::npos) << r.out;
  const std::vector<Row> rows = parse_rows(r.out);
  ASSERT_EQ(rows.size(), 7u) << r.out;  // 1 KiB .. 64 KiB, doubling
  size_t expect = 1024;
  for (const Row& row : rows) {
    EXPECT_EQ(row.size, expect);
    EXPECT_EQ(row.count, expect / 4);
    EXPECT_EQ(row.type, "float");
    EXPECT_GT(row.time_us, 0);
    EXPECT_GT(row.algbw, 0);
    EXPECT_EQ(row.busbw, 0);  // (n-1)/n with one rank
    EXPECT_EQ(row.wrong, 0);
    expect *= 2;
  }
}

TEST(A2aBenchCli, SizeSuffixesAndStepFactor) {
  const Result r = run("a2a-bench --min-bytes 4K --max-bytes 64K --step-factor 4 --iters 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<Row> rows = parse_rows(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  EXPECT_EQ(rows[0].size, 4096u);
  EXPECT_EQ(rows[1].size, 16384u);
  EXPECT_EQ(rows[2].size, 65536u);
}

TEST(A2aBenchCli, DispatchChecksCombine) {
  const Result r = run(
      "a2a-bench --op dispatch --tokens 32 --hidden 64 --experts 8 --top-k 2 --routing zipf:1.2 "
      "--iters 2 --warmup 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  for (const char* needle : {"dispatch+combine", "raw_a2a", "goal >= 0.9x", "check: 0 wrong"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
}

void expect_one_line_error(const Result& r, const std::string& needle) {
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.code, 128) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(A2aBenchCli, BadFlagsEndWithOneLine) {
  expect_one_line_error(run("a2a-bench --min-bytes 8192 --max-bytes 4096"),
                        "--min-bytes 8192 exceeds --max-bytes 4096");
  expect_one_line_error(run("a2a-bench --step-factor 1"), "--step-factor");
  expect_one_line_error(run("a2a-bench --op dispatch --routing zipf:x"), "positive exponent");
  expect_one_line_error(run("a2a-bench --op dispatch --experts 8 --top-k 9"), "--top-k");
  expect_one_line_error(run("a2a-bench --op scatter"), "--op");
}

}  // namespace
}  // namespace qwen3moe
