{
  "targets": [
    {
      "target_name": "andromeda_cpu",
      "sources": [
        "native/cpu/binding.cc",
        "native/cpu/parallel.cc",
        "native/cpu/elementwise.cc",
        "native/cpu/reduce.cc",
        "native/cpu/gemm.cc",
        "native/cpu/nn.cc",
        "native/cpu/random.cc",
        "native/cpu/sampling.cc",
        "native/cpu/attention.cc",
        "native/cpu/attention_reference.cc",
        "native/cpu/paged_attention.cc",
        "native/cpu/paged_rows.cc",
        "native/cpu/simd.cc",
        "native/cpu/simd_kernels.cc",
        "native/cpu/binding_kernels.cc",
        "native/fused/adamw/cpu.cc",
        "native/fused/adamw8bit/cpu.cc",
        "native/fused/add_norm/cpu.cc",
        "native/fused/bias_gelu/cpu.cc",
        "native/fused/embedding_gather/cpu.cc",
        "native/fused/gemm_bias/cpu.cc",
        "native/fused/head_norm/cpu.cc",
        "native/fused/sum_squares/cpu.cc",
        "native/fused/token_shift/cpu.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-Wall", "-Wno-unknown-pragmas"],
      "conditions": [
        [
          "OS=='mac'",
          {
            "xcode_settings": {
              "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
              "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
              "GCC_OPTIMIZATION_LEVEL": "3",
              "MACOSX_DEPLOYMENT_TARGET": "11.0",
              "OTHER_CPLUSPLUSFLAGS": ["-fno-math-errno", "-Wall", "-Wno-unknown-pragmas"]
            }
          }
        ]
      ]
    }
  ]
}
