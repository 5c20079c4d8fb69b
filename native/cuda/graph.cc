// CUDA graphs of the engine's stream: captureGraph in src/engine/cuda.ts records a function's kernels once and
// replays them with one launch. While a capture is open, allocations come from a private pool the graph keeps
// until it is disposed (allocator.cc), and the host↔device copies and waits of context.cc refuse to run (a
// replay could not repeat them).
//
// The capture uses cudaStreamCaptureModeThreadLocal: calls that CUDA counts as unsafe during a capture
// (implicit synchronisations) fail on the capturing thread — the Node main thread, which makes every engine call —
// so a mistake inside the function surfaces at once, while threads that take no part in the capture (library
// helper threads) are left alone, which the global mode would not do. Allocations the pool must take from the
// driver switch to relaxed mode for the cudaMalloc alone (runtime.h, RelaxedCaptureMode).
#include <map>
#include <stdexcept>
#include <string>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {
namespace {

struct Graph {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  int pool;
};

std::map<uint32_t, Graph> g_graphs;
uint32_t g_next_graph = 1;
bool g_capturing = false;
int g_capture_pool = 0;

/** Ends the open capture; returns the recorded graph (null when the capture was invalidated) and the status. */
cudaError_t end_capture(cudaGraph_t* graph) {
  *graph = nullptr;
  const cudaError_t status = cudaStreamEndCapture(stream(), graph);
  if (status != cudaSuccess) cudaGetLastError();
  g_capturing = false;
  end_graph_pool_capture();
  return status;
}

Graph& find(const char* what, uint32_t id) {
  auto it = g_graphs.find(id);
  if (it == g_graphs.end())
    throw std::runtime_error(std::string(what) + ": graph " + std::to_string(id) + " does not exist (disposed?)");
  return it->second;
}

}  // namespace

bool capturing() { return g_capturing; }

void graph_begin() {
  if (g_capturing) throw std::runtime_error("captureGraph: a capture is already open (captures do not nest)");
  const int pool = begin_graph_pool();
  const cudaError_t status = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal);
  if (status != cudaSuccess) {
    end_graph_pool_capture();
    release_graph_pool(pool);
    check(status, "captureGraph (cudaStreamBeginCapture)");
  }
  g_capturing = true;
  g_capture_pool = pool;
}

uint32_t graph_end() {
  if (!g_capturing) throw std::runtime_error("captureGraph: no capture is open");
  const int pool = g_capture_pool;
  cudaGraph_t graph = nullptr;
  const cudaError_t status = end_capture(&graph);
  if (status != cudaSuccess || graph == nullptr) {
    if (graph) cudaGraphDestroy(graph);
    release_graph_pool(pool);
    throw std::runtime_error(std::string("captureGraph: the capture was invalidated (") + cudaGetErrorName(status) +
                             ": " + cudaGetErrorString(status) +
                             "): the function made a call that a CUDA graph cannot record");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  if (instantiated != cudaSuccess) {
    cudaGraphDestroy(graph);
    release_graph_pool(pool);
    check(instantiated, "captureGraph (cudaGraphInstantiate)");
  }
  const uint32_t id = g_next_graph++;
  g_graphs[id] = Graph{graph, exec, pool};
  return id;
}

void graph_abort() {
  if (!g_capturing) return;
  const int pool = g_capture_pool;
  cudaGraph_t graph = nullptr;
  end_capture(&graph);
  if (graph) cudaGraphDestroy(graph);
  // Nothing captured ever ran, so the pool's blocks are free to go back at once.
  release_graph_pool(pool);
}

void graph_replay(uint32_t id) {
  check(cudaGraphLaunch(find("replay", id).exec, stream()), "replay (cudaGraphLaunch)");
}

void graph_dispose(uint32_t id) {
  Graph& g = find("dispose", id);
  // A replay still running finishes first: CUDA frees an in-flight executable graph on completion, and work that
  // reuses the pool's blocks is enqueued after it on the same stream.
  check(cudaGraphExecDestroy(g.exec), "dispose (cudaGraphExecDestroy)");
  check(cudaGraphDestroy(g.graph), "dispose (cudaGraphDestroy)");
  release_graph_pool(g.pool);
  g_graphs.erase(id);
}

}  // namespace andromeda::cuda
