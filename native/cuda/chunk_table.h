// The work list of a many-tensor launch (adamwMany, sumOfSquaresMany): every tensor is cut into chunks of a
// fixed number of elements and each chunk names its tensor's entry, so a block finds its work with two loads
// (no search, no division by tensor sizes). The entries and the chunk index go to the device in one copy.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {

template <typename Entry>
struct ChunkTable {
  std::vector<Entry> entries;
  std::vector<int32_t> chunk_entry;

  /** The index of the chunk the next entry starts at (entries record it). */
  int64_t next_chunk() const { return int64_t(chunk_entry.size()); }
  int64_t chunks() const { return int64_t(chunk_entry.size()); }
  /** Appends an entry covering `count` elements in chunks of `chunk_elements`. */
  void add(const Entry& entry, int64_t count, int64_t chunk_elements) {
    entries.push_back(entry);
    chunk_entry.insert(chunk_entry.end(), size_t((count + chunk_elements - 1) / chunk_elements), int32_t(entries.size() - 1));
  }
};

/**
 * Pinned host memory that tables go up from. A copy from pageable memory may first wait for the stream's earlier
 * work, and so hold the host: a step that clips on the device would then wait for the gradient norm after all.
 * From pinned memory the copy is enqueued like a kernel. One buffer per kind of table, grown as needed and kept
 * for the process (never freed: its teardown would race the CUDA context's); before it is rewritten, the host
 * waits for the copy that last read it — in a training loop that copy is a step old.
 */
class PinnedStaging {
 public:
  /** At least `bytes` of pinned memory, free to write once the previous copy from it has been read. */
  char* reserve(size_t bytes, const char* what) {
    if (!event_) check(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), what);
    check(cudaEventSynchronize(event_), what);
    if (bytes > capacity_) {
      if (host_) check(cudaFreeHost(host_), what);
      host_ = nullptr;
      capacity_ = 0;
      check(cudaHostAlloc(reinterpret_cast<void**>(&host_), bytes, cudaHostAllocPortable), what);
      capacity_ = bytes;
    }
    return host_;
  }
  /** Enqueues the copy of the buffer's first `bytes` to `device` and marks its end. */
  void copy_to(void* device, size_t bytes, const char* what) {
    check(cudaMemcpyAsync(device, host_, bytes, cudaMemcpyHostToDevice, stream()), what);
    check(cudaEventRecord(event_, stream()), what);
  }

 private:
  char* host_ = nullptr;
  size_t capacity_ = 0;
  cudaEvent_t event_ = nullptr;
};

/**
 * A ChunkTable on the device: the entries (8-byte aligned), then the chunk index; freed with this object. It goes
 * up by an asynchronous copy from pinned staging memory (PinnedStaging). Refused inside a graph capture: every
 * replay of the graph would read the staging memory again, long since rewritten.
 */
template <typename Entry>
class DeviceChunkTable {
 public:
  DeviceChunkTable(const ChunkTable<Entry>& t, const char* what)
      : entry_bytes_(t.entries.size() * sizeof(Entry)),
        memory_(refuse_capture(what, entry_bytes_ + t.chunk_entry.size() * 4)) {
    static PinnedStaging staging;  // one per kind of entry
    const size_t bytes = entry_bytes_ + t.chunk_entry.size() * 4;
    char* host = staging.reserve(bytes, what);
    std::memcpy(host, t.entries.data(), entry_bytes_);
    std::memcpy(host + entry_bytes_, t.chunk_entry.data(), t.chunk_entry.size() * 4);
    staging.copy_to(memory_.as<char>(), bytes, what);
  }
  const Entry* entries() const { return memory_.as<Entry>(); }
  const int32_t* chunk_entry() const { return reinterpret_cast<const int32_t*>(memory_.as<char>() + entry_bytes_); }

 private:
  static size_t refuse_capture(const char* what, size_t bytes) {
    if (capturing()) {
      throw std::runtime_error(std::string(what) + " inside captureGraph: its work list is a host→device copy");
    }
    return bytes;
  }

  size_t entry_bytes_;
  Scratch memory_;
};

}  // namespace andromeda::cuda
