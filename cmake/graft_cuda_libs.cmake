# The CUDA libraries the backend links: the runtime, cuBLAS, cuBLASLt and cuDNN, as the targets
# graft_cuda_dep::{cudart,cublas,cublasLt,cudnn}. Looked for beside the CUDA toolkit first (a
# Debian or NVIDIA install), then in Python's pip wheels (nvidia-cudnn-cu13, nvidia-cublas, ...:
# site-packages/nvidia/<pkg>/{include,lib}, shared libraries with versioned names only), which
# is how the lent GPU machines have them. GRAFT_NVIDIA_PIP_DIRS names those nvidia/ folders;
# empty: python3 is asked where its `nvidia` package lives.
# Sets GRAFT_CUDA_LIBS_FOUND, or GRAFT_CUDA_LIBS_MISSING to what was not found.

set(GRAFT_NVIDIA_PIP_DIRS "" CACHE STRING "site-packages/nvidia folders holding CUDA library wheels (default: ask python3)")
set(pip_roots ${GRAFT_NVIDIA_PIP_DIRS})
if(NOT pip_roots)
  find_program(GRAFT_PYTHON3 NAMES python3)
  if(GRAFT_PYTHON3)
    execute_process(COMMAND ${GRAFT_PYTHON3} -c "import nvidia; print(';'.join(list(nvidia.__path__)))"
                    OUTPUT_VARIABLE pip_roots OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      set(pip_roots "")
    endif()
  endif()
endif()
set(pip_includes "")
set(pip_libs "")
foreach(root IN LISTS pip_roots)
  file(GLOB incs LIST_DIRECTORIES true "${root}/*/include")
  file(GLOB libs LIST_DIRECTORIES true "${root}/*/lib")
  list(APPEND pip_includes ${incs})
  list(APPEND pip_libs ${libs})
endforeach()

# graft_cuda_lib(NAME HEADER LIBNAMES...): the toolkit's folders first, then the wheels'.
set(GRAFT_CUDA_LIBS_MISSING "")
function(graft_cuda_lib name header)
  find_path(GRAFT_${name}_INCLUDE_DIR ${header} HINTS ${CUDAToolkit_INCLUDE_DIRS} ${pip_includes} NO_CACHE)
  find_library(GRAFT_${name}_LIBRARY NAMES ${ARGN} HINTS ${CUDAToolkit_LIBRARY_DIR} ${pip_libs} NO_CACHE)
  if(NOT GRAFT_${name}_INCLUDE_DIR OR NOT GRAFT_${name}_LIBRARY)
    set(GRAFT_CUDA_LIBS_MISSING "${GRAFT_CUDA_LIBS_MISSING} ${name} (${header}, ${ARGN})" PARENT_SCOPE)
    return()
  endif()
  add_library(graft_cuda_dep::${name} SHARED IMPORTED)
  set_target_properties(graft_cuda_dep::${name} PROPERTIES IMPORTED_LOCATION "${GRAFT_${name}_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${GRAFT_${name}_INCLUDE_DIR}")
  message(STATUS "graft: ${name}: ${GRAFT_${name}_LIBRARY}")
endfunction()

# The runtime: static in portable builds (no libcudart on the other machine to match).
if(GRAFT_PORTABLE AND TARGET CUDA::cudart_static)
  add_library(graft_cuda_dep::cudart INTERFACE IMPORTED)
  set_target_properties(graft_cuda_dep::cudart PROPERTIES INTERFACE_LINK_LIBRARIES CUDA::cudart_static)
elseif(TARGET CUDA::cudart)
  add_library(graft_cuda_dep::cudart INTERFACE IMPORTED)
  set_target_properties(graft_cuda_dep::cudart PROPERTIES INTERFACE_LINK_LIBRARIES CUDA::cudart)
else()
  graft_cuda_lib(cudart cuda_runtime.h cudart libcudart.so.13)
endif()
graft_cuda_lib(cublas cublas_v2.h cublas libcublas.so.13)
graft_cuda_lib(cublasLt cublasLt.h cublasLt libcublasLt.so.13)
graft_cuda_lib(cudnn cudnn.h cudnn libcudnn.so.9)
if(GRAFT_CUDA_LIBS_MISSING)
  set(GRAFT_CUDA_LIBS_FOUND OFF)
else()
  set(GRAFT_CUDA_LIBS_FOUND ON)
endif()
