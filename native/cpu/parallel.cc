// The thread pool of parallel.h.
//
// One region runs at a time. Its tasks are handed out by a single 64-bit word, `state_`, holding the
// region's generation, its number of claims and the next unclaimed one: a thread takes claim i by
// advancing the word from (gen, claims, i) to (gen, claims, i + 1). Reading the region's function
// only after a successful claim is safe: the region cannot end (and the next one cannot overwrite
// it) before that claim is counted done. The caller takes claims too, so a region finishes as soon
// as the claims are done, whether or not every worker woke up for it.
//
// Waiting (a worker for the next region, the caller for the last running claims) spins briefly, then
// keeps polling with sched_yield up to kSpin, then sleeps on a condition variable: polling keeps
// back-to-back kernels fast on an idle machine (a yield returns at once when nothing else wants the
// core), yielding and sleeping hand the core to whoever needs it when the machine is busy.
#include "parallel.h"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace andromeda::cpu {
namespace {

constexpr std::chrono::microseconds kPause(10), kSpin(100);

// state_ = generation (28 bits) | claims (18 bits) | next claim (18 bits).
constexpr int kClaimBits = 18;
constexpr uint64_t kClaimMask = (uint64_t(1) << kClaimBits) - 1;
constexpr int64_t kMaxClaims = int64_t(kClaimMask);
constexpr uint64_t pack(uint64_t gen, uint64_t claims, uint64_t next) {
  return (gen << (2 * kClaimBits)) | (claims << kClaimBits) | next;
}
constexpr uint64_t gen_of(uint64_t s) { return s >> (2 * kClaimBits); }
constexpr int64_t claims_of(uint64_t s) { return int64_t((s >> kClaimBits) & kClaimMask); }
constexpr int64_t next_of(uint64_t s) { return int64_t(s & kClaimMask); }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls done() (pausing for kPause, then yielding the core between polls) until it holds or kSpin
// has passed; true when done() became true.
template <typename Done>
bool spin_until(Done done) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (done()) return true;
      cpu_relax();
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited >= kSpin) return done();
    if (waited >= kPause) sched_yield();
  }
}

thread_local bool tl_in_task = false;

int default_thread_count() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, std::min(kMaxThreads, CPU_COUNT(&set)));
#endif
  return std::max(1, std::min<int>(kMaxThreads, int(std::thread::hardware_concurrency())));
}

class Pool {
 public:
  Pool() : threads_(default_thread_count()) {}

  int threads() const { return threads_; }

  void resize(int threads) {
    std::lock_guard<std::mutex> region(region_mutex_);
    stop_workers();
    threads_ = threads;
  }

  void run(int64_t tasks, void (*fn)(void*, int64_t, int), void* ctx) {
    if (tasks <= 0) return;
    std::unique_lock<std::mutex> region(region_mutex_, std::defer_lock);
    // Serial: one thread, one task, a nested region, or another OS thread's region under way.
    if (threads_ == 1 || tasks == 1 || tl_in_task || !region.try_lock()) {
      const bool outer = tl_in_task;
      tl_in_task = true;
      try {
        for (int64_t t = 0; t < tasks; t++) fn(ctx, t, 0);
      } catch (...) {
        tl_in_task = outer;
        throw;
      }
      tl_in_task = outer;
      return;
    }
    if (int(workers_.size()) != threads_ - 1) start_workers();
    const int64_t claims = std::min(tasks, kMaxClaims);
    fn_ = fn;
    ctx_ = ctx;
    tasks_ = tasks;
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    gen_ = (gen_ + 1) & ((uint64_t(1) << (64 - 2 * kClaimBits)) - 1);
    state_.store(pack(gen_, uint64_t(claims), 0), std::memory_order_seq_cst);
    if (sleeping_workers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      work_cv_.notify_all();
    }
    tl_in_task = true;
    work(0);
    tl_in_task = false;
    if (!spin_until([&] { return done_.load() == claims; })) {
      caller_sleeping_.store(true, std::memory_order_seq_cst);
      std::unique_lock<std::mutex> lock(mutex_);
      done_cv_.wait(lock, [&] { return done_.load() == claims; });
      caller_sleeping_.store(false, std::memory_order_relaxed);
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Takes claims of the current region until none is left; each claim runs its share of the tasks.
  void work(int worker) {
    uint64_t s = state_.load(std::memory_order_acquire);
    while (next_of(s) < claims_of(s)) {
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      const int64_t claims = claims_of(s), c = next_of(s);
      const int64_t begin = tasks_ * c / claims, end = tasks_ * (c + 1) / claims;
      try {
        for (int64_t t = begin; t < end; t++) fn_(ctx_, t, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1) + 1 == claims && caller_sleeping_.load()) {
        { std::lock_guard<std::mutex> lock(mutex_); }
        done_cv_.notify_one();
      }
      s = state_.load(std::memory_order_acquire);
    }
  }

  void worker_loop(int worker) {
    tl_in_task = true;
    uint64_t seen = gen_of(state_.load(std::memory_order_acquire));
    for (;;) {
      auto moved = [&] {
        return stop_.load() || gen_of(state_.load()) != seen;
      };
      if (!spin_until(moved)) {
        sleeping_workers_.fetch_add(1, std::memory_order_seq_cst);
        std::unique_lock<std::mutex> lock(mutex_);
        work_cv_.wait(lock, moved);
        sleeping_workers_.fetch_sub(1, std::memory_order_relaxed);
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = gen_of(state_.load(std::memory_order_acquire));
      work(worker);
    }
  }

  void start_workers() {
    stop_workers();
    stop_.store(false);
    workers_.reserve(size_t(threads_ - 1));
    for (int w = 1; w < threads_; w++) workers_.emplace_back([this, w] { worker_loop(w); });
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_seq_cst);
    { std::lock_guard<std::mutex> lock(mutex_); }
    work_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex region_mutex_;  // one region at a time; held by the calling thread for its duration
  std::mutex mutex_;         // for the condition variables and error_
  std::condition_variable work_cv_, done_cv_;
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> caller_sleeping_{false}, stop_{false};
  uint64_t gen_ = 0;
  // The current region (written by the caller before it publishes state_).
  void (*fn_)(void*, int64_t, int) = nullptr;
  void* ctx_ = nullptr;
  int64_t tasks_ = 0;
  std::exception_ptr error_;
};

// Never destroyed: worker threads outlive static destruction at process exit.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int thread_count() { return pool().threads(); }

void set_thread_count(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw std::invalid_argument("threads must be an integer from 1 to " + std::to_string(kMaxThreads) + ", got " +
                                std::to_string(threads));
  pool().resize(threads);
}

bool in_parallel() { return tl_in_task; }

void run_tasks(int64_t tasks, void (*fn)(void*, int64_t, int), void* ctx) { pool().run(tasks, fn, ctx); }

}  // namespace andromeda::cpu
