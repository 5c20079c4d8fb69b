// Device→host reads the host collects later (Engine.downloadLater): the copy into pinned memory and an event are
// enqueued behind the work already on the stream, and the call returns at once, so the host can enqueue more work —
// the next decode step — before it waits for the bytes. Waiting on the event waits for this read and what came
// before it, not for the work enqueued after it, which a stream synchronisation would.
//
// A fixed set of slots, each a pinned buffer (grown on demand, kept for reuse: pinning memory is slow) and an event.
// Tickets are never reused, so a stale or made-up ticket is refused rather than read another caller's bytes.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {
namespace {

struct PendingRead {
  void* host = nullptr;
  size_t capacity = 0;
  cudaEvent_t done = nullptr;
  size_t bytes = 0;
  /** The ticket of the read in flight; 0 when the slot is free. */
  uint64_t ticket = 0;
};

PendingRead g_reads[kMaxPendingReads];
uint64_t g_next_ticket = 1;

PendingRead& slot_of(uint64_t ticket, const char* what) {
  for (PendingRead& read : g_reads)
    if (ticket != 0 && read.ticket == ticket) return read;
  throw std::runtime_error(std::string(what) + ": read " + std::to_string(ticket) +
                           " is not pending (never started, or already collected)");
}

}  // namespace

uint64_t download_start(const char* src, size_t bytes) {
  if (capturing()) {
    throw std::runtime_error(
        "downloadLater inside captureGraph: a CUDA graph replays device work only (read results after replay())");
  }
  if (bytes > kMaxPendingReadBytes) {
    throw std::runtime_error("downloadLater: " + std::to_string(bytes) + " bytes is more than the " +
                           std::to_string(kMaxPendingReadBytes) + " a later read takes (use download)");
  }
  PendingRead* free_slot = nullptr;
  for (PendingRead& read : g_reads)
    if (read.ticket == 0) {
      free_slot = &read;
      break;
    }
  if (!free_slot) {
    throw std::runtime_error("downloadLater: " + std::to_string(kMaxPendingReads) +
                             " reads are pending already (collect them with wait() first)");
  }
  PendingRead& read = *free_slot;
  if (read.capacity < bytes) {
    if (read.host) check(cudaFreeHost(read.host), "downloadLater (cudaFreeHost)");
    read.host = nullptr;
    read.capacity = 0;
    const size_t capacity = std::max<size_t>(bytes, 4096);
    check(cudaHostAlloc(&read.host, capacity, cudaHostAllocDefault), "downloadLater (cudaHostAlloc)");
    read.capacity = capacity;
  }
  if (!read.done) check(cudaEventCreateWithFlags(&read.done, cudaEventDisableTiming), "downloadLater (cudaEventCreate)");
  if (bytes) check(cudaMemcpyAsync(read.host, src, bytes, cudaMemcpyDeviceToHost, stream()), "downloadLater (cudaMemcpyAsync)");
  check(cudaEventRecord(read.done, stream()), "downloadLater (cudaEventRecord)");
  read.bytes = bytes;
  read.ticket = g_next_ticket++;
  return read.ticket;
}

size_t download_bytes(uint64_t ticket) { return slot_of(ticket, "downloadWait").bytes; }

void download_finish(uint64_t ticket, void* dst) {
  PendingRead& read = slot_of(ticket, "downloadWait");
  // The slot is free again whatever the wait says: a failed kernel fails the read, not the slot.
  read.ticket = 0;
  check(cudaEventSynchronize(read.done), "downloadWait (an earlier kernel failed)");
  if (read.bytes) std::memcpy(dst, read.host, read.bytes);
}

}  // namespace andromeda::cuda
