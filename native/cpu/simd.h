// Run-time selection of the SIMD instruction set used by the CPU kernels. The package is compiled
// for the baseline x86-64 target; the vector kernels are compiled per function for AVX2+FMA and for
// AVX-512 (target pragmas/attributes) and picked here from what the running CPU supports.
#pragma once
#include <cstdint>

namespace andromeda::cpu {

enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

// The best instruction set the CPU (and OS) supports.
Isa cpu_isa();
// The instruction set the kernels use now: cpu_isa(), lowered by limit_isa() (the engine applies
// ANDROMEDA_CPU_ISA=generic|avx2 with it at start; tests use it to exercise every code path).
Isa active_isa();
// Caps active_isa() at `isa` (never raises it above cpu_isa()).
void limit_isa(Isa isa);
const char* isa_name(Isa isa);

}  // namespace andromeda::cpu

namespace andromeda::cpu {

// Core clock in GHz measured on the calling thread with a chain of dependent 64-bit multiplies
// (3-cycle latency; best of many short runs; in a VM this is the clock the guest actually gets).
double measure_clock_ghz();
// Measured single-thread FMA throughput in GFLOP/s for float32 with the given instruction set
// (independent register FMAs, no memory traffic): the practical peak the GEMM is compared with.
double measure_fma_gflops(Isa isa);

}  // namespace andromeda::cpu
