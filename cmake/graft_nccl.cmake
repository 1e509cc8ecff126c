# NCCL for data-parallel training on GPUs: graft_nccl (runtime/nccl) when the CUDA backend is
# built and NCCL is found (no CMake config ships with it: its header and library are looked
# for under the CUDA toolkit, GRAFT_NCCL_ROOT / NCCL_ROOT, and a pip wheel's
# site-packages/nvidia/nccl). Included by the root CMakeLists.txt after graft_cuda. Sets
# GRAFT_HAVE_NCCL; without NCCL, --device cuda under mpirun is refused by name.
option(GRAFT_NCCL "Data-parallel training on GPUs with NCCL, when NCCL is found" ON)
set(GRAFT_HAVE_NCCL OFF)
if(GRAFT_NCCL AND TARGET graft_cuda)
  set(graft_nccl_hints ${GRAFT_NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR}
      /usr/local/cuda)
  file(GLOB graft_nccl_wheels /usr/lib/python3*/site-packages/nvidia/nccl /usr/local/lib/python3*/*-packages/nvidia/nccl
       ${PROJECT_SOURCE_DIR}/build/python-env/lib/python3*/site-packages/nvidia/nccl)
  list(APPEND graft_nccl_hints ${graft_nccl_wheels})
  find_path(GRAFT_NCCL_INCLUDE_DIR nccl.h HINTS ${graft_nccl_hints} PATH_SUFFIXES include)
  find_library(GRAFT_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${graft_nccl_hints} PATH_SUFFIXES lib64 lib)
  if(GRAFT_NCCL_INCLUDE_DIR AND GRAFT_NCCL_LIBRARY)
    set(GRAFT_HAVE_NCCL ON)
    file(GLOB GRAFT_NCCL_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/runtime/nccl/*.cpp)
    graft_layer_library(graft_nccl ${GRAFT_NCCL_SOURCES})
    target_compile_options(graft_nccl PRIVATE ${GRAFT_CUDA_COMPILE_OPTIONS})
    target_include_directories(graft_nccl SYSTEM PUBLIC ${GRAFT_NCCL_INCLUDE_DIR})
    target_link_libraries(graft_nccl PUBLIC graft_cuda ${GRAFT_NCCL_LIBRARY})
    target_compile_definitions(graft_nccl PUBLIC GRAFT_HAVE_NCCL=1)
  endif()
endif()
message(STATUS "graft: NCCL ${GRAFT_HAVE_NCCL} ${GRAFT_NCCL_LIBRARY}")
