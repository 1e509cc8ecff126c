# NVTX3 ranges (header-only, from the CUDA toolkit): included by the root CMakeLists.txt after
# graft_runtime is defined. Without the headers the ranges compile to nothing.
# Sets GRAFT_HAVE_NVTX (ON/OFF) and GRAFT_NVTX_INCLUDE_DIR for tests/ (the injection library).
option(GRAFT_NVTX "Emit NVTX ranges for profilers when the CUDA toolkit's NVTX headers are found" ON)
set(GRAFT_HAVE_NVTX OFF)
if(GRAFT_NVTX)
  find_path(GRAFT_NVTX_INCLUDE_DIR nvtx3/nvToolsExt.h
            HINTS /usr/local/cuda/include ${CUDAToolkit_INCLUDE_DIRS} $ENV{CUDA_HOME}/include)
  if(GRAFT_NVTX_INCLUDE_DIR)
    set(GRAFT_HAVE_NVTX ON)
    # SYSTEM: the toolkit's header is not held to our warnings. Only runtime/trace.cpp
    # includes it; NVTX loads a profiler's injection library with dlopen.
    target_include_directories(graft_runtime SYSTEM PRIVATE ${GRAFT_NVTX_INCLUDE_DIR})
    set_property(SOURCE ${PROJECT_SOURCE_DIR}/runtime/trace.cpp APPEND PROPERTY COMPILE_DEFINITIONS GRAFT_HAVE_NVTX=1)
    target_link_libraries(graft_runtime PUBLIC ${CMAKE_DL_LIBS})
  endif()
endif()
message(STATUS "graft: NVTX ranges ${GRAFT_HAVE_NVTX}")
