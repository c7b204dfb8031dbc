// A2aProfiler::write: gather every rank's records on rank 0 (serialised to bytes, sizes first,
// then one all_to_all_v in which every rank sends only to rank 0) and write the three files.
#include "parallel/profile/a2a_report.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "kernels/common/check.h"

namespace qwen3moe {
namespace {

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put(uint64_t(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  std::vector<char> bytes;
};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}
  template <typename T>
  T get() {
    QWEN3MOE_CHECK(size_t(end_ - p_) >= sizeof(T), "profiler: truncated record from a rank");
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  std::string get_string() {
    const auto n = get<uint64_t>();
    QWEN3MOE_CHECK(uint64_t(end_ - p_) >= n, "profiler: truncated record from a rank");
    std::string s(p_, size_t(n));
    p_ += n;
    return s;
  }

 private:
  const char* p_;
  const char* end_;
};

std::vector<char> serialise(const A2aProfiler& p) {
  Writer w;
  w.put(uint64_t(p.exchanges().size()));
  for (const A2aExchange& e : p.exchanges()) {
    w.put(e.step);
    w.put(e.layer);
    w.put_string(e.phase);
    w.put(uint64_t(e.bytes_to.size()));
    for (uint64_t b : e.bytes_to) w.put(b);
    w.put(e.start_us);
    w.put(e.wait_us);
    w.put(e.transfer_us);
  }
  w.put(uint64_t(p.spans().size()));
  for (const A2aSpan& s : p.spans()) {
    w.put(s.step);
    w.put(s.layer);
    w.put_string(s.name);
    w.put(s.start_us);
    w.put(s.dur_us);
  }
  for (const auto& layer : p.expert_tokens())
    for (int64_t c : layer) w.put(c);
  w.put(p.folded_steps());
  for (const A2aFolded& f : p.folded()) {
    w.put(f.exchanges);
    w.put(f.wait_us);
    w.put(f.transfer_us);
    w.put(f.slowest_us);
    for (uint64_t b : f.bytes_to) w.put(b);
  }
  return std::move(w.bytes);
}

void deserialise(const char* data, size_t n, A2aRecords& r, int rank) {
  Reader in(data, n);
  auto& ex = r.exchanges[size_t(rank)];
  ex.resize(size_t(in.get<uint64_t>()));
  for (A2aExchange& e : ex) {
    e.step = in.get<int64_t>();
    e.layer = in.get<int64_t>();
    e.phase = in.get_string();
    e.bytes_to.resize(size_t(in.get<uint64_t>()));
    for (uint64_t& b : e.bytes_to) b = in.get<uint64_t>();
    e.start_us = in.get<double>();
    e.wait_us = in.get<double>();
    e.transfer_us = in.get<double>();
  }
  auto& sp = r.spans[size_t(rank)];
  sp.resize(size_t(in.get<uint64_t>()));
  for (A2aSpan& s : sp) {
    s.step = in.get<int64_t>();
    s.layer = in.get<int64_t>();
    s.name = in.get_string();
    s.start_us = in.get<double>();
    s.dur_us = in.get<double>();
  }
  for (auto& layer : r.expert_tokens)
    for (int64_t& c : layer) c += in.get<int64_t>();
  r.folded_steps = in.get<int64_t>();  // the same on every rank
  for (A2aFolded& f : r.folded[size_t(rank)]) {
    f.exchanges = in.get<int64_t>();
    f.wait_us = in.get<double>();
    f.transfer_us = in.get<double>();
    f.slowest_us = in.get<double>();
    for (uint64_t& b : f.bytes_to) b = in.get<uint64_t>();
  }
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  QWEN3MOE_CHECK(out.good(), "profiler: cannot write ", path.string());
  out << text;
  out.close();
  QWEN3MOE_CHECK(out.good(), "profiler: failed writing ", path.string());
}

A2aRecords empty_records(const A2aProfiler& p) {
  A2aRecords r;
  r.world = p.world();
  r.tp = p.tp();
  r.num_experts = p.num_experts();
  r.moe_layer = p.moe_layer();
  r.exchanges.resize(static_cast<size_t>(p.world()));
  r.spans.resize(static_cast<size_t>(p.world()));
  r.expert_tokens.assign(p.moe_layer().size(),
                         std::vector<int64_t>(static_cast<size_t>(p.num_experts()), 0));
  A2aFolded none;
  none.bytes_to.assign(size_t(p.world()), 0);
  r.folded.assign(size_t(p.world()), std::vector<A2aFolded>(2 * p.moe_layer().size(), none));
  return r;
}

}  // namespace

A2aRecords local_records(const A2aProfiler& p) {
  QWEN3MOE_CHECK(p.world() == 1, "profiler: local_records is for one rank, this job has ",
                 p.world());
  A2aRecords r = empty_records(p);
  const std::vector<char> bytes = serialise(p);
  deserialise(bytes.data(), bytes.size(), r, 0);
  return r;
}

A2aRecords gather_records(const A2aProfiler& p, Communicator& comm) {
  const int W = comm.size();
  QWEN3MOE_CHECK(W == p.world() && comm.rank() == p.rank(), "profiler: made for rank ", p.rank(),
                 " of ", p.world(), ", written on rank ", comm.rank(), " of ", W);
  const std::vector<char> mine = serialise(p);
  const uint64_t my_size = mine.size();
  std::vector<uint64_t> sizes(static_cast<size_t>(W));
  comm.all_gather(&my_size, sizes.data(), sizeof(uint64_t));

  // Everyone sends its bytes to rank 0 only.
  std::vector<size_t> send_bytes(static_cast<size_t>(W), 0), send_off(static_cast<size_t>(W), 0);
  std::vector<size_t> recv_bytes(static_cast<size_t>(W), 0), recv_off(static_cast<size_t>(W), 0);
  send_bytes[0] = mine.size();
  size_t total = 0;
  if (comm.rank() == 0) {
    for (int r = 0; r < W; ++r) {
      recv_off[size_t(r)] = total;
      recv_bytes[size_t(r)] = size_t(sizes[size_t(r)]);
      total += recv_bytes[size_t(r)];
    }
  }
  std::vector<char> all(std::max<size_t>(1, total));
  const char one = 0;
  comm.all_to_all_v(mine.empty() ? &one : mine.data(), send_bytes.data(), send_off.data(),
                    all.data(), recv_bytes.data(), recv_off.data());
  A2aRecords r = empty_records(p);
  if (comm.rank() == 0)
    for (int k = 0; k < W; ++k)
      deserialise(all.data() + recv_off[size_t(k)], recv_bytes[size_t(k)], r, k);
  return r;
}

void A2aProfiler::write(Communicator& comm, const std::string& dir, int whatif_redundant) const {
  QWEN3MOE_CHECK(whatif_redundant >= 0 && whatif_redundant <= num_experts_, "--whatif-redundant ",
                 whatif_redundant, " must be in [0, ", num_experts_, "] (the number of experts)");
  const A2aRecords r = gather_records(*this, comm);
  if (comm.rank() != 0) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  QWEN3MOE_CHECK(!ec && fs::is_directory(dir), "profiler: cannot create directory ", dir, ": ",
                 ec.message());
  const nlohmann::json summary = a2a_summary(r, whatif_redundant);
  write_text(fs::path(dir) / "a2a.json", summary.dump(1) + "\n");
  write_text(fs::path(dir) / "trace.json", a2a_trace(r).dump() + "\n");
  write_text(fs::path(dir) / "report.html", a2a_report_html(summary));
}

}  // namespace qwen3moe
