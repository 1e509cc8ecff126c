// GRAFT_HD marks per-element math shared by the CPU reference loops and the CUDA kernels:
// written once, compiled by g++ for the CPU and by nvcc for both sides.
#pragma once
#if defined(__CUDACC__)
#define GRAFT_HD __host__ __device__ __forceinline__
#else
#define GRAFT_HD inline
#endif
