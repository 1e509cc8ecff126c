# NCCL for data-parallel training on GPUs: graft_nccl (runtime/nccl) when the CUDA backend is
# built and NCCL is found. No CMake config ships with it: nccl.h and libnccl are looked for
# under GRAFT_NCCL_ROOT / NCCL_ROOT, the CUDA toolkit, and the pip wheel's
# site-packages/nvidia/nccl/{include,lib} (as the lent GPU machines have it). Included by the
# root CMakeLists.txt after graft_cuda. Sets GRAFT_HAVE_NCCL; without NCCL, --device cuda
# under mpirun is refused by name.
option(GRAFT_NCCL "Data-parallel training on GPUs with NCCL, when NCCL is found" ON)
set(GRAFT_HAVE_NCCL OFF)
if(GRAFT_NCCL AND TARGET graft_cuda)
  # The toolkit's folders first, then the pip wheels' (pip_includes, pip_libs: cmake/graft_cuda_libs.cmake).
  find_path(GRAFT_NCCL_INCLUDE_DIR nccl.h HINTS ${GRAFT_NCCL_ROOT}/include $ENV{NCCL_ROOT}/include
            ${CUDAToolkit_INCLUDE_DIRS} ${pip_includes} NO_CACHE)
  find_library(GRAFT_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${GRAFT_NCCL_ROOT}/lib $ENV{NCCL_ROOT}/lib
               ${CUDAToolkit_LIBRARY_DIR} ${pip_libs} NO_CACHE)
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
