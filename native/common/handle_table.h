// The live allocations of one engine, addressed from JavaScript by small integer handles instead of
// pointers. A handle is slot + generation · 2^24: a freed slot is reused with the next generation, so a
// handle kept after `free` is recognised as stale instead of reaching another tensor's memory. Slot 0 is
// never used: handle 0 means "no buffer". Entries live in fixed chunks that never move, so lookups (one
// per buffer argument of every kernel call) take no lock; insert and remove take one.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace andromeda::abi {

/** A JavaScript argument that is not what the kernel takes: becomes a TypeError. */
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
/** A value outside what the kernel or the buffer allows: becomes a RangeError. */
struct RangeError : std::out_of_range {
  using std::out_of_range::out_of_range;
};

struct Allocation {
  char* base;
  uint64_t bytes;
};

class HandleTable {
 public:
  static constexpr uint64_t kSlotBits = 24;
  static constexpr uint64_t kSlots = uint64_t(1) << kSlotBits;
  static constexpr uint64_t kChunkSlots = uint64_t(1) << 14;
  static constexpr uint64_t kChunks = kSlots / kChunkSlots;
  // Generations stay below 2^29 so that every handle is an exact double (< 2^53).
  static constexpr uint32_t kGenerations = uint32_t(1) << 29;

  explicit HandleTable(const char* engine) : engine_(engine) {}

  /** Registers a live allocation; returns its handle. */
  double insert(char* base, uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    uint64_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      if (next_slot_ >= kSlots) throw std::range_error(std::string(engine_) + ": more than 16M live buffers");
      slot = next_slot_++;
      if (!chunks_[slot / kChunkSlots]) chunks_[slot / kChunkSlots] = std::make_unique<Entry[]>(kChunkSlots);
    }
    Entry& e = entry(slot);
    e.base = base;
    e.bytes = bytes;
    e.live = true;
    return double(slot + (uint64_t(e.generation) << kSlotBits));
  }

  /** Unregisters the allocation `handle` names (throws when it is not live) and returns it. */
  Allocation remove(const char* kernel, double handle) {
    std::lock_guard<std::mutex> lock(mutex_);
    Entry& e = live_entry(kernel, "handle", handle);
    e.live = false;
    e.generation = (e.generation + 1) % kGenerations;
    if (e.generation == 0) e.generation = 1;
    free_slots_.push_back(slot_of(handle));
    return {e.base, e.bytes};
  }

  /** The allocation a live handle names; throws naming the argument otherwise. */
  Allocation lookup(const char* kernel, const char* name, double handle) const {
    const Entry& e = const_cast<HandleTable*>(this)->live_entry(kernel, name, handle);
    return {e.base, e.bytes};
  }

 private:
  struct Entry {
    char* base = nullptr;
    uint64_t bytes = 0;
    uint32_t generation = 1;
    bool live = false;
  };

  static uint64_t slot_of(double handle) { return uint64_t(handle) & (kSlots - 1); }
  Entry& entry(uint64_t slot) { return chunks_[slot / kChunkSlots][slot % kChunkSlots]; }

  Entry& live_entry(const char* kernel, const char* name, double handle) {
    if (!(handle >= 1 && handle < 9007199254740992.0) || handle != std::floor(handle)) {
      throw RangeError(std::string(kernel) + ": " + name + " is not a buffer handle (" + describe(handle) + ")");
    }
    const uint64_t h = uint64_t(handle), slot = h & (kSlots - 1);
    const uint64_t generation = h >> kSlotBits;
    if (slot == 0 || slot >= next_slot_ || !chunks_[slot / kChunkSlots]) {
      throw RangeError(std::string(kernel) + ": " + name + " is not a buffer handle of the " + engine_ + " (" + describe(handle) + ")");
    }
    Entry& e = entry(slot);
    if (!e.live || e.generation != generation) {
      throw RangeError(std::string(kernel) + ": " + name + " names a freed buffer (handle " + describe(handle) + ")");
    }
    return e;
  }

  static std::string describe(double v) {
    if (std::isnan(v)) return "NaN";
    char text[64];
    std::snprintf(text, sizeof text, "%.17g", v);
    return text;
  }

  const char* engine_;
  std::mutex mutex_;
  std::array<std::unique_ptr<Entry[]>, kChunks> chunks_;
  std::vector<uint64_t> free_slots_;
  // Slot 0 is "no buffer".
  uint64_t next_slot_ = 1;
};

}  // namespace andromeda::abi
