// Caching device allocator. cudaMalloc and cudaFree synchronise the device and cost microseconds to
// milliseconds, so blocks are kept after `free` and handed out again:
//  - small requests (≤ 1 MiB) round up to a power of two ≥ 512 B and are carved from 2 MiB slabs;
//  - large requests round up to 2 MiB multiples and reuse a cached block of at most 1/8 more bytes.
// Every kernel runs on the engine's single stream, so a block freed while kernels that use it are
// still queued can be reused at once: the next user's work is ordered after them on that stream.
// When cudaMalloc fails, the cache is returned to the driver and the request retried once.
// CUDA graphs (graph.cc): while a capture is open, every allocation comes from that graph's private pool: the
// pool takes blocks from the cache (or the driver) and keeps them until the graph is disposed. A block freed
// during the capture, whether the capture allocated it or it is older, goes to the pool and may serve a later
// allocation of the same capture (the captured work is one ordered chain, as on the stream); nothing of the pool goes back to the cache while the graph
// lives, since replays write into those addresses. Pool blocks count as allocated until then. At disposal the
// pool's idle blocks return to the cache; blocks JavaScript still holds become ordinary blocks, returned to the
// cache when freed.
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {
namespace {

constexpr size_t kMinBlock = 512;
constexpr size_t kSmallLimit = 1u << 20;
constexpr size_t kSlabBytes = 2u << 20;
constexpr size_t kLargeRound = 2u << 20;

struct Slab {
  char* base;
  size_t block_size;
  size_t free_blocks;
};

struct Block {
  size_t size;
  int slab;  // index into slabs, or −1 for a large block of its own
};

/** The blocks of one graph: all it owns, and those of them no tensor holds (reusable during its capture). */
struct GraphPool {
  std::unordered_set<char*> owned;
  std::multimap<size_t, char*> idle;
};

class CachingAllocator {
 public:
  char* allocate(size_t request) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (capturing_) return allocate_in_pool(capturing_, request);
    return allocate_unpooled(request);
  }

  /** Memory that outlives any graph (library workspaces): never from a capture's pool. */
  char* allocate_persistent(size_t request) {
    std::lock_guard<std::mutex> lock(mutex_);
    return allocate_unpooled(request);
  }

  void release(char* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto owner = pool_of_.find(p);
    if (owner != pool_of_.end()) {
      GraphPool& pool = pools_.at(owner->second);
      for (auto [it, end] = pool.idle.equal_range(blocks_.at(p).size); it != end; ++it)
        if (it->second == p) throw std::runtime_error("free of an unknown buffer (double free?)");
      pool.idle.emplace(blocks_.at(p).size, p);
      return;
    }
    if (capturing_) {
      // A block from before the capture, freed inside it: captured kernels may have used it, and replays will use
      // it again, so the open capture's pool adopts it instead of the cache handing it to other tensors.
      if (!live_.count(p)) throw std::runtime_error("free of an unknown buffer (double free?)");
      GraphPool& pool = pools_.at(capturing_);
      pool.owned.insert(p);
      pool_of_[p] = capturing_;
      pool.idle.emplace(blocks_.at(p).size, p);
      return;
    }
    release_unpooled(p);
  }

  /** Opens a pool that serves every allocation until end_capture; returns its id. */
  int begin_capture() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (capturing_) throw std::runtime_error("a graph capture is already open (captures do not nest)");
    const int id = next_pool_++;
    pools_[id];
    capturing_ = id;
    return id;
  }

  /** Allocations stop coming from the capture's pool; the pool stays with its graph. */
  void end_capture() {
    std::lock_guard<std::mutex> lock(mutex_);
    capturing_ = 0;
  }

  /** The graph is gone: its idle blocks return to the cache, the ones tensors hold become ordinary blocks. */
  void release_pool(int id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pools_.find(id);
    if (it == pools_.end()) return;
    GraphPool& pool = it->second;
    if (capturing_ == id) capturing_ = 0;
    for (char* p : pool.owned) pool_of_.erase(p);
    for (auto& [size, p] : pool.idle) release_unpooled(p);
    pools_.erase(it);
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    MemoryStats s{};
    s.allocated = allocated_;
    s.peak = peak_;
    s.reserved = reserved_;
    s.live_blocks = live_.size();
    s.cached_blocks = blocks_.size() - live_.size();
    for (const auto& [id, pool] : pools_)
      for (const auto& [size, p] : pool.idle) s.graph_pool_idle += size;
    if (cudaMemGetInfo(&s.device_free, &s.device_total) != cudaSuccess) {
      cudaGetLastError();
      s.device_free = s.device_total = 0;
    }
    return s;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_ = allocated_;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (capturing_) throw std::runtime_error("emptyCache during a graph capture (cudaFree cannot be captured)");
    release_cached();
  }

  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
  }

 private:
  char* allocate_unpooled(size_t request) {
    char* p = request <= kSmallLimit ? allocate_small(request) : allocate_large(request);
    const size_t size = blocks_.at(p).size;
    allocated_ += size;
    if (allocated_ > peak_) peak_ = allocated_;
    return p;
  }

  // An idle block of the pool in the size class the cache would use, else a new block for the pool.
  char* allocate_in_pool(int id, size_t request) {
    GraphPool& pool = pools_.at(id);
    const bool small = request <= kSmallLimit;
    const size_t size = small ? small_class(request) : (request + kLargeRound - 1) / kLargeRound * kLargeRound;
    auto it = pool.idle.lower_bound(size);
    if (it != pool.idle.end() && (small ? it->first == size : it->first <= size + size / 8)) {
      char* p = it->second;
      pool.idle.erase(it);
      return p;
    }
    char* p = allocate_unpooled(request);
    pool.owned.insert(p);
    pool_of_[p] = id;
    return p;
  }

  void release_unpooled(char* p) {
    auto it = live_.find(p);
    if (it == live_.end()) throw std::runtime_error("free of an unknown buffer (double free?)");
    live_.erase(it);
    const Block& b = blocks_.at(p);
    allocated_ -= b.size;
    if (b.slab >= 0) {
      slabs_[size_t(b.slab)].free_blocks++;
      small_free_[b.size].push_back(p);
    } else {
      large_free_.emplace_hint(large_free_.lower_bound(b.size), b.size, p);  // reused first (LIFO)
    }
  }

  static size_t small_class(size_t request) {
    size_t s = kMinBlock;
    while (s < request) s <<= 1;
    return s;
  }

  char* take_live(char* p) {
    live_.emplace(p);
    return p;
  }

  char* allocate_small(size_t request) {
    const size_t size = small_class(request);
    std::vector<char*>& list = small_free_[size];
    if (list.empty()) {
      char* base = device_malloc(kSlabBytes, request);
      const int slab = int(slabs_.size());
      const size_t count = kSlabBytes / size;
      slabs_.push_back(Slab{base, size, count});
      // Pushed in reverse so the slab is handed out from its start.
      for (size_t i = count; i-- > 0;) {
        char* p = base + i * size;
        blocks_[p] = Block{size, slab};
        list.push_back(p);
      }
    }
    char* p = list.back();
    list.pop_back();
    slabs_[size_t(blocks_.at(p).slab)].free_blocks--;
    return take_live(p);
  }

  char* allocate_large(size_t request) {
    const size_t size = (request + kLargeRound - 1) / kLargeRound * kLargeRound;
    auto it = large_free_.lower_bound(size);
    if (it != large_free_.end() && it->first <= size + size / 8) {
      char* p = it->second;
      large_free_.erase(it);
      return take_live(p);
    }
    char* p = device_malloc(size, request);
    blocks_[p] = Block{size, -1};
    return take_live(p);
  }

  // cudaMalloc with one retry after returning the cache; throws the out-of-memory report.
  char* device_malloc(size_t bytes, size_t request) {
    for (int attempt = 0; attempt < 2; attempt++) {
      // cudaFree waits for the device, which a capture cannot record: during one, no cache is returned.
      if (attempt == 1 && !capturing_) release_cached();
      if (limit_ && reserved_ + bytes > limit_) continue;
      void* p = nullptr;
      // cudaMalloc is not stream work; it only counts as unsafe for a capture, which it does not disturb (the
      // address stays the graph's until disposal, never freed before a replay).
      const cudaError_t status = [&] {
        const RelaxedCaptureMode relaxed;
        return cudaMalloc(&p, bytes);
      }();
      if (status == cudaSuccess) {
        reserved_ += bytes;
        return static_cast<char*>(p);
      }
      cudaGetLastError();  // clear the error so later calls do not see it
      if (status != cudaErrorMemoryAllocation) check(status, "cudaMalloc");
    }
    throw std::range_error(out_of_memory_report(request, bytes));
  }

  std::string out_of_memory_report(size_t request, size_t bytes) {
    size_t device_free = 0, device_total = 0;
    if (cudaMemGetInfo(&device_free, &device_total) != cudaSuccess) cudaGetLastError();
    const auto gib = [](size_t b) { return double(b) / double(1ull << 30); };
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "out of memory: cannot allocate %zu bytes (%.3f GiB, rounded to %zu) on the GPU; "
                  "pool state: %.3f GiB held by %zu live tensors' blocks, %.3f GiB reserved from the driver "
                  "(%zu cached blocks left after returning the cache)%s; device: %.3f GiB free of %.3f GiB",
                  request, gib(request), bytes, gib(allocated_), live_.size(), gib(reserved_),
                  blocks_.size() - live_.size(),
                  limit_ ? (", limit " + std::to_string(limit_) + " bytes").c_str() : "", gib(device_free),
                  gib(device_total));
    return buf;
  }

  // Returns cached large blocks and fully free slabs to the driver (cudaFree waits for the device).
  void release_cached() {
    for (auto& [size, p] : large_free_) {
      check(cudaFree(p), "cudaFree");
      reserved_ -= size;
      blocks_.erase(p);
    }
    large_free_.clear();
    for (size_t i = 0; i < slabs_.size(); i++) {
      Slab& s = slabs_[i];
      if (!s.base || s.free_blocks != kSlabBytes / s.block_size) continue;
      std::vector<char*>& list = small_free_[s.block_size];
      std::vector<char*> kept;
      kept.reserve(list.size());
      for (char* p : list) {
        if (p >= s.base && p < s.base + kSlabBytes) blocks_.erase(p);
        else kept.push_back(p);
      }
      list.swap(kept);
      check(cudaFree(s.base), "cudaFree");
      reserved_ -= kSlabBytes;
      s.base = nullptr;  // the index stays so that other blocks' slab numbers remain valid
      s.free_blocks = 0;
    }
  }

  std::mutex mutex_;
  std::unordered_map<char*, Block> blocks_;  // every block the allocator owns, live or cached
  std::unordered_set<char*> live_;
  std::vector<Slab> slabs_;
  std::map<size_t, std::vector<char*>> small_free_;
  std::multimap<size_t, char*> large_free_;
  size_t allocated_ = 0, peak_ = 0, reserved_ = 0, limit_ = 0;
  std::map<int, GraphPool> pools_;
  std::unordered_map<char*, int> pool_of_;  // the pool of every block a graph owns
  int capturing_ = 0;                       // the pool of the open capture, 0: none
  int next_pool_ = 1;
};

CachingAllocator& allocator() {
  static CachingAllocator* instance = new CachingAllocator();  // never destroyed: the driver may be gone at exit
  return *instance;
}

}  // namespace

char* alloc(size_t bytes) { return allocator().allocate(bytes); }
char* alloc_persistent(size_t bytes) { return allocator().allocate_persistent(bytes); }
int begin_graph_pool() { return allocator().begin_capture(); }
void end_graph_pool_capture() { allocator().end_capture(); }
void release_graph_pool(int pool) { allocator().release_pool(pool); }
void free(char* ptr) { allocator().release(ptr); }
MemoryStats memory_stats() { return allocator().stats(); }
void reset_peak() { allocator().reset_peak(); }
void empty_cache() { allocator().empty_cache(); }
void set_memory_limit(size_t bytes) { allocator().set_limit(bytes); }

Scratch::Scratch(size_t bytes) : ptr_(alloc(bytes)) {}
Scratch::~Scratch() { free(ptr_); }

}  // namespace andromeda::cuda
