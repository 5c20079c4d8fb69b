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
 * A ChunkTable on the device: the entries (8-byte aligned), then the chunk index; freed with this object.
 * Refused inside a graph capture: the table goes up by a copy from host memory freed on return, which every
 * replay of the graph would read again.
 */
template <typename Entry>
class DeviceChunkTable {
 public:
  DeviceChunkTable(const ChunkTable<Entry>& t, const char* what)
      : entry_bytes_(t.entries.size() * sizeof(Entry)),
        memory_(refuse_capture(what, entry_bytes_ + t.chunk_entry.size() * 4)) {
    std::vector<char> host(entry_bytes_ + t.chunk_entry.size() * 4);
    std::memcpy(host.data(), t.entries.data(), entry_bytes_);
    std::memcpy(host.data() + entry_bytes_, t.chunk_entry.data(), t.chunk_entry.size() * 4);
    check(cudaMemcpyAsync(memory_.as<char>(), host.data(), host.size(), cudaMemcpyHostToDevice, stream()), what);
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
