// The CPU engine's thread pool: tasks are claimed one at a time from a shared counter by the calling
// thread and the workers, so a worker the OS has descheduled (another process busy on its core) holds
// up only the task it is running, never the ones it has not started: the others take them. Waits spin
// briefly (back-to-back kernels at full speed) and then sleep, so an idle pool gives its cores away.
//
// Determinism: a kernel's result must not depend on the thread count or on which thread ran which
// task. Row-parallel kernels (parallel_for) write disjoint outputs, so any split gives the same bits.
// Reductions keep one partial per *block* — a block count that is a function of the problem size only
// (reduction_blocks) — and combine the partials in block order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace andromeda::cpu {

// Accepted thread counts (the calling thread included): 1 … kMaxThreads.
constexpr int kMaxThreads = 1024;

// Threads the kernels use: ANDROMEDA_THREADS (validated in src/engine/cpu.ts) or the CPUs this process
// may run on. set_thread_count throws std::invalid_argument outside [1, kMaxThreads].
int thread_count();
void set_thread_count(int threads);

// True while the calling thread runs a task of the pool (a nested region then runs serially).
bool in_parallel();

// Runs fn(ctx, task, worker) for every task in [0, tasks) on the pool and returns when all have
// finished (the first exception a task throws is rethrown here). `worker` is in [0, thread_count()):
// no two tasks run at the same time with the same worker index, so it can index per-thread scratch.
void run_tasks(int64_t tasks, void (*fn)(void* ctx, int64_t task, int worker), void* ctx);

// The same with any callable fn(task, worker). The trampoline is the only code instantiated per
// callable, which matters where this is used under a per-function target pragma (attention_impl.h).
template <typename Fn>
void parallel_tasks(int64_t tasks, Fn&& fn) {
  using F = std::remove_reference_t<Fn>;
  run_tasks(tasks, [](void* ctx, int64_t task, int worker) { (*static_cast<F*>(ctx))(task, worker); },
            const_cast<void*>(static_cast<const void*>(&fn)));
}

// Splits [0, n) into contiguous chunks of at least `grain` (a few per thread, so that a slow thread's
// share is picked up by the others); small ranges stay on the caller.
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn fn) {
  const int threads = in_parallel() ? 1 : thread_count();
  if (n <= grain || threads == 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(int64_t(threads) * 4, (n + grain - 1) / grain);
  parallel_tasks(chunks, [&](int64_t c, int) { fn(n * c / chunks, n * (c + 1) / chunks); });
}

// Number of row blocks with a partial sum each, for a reduction over `rows` rows of `elements`
// values in all: about one block per 32k values, at most 32, never more than the rows. It depends on
// the problem only, so combining the partials in block order gives the same bits on any machine.
inline int64_t reduction_blocks(int64_t rows, int64_t elements) {
  return std::max<int64_t>(1, std::min<int64_t>({rows, int64_t(32), elements / 32768}));
}

}  // namespace andromeda::cpu
