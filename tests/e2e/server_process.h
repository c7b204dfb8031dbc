// A `qwen3moe serve` child process for the end-to-end tests: started on a free loopback port
// (the server picks it, --port 0, and names it on its "serving" line), under mpirun when the
// test runs with QWEN3MOE_E2E_NP=2, and always killed (its whole process group) at the end.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace qwen3moe::e2e {

using Clock = std::chrono::steady_clock;

// Ranks the server runs on: 1, or QWEN3MOE_E2E_NP (the mpi variant of the e2e tests).
inline int world_size() {
  const char* np = std::getenv("QWEN3MOE_E2E_NP");
  return np && std::atoi(np) > 1 ? std::atoi(np) : 1;
}

// The tiny MoE fixture in a fresh folder, with the real tokenizer files when the test script
// fetched them (QWEN3MOE_TOKENIZER_DIR); without them the server takes token ids only.
inline std::string model_dir(const std::string& dir, bool* has_tokenizer = nullptr) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path src = fs::path(QWEN3MOE_FIXTURES) / "hf-tiny" / "moe_a";
  for (const char* name : {"config.json", "model.safetensors"})
    fs::copy_file(src / name, fs::path(dir) / name);
  bool tok = false;
  if (const char* t = std::getenv("QWEN3MOE_TOKENIZER_DIR")) {
    const fs::path tdir(t);
    if (fs::exists(tdir / "tokenizer.json") && fs::exists(tdir / "tokenizer_config.json")) {
      for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(tdir / name, fs::path(dir) / name);
      tok = true;
    }
  }
  if (has_tokenizer) *has_tokenizer = tok;
  return dir;
}

// DP groups the model commands run with: 1, or QWEN3MOE_E2E_DP (the dp variant).
inline int dp_size() {
  const char* dp = std::getenv("QWEN3MOE_E2E_DP");
  return dp && std::atoi(dp) > 1 ? std::atoi(dp) : 1;
}

// argv for a qwen3moe command on world_size() ranks (model commands in dp_size() groups).
inline std::vector<std::string> command(const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (world_size() > 1)
    argv = {QWEN3MOE_MPIEXEC, "-np", std::to_string(world_size()), "--oversubscribe", "--bind-to",
            "none",           "-x",  "OMP_NUM_THREADS=1"};
  argv.push_back(QWEN3MOE_BINARY);
  argv.insert(argv.end(), args.begin(), args.end());
  if (dp_size() > 1 && !args.empty() &&
      (args[0] == "serve" || args[0] == "generate" || args[0] == "logits"))
    argv.insert(argv.end(), {"--dp", std::to_string(dp_size())});
  return argv;
}

class ServerProcess {
 public:
  // Starts `qwen3moe serve --model dir --port 0 extra...`; fails the test when no serving line
  // comes within timeout.
  ServerProcess(const std::string& dir, const std::vector<std::string>& extra,
                std::chrono::seconds timeout = std::chrono::seconds(60)) {
    log_ = dir + "/serve.log";
    std::vector<std::string> args = {"serve",  "--model",   dir,           "--port", "0",
                                     "--host", "127.0.0.1", "--http-port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::vector<std::string> argv = command(args);
    int out[2];
    if (pipe(out) != 0) {
      ADD_FAILURE() << "pipe failed";
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);  // one group: mpirun and its ranks go down together
      dup2(out[1], 1);
      const int err = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(err, 2);
      close(out[0]);
      setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
      setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
      setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
      std::vector<char*> cargv;
      for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(127);
    }
    setpgid(pid_, pid_);
    close(out[1]);
    out_ = out[0];
    std::string line;
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {
        char c;
        const ssize_t n = read(out_, &c, 1);
        if (n <= 0) break;  // the server died before serving
        if (c != '\n') {
          line += c;
          continue;
        }
        const size_t at = line.find(" on 127.0.0.1:");
        if (line.rfind("serving ", 0) == 0 && at != std::string::npos) {
          port_ = std::atoi(line.c_str() + at + std::string(" on 127.0.0.1:").size());
          serving_line_ = line;
          return;
        }
        line.clear();
      }
    }
    ADD_FAILURE() << "no serving line from qwen3moe serve; its stderr:\n" << log();
  }

  ~ServerProcess() { kill_all(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const { return port_ > 0; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& serving_line() const { return serving_line_; }
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // SIGTERM to the ranks (what a job scheduler's stop does: mpirun itself reports a signal as
  // a failure, so under mpirun the ranks get it directly); returns the exit status, or -1 when
  // it did not exit within timeout (then everything is killed).
  int terminate(std::chrono::seconds timeout) {
    if (pid_ <= 0) return -1;
    if (world_size() > 1) {
      // The ranks are mpirun's children (OpenMPI gives them process groups of their own).
      for (const pid_t p : children(pid_)) kill(p, SIGTERM);
    } else {
      kill(pid_, SIGTERM);
    }
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill_all();
    return -1;
  }

 private:
  static std::vector<pid_t> children(pid_t parent) {
    std::vector<pid_t> out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      // pid (comm) state ppid ...: comm may hold spaces, so read after its closing ')'.
      const size_t close = text.rfind(')');
      if (close == std::string::npos) continue;
      char state = 0;
      int ppid = 0;
      if (std::sscanf(text.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent)
        out.push_back(pid_t(std::atoi(name.c_str())));
    }
    return out;
  }

  void kill_all() {
    if (pid_ > 0) {
      for (const pid_t p : children(pid_)) kill(p, SIGKILL);
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (out_ >= 0) close(out_);
    out_ = -1;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int port_ = 0;
  std::string log_, serving_line_;
};

// Runs a qwen3moe command (on world_size() ranks) and returns its stdout; bounded in time.
inline std::string run_cli(const std::vector<std::string>& args, int* status = nullptr) {
  std::string cmd = "timeout 120 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
  for (const std::string& a : command(args)) cmd += " '" + a + "'";
  cmd += " 2>/dev/null";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

}  // namespace qwen3moe::e2e
