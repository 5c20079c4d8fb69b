// Embedding rows for ids already checked on the host: out[i] = table[ids[i]] over [count, dim], and a zero row for
// an id outside [0, vocab) (never read out of bounds). Unlike the checked `embedding` it reports nothing, so the
// CUDA form never waits for the device. Any dtype.
// Forms: cpu.cc; the CUDA form shares its gather kernel with the checked lookup (native/cuda/embedding.cu).
#pragma once
#include <cstdint>
