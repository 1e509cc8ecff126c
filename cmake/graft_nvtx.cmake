# NVTX3 ranges (header-only, from the CUDA toolkit): included by the root CMakeLists.txt after
# graft_core is defined. Without the headers the ranges compile to nothing.
