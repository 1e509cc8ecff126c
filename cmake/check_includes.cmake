# The include rules of graft's layers, checked over a source tree:
#   cmake -DGRAFT_ROOT=<tree> -P cmake/check_includes.cmake
# Exits non-zero, naming every file and include that breaks a rule. The build runs it
# before compiling anything (cmake/include_rules.cmake); ctest runs it as `include_rules`.
#
# Units and what each may include (its own unit always; the order is
# tools -> layers -> runtime -> kernels -> base, and the CUDA parts sit beside their layer):
#   base          base/                     base
#   base_cuda     base/cuda/                base
#   kernels       kernels/ (but cuda, lib)  base
#   cuda_kernels  kernels/cuda, kernels/lib kernels, base_cuda, base
#   runtime       runtime/ (but cuda)       kernels, base
#   cuda_backend  runtime/cuda/             runtime, cuda_kernels, kernels, base_cuda, base
#   nccl          runtime/nccl/             runtime, cuda_kernels, kernels, base_cuda, base
#   layers        layers/                   runtime, kernels, base
#   api           api/ (but cuda), include/graft/, and a quoted "graft/..." (the public header)
#                                           layers, cuda_backend, runtime, kernels, base
#   api_cuda      api/cuda/                 api, cuda_backend, runtime, kernels, base_cuda, base
#   tools         tools/                    api, layers, cuda_backend, nccl, runtime, kernels, base
# tests/ and bench/ may include anything and are not checked. CUDA's own headers
# (<cuda*.h>, <cudnn*.h>, <cublas*.h>, <curand*.h>, <nccl*.h>) belong to the CUDA units:
# the rest of graft builds without a toolkit.
cmake_minimum_required(VERSION 3.25)
if(NOT GRAFT_ROOT)
  message(FATAL_ERROR "check_includes.cmake: pass -DGRAFT_ROOT=<source tree>")
endif()

set(allowed_base base)
set(allowed_base_cuda base_cuda base)
set(allowed_kernels kernels base)
set(allowed_cuda_kernels cuda_kernels kernels base_cuda base)
set(allowed_runtime runtime kernels base)
set(allowed_cuda_backend cuda_backend runtime cuda_kernels kernels base_cuda base)
set(allowed_nccl nccl runtime cuda_kernels kernels base_cuda base)
set(allowed_layers layers runtime kernels base)
set(allowed_api api layers cuda_backend runtime kernels base)
set(allowed_api_cuda api_cuda api cuda_backend runtime kernels base_cuda base)
set(allowed_tools tools api layers cuda_backend nccl runtime kernels base)
set(cuda_units base_cuda cuda_kernels cuda_backend nccl api_cuda)

# The unit a path (relative to the tree) belongs to, or "" when it is none of graft's.
function(graft_unit_of path out)
  set(unit "")
  if(path MATCHES "^base/cuda/")
    set(unit base_cuda)
  elseif(path MATCHES "^base/")
    set(unit base)
  elseif(path MATCHES "^kernels/(cuda|lib)/")
    set(unit cuda_kernels)
  elseif(path MATCHES "^kernels/")
    set(unit kernels)
  elseif(path MATCHES "^runtime/cuda/")
    set(unit cuda_backend)
  elseif(path MATCHES "^runtime/nccl/")
    set(unit nccl)
  elseif(path MATCHES "^runtime/")
    set(unit runtime)
  elseif(path MATCHES "^layers/")
    set(unit layers)
  elseif(path MATCHES "^api/cuda/")
    set(unit api_cuda)
  elseif(path MATCHES "^(api|include/graft|graft)/")
    set(unit api)
  elseif(path MATCHES "^tools/")
    set(unit tools)
  elseif(path MATCHES "^(tests|bench)/")
    set(unit unchecked)
  endif()
  set(${out} "${unit}" PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE sources RELATIVE "${GRAFT_ROOT}"
     "${GRAFT_ROOT}/base/*" "${GRAFT_ROOT}/kernels/*" "${GRAFT_ROOT}/runtime/*"
     "${GRAFT_ROOT}/layers/*" "${GRAFT_ROOT}/tools/*" "${GRAFT_ROOT}/api/*" "${GRAFT_ROOT}/include/graft/*")
list(FILTER sources INCLUDE REGEX "\\.(h|hpp|c|cpp|cu|cuh)$")
list(SORT sources)

set(broken "")
set(checked 0)
foreach(source IN LISTS sources)
  graft_unit_of("${source}" unit)
  if(unit STREQUAL "")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  file(STRINGS "${GRAFT_ROOT}/${source}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  foreach(line IN LISTS lines)
    if(line MATCHES "#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(target "${CMAKE_MATCH_1}")
      graft_unit_of("${target}" target_unit)
      if(target_unit STREQUAL "")
        continue()  # not one of graft's folders (a quoted third-party header)
      endif()
      if(target_unit STREQUAL "unchecked")
        string(APPEND broken "  ${source} includes \"${target}\": nothing in the library includes tests/ or bench/\n")
      elseif(NOT target_unit IN_LIST allowed_${unit})
        list(JOIN allowed_${unit} ", " may)
        string(APPEND broken "  ${source} includes \"${target}\": ${unit} may include only ${may} (the ${target_unit} unit is above it or beside it)\n")
      endif()
    elseif(line MATCHES "#[ \t]*include[ \t]*<((cuda|cudnn|cublas|curand|nccl)[A-Za-z0-9_]*\\.h)>")
      if(NOT unit IN_LIST cuda_units)
        string(APPEND broken "  ${source} includes <${CMAKE_MATCH_1}>: only base/cuda, kernels/cuda, kernels/lib, runtime/cuda, runtime/nccl and api/cuda may use CUDA's headers (the rest builds without a toolkit)\n")
      endif()
    endif()
  endforeach()
endforeach()

if(broken)
  message(FATAL_ERROR "graft's include rules are broken (tools -> layers -> runtime -> kernels -> base; "
          "cmake/check_includes.cmake and docs/architecture.md give the rules):\n${broken}"
          "Move the code to the layer that may use it, or ask through an interface of the lower layer.")
endif()
message(STATUS "include rules hold for ${checked} files under ${GRAFT_ROOT}")
