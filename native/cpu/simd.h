// Run-time selection of the SIMD instruction set used by the CPU kernels. The package is compiled for
// the architecture's baseline target. On x86-64 the vector kernels are compiled per function for
// AVX2+FMA and for AVX-512 (target pragmas/attributes) and picked here from what the running CPU
// supports. On aarch64, NEON (Advanced SIMD, with FMA) is part of the baseline, so every aarch64 CPU
// runs the NEON kernels; "generic" there is the portable code the compiler vectorises itself.
#pragma once
#include <cstdint>
#include <string>

namespace andromeda::cpu {

// Each architecture's instruction sets, from the portable baseline up; a limit caps at its rank.
#if defined(__x86_64__)
enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };
#elif defined(__aarch64__)
enum class Isa : int { Generic = 0, Neon = 1 };
#else
enum class Isa : int { Generic = 0 };
#endif

// The best instruction set the CPU (and OS) supports.
Isa cpu_isa();
// The instruction set the kernels use now: cpu_isa(), lowered by limit_isa() (the engine applies
// ANDROMEDA_CPU_ISA with it at start; tests use it to exercise every code path).
Isa active_isa();
// Caps active_isa() at `isa` (never raises it above cpu_isa()).
void limit_isa(Isa isa);
const char* isa_name(Isa isa);
// The instruction set named `name` ("generic", "avx2", ...) if this architecture has it.
bool parse_isa(const std::string& name, Isa* isa);
// This architecture's instruction-set names for messages, e.g. "'generic', 'avx2' or 'avx512'".
const char* isa_choices();

}  // namespace andromeda::cpu

namespace andromeda::cpu {

// Core clock in GHz measured on the calling thread with a chain of dependent 64-bit multiplies
// (3-cycle latency; best of many short runs; in a VM this is the clock the guest actually gets).
// 0 on architectures where the multiply latency is not known (aarch64 cores differ).
double measure_clock_ghz();
// Measured single-thread FMA throughput in GFLOP/s for float32 with the given instruction set
// (independent register FMAs, no memory traffic): the practical peak the GEMM is compared with.
// 0 for an instruction set this CPU does not have.
double measure_fma_gflops(Isa isa);

}  // namespace andromeda::cpu
