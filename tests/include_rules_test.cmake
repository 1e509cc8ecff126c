# The include-rule checker (cmake/check_includes.cmake) against the layering stated
# independently here: tools -> layers -> runtime -> kernels -> base. For every ordered
# pair of layers, a tree whose only source in one layer includes a header of the other must
# pass exactly when the other is below it; then the CUDA units and the unchecked folders.
#   cmake -DGRAFT_CHECKER=cmake/check_includes.cmake -DWORK_DIR=<scratch> -P this file
cmake_minimum_required(VERSION 3.25)
set(chain tools/graft layers runtime kernels/cpu base)  # highest first
set(failures "")
set(cases 0)

# Writes FROM (a source) including TO (a header that exists) in a fresh tree and runs the
# checker; records a failure unless it passes exactly when EXPECT_PASS.
function(expect_rule from to expect_pass)
  string(RANDOM LENGTH 8 ALPHABET abcdefghijklmnopqrstuvwxyz name)
  set(tree "${WORK_DIR}/${name}")
  file(REMOVE_RECURSE "${tree}")
  get_filename_component(to_dir "${to}" DIRECTORY)
  file(MAKE_DIRECTORY "${tree}/${to_dir}")
  file(WRITE "${tree}/${to}" "#pragma once\n")
  file(WRITE "${tree}/${from}" "// a ${name}\n#include <vector>\n\n#include \"${to}\"\n")
  execute_process(COMMAND ${CMAKE_COMMAND} -DGRAFT_ROOT=${tree} -P ${GRAFT_CHECKER}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  file(REMOVE_RECURSE "${tree}")
  set(verdict "")
  if(expect_pass AND NOT rc EQUAL 0)
    set(verdict "refused an allowed include:\n${err}")
  elseif(NOT expect_pass AND rc EQUAL 0)
    set(verdict "let a forbidden include pass")
  elseif(NOT expect_pass AND NOT err MATCHES "${from} includes")
    set(verdict "failed without naming ${from}:\n${err}")
  endif()
  if(verdict)
    set(failures "${failures}${from} -> ${to}: ${verdict}\n" PARENT_SCOPE)
  endif()
endfunction()

list(LENGTH chain n)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  foreach(j RANGE ${last})
    if(i EQUAL j)
      continue()
    endif()
    list(GET chain ${i} from_dir)
    list(GET chain ${j} to_dir)
    string(RANDOM LENGTH 6 ALPHABET abcdefghijklmnopqrstuvwxyz stem)
    set(pass FALSE)
    if(j GREATER i)  # further down the chain: a lower layer
      set(pass TRUE)
    endif()
    expect_rule("${from_dir}/${stem}.cpp" "${to_dir}/${stem}_dep.h" ${pass})
    math(EXPR cases "${cases} + 1")
  endforeach()
endforeach()

# The CUDA parts sit beside their layer; the CPU engine builds without them.
expect_rule(kernels/cuda/a.cu base/cuda/check.h TRUE)
expect_rule(kernels/lib/a.cu kernels/ops.h TRUE)
expect_rule(kernels/cuda/a.cu runtime/tensor.h FALSE)
expect_rule(kernels/cpu/a.cpp kernels/cuda/a.h FALSE)
expect_rule(kernels/cpu/a.cpp base/cuda/check.h FALSE)
expect_rule(runtime/cuda/a.cu kernels/lib/a.h TRUE)
expect_rule(runtime/cuda/a.cu layers/dense.h FALSE)
expect_rule(runtime/a.cpp runtime/cuda/device.h FALSE)
expect_rule(tools/graft/a.cpp runtime/cuda/backend.h TRUE)
expect_rule(base/a.h base/cuda/check.h FALSE)
# tests/ and bench/ include anything; nothing in the library includes them.
expect_rule(tests/a_test.cpp tools/graft/options.h TRUE)
expect_rule(bench/a.cu kernels/cuda/a.h TRUE)
expect_rule(layers/a.cpp tests/testing.h FALSE)
math(EXPR cases "${cases} + 13")

# The public API (api/, include/graft/, included as "graft/..."): above layers, below tools;
# nothing in the engine includes it.
expect_rule(api/a.cpp layers/zoo.h TRUE)
expect_rule(api/a.cpp runtime/cuda/backend.h TRUE)
expect_rule(api/a.cpp graft/graft.hpp TRUE)
expect_rule(include/graft/a.hpp base/error.h TRUE)
expect_rule(api/cuda/a.cpp api/device_memory.h TRUE)
expect_rule(tools/graft/a.cpp api/model.h TRUE)
expect_rule(tools/graft/a.cpp graft/graft.hpp TRUE)
expect_rule(api/a.cpp tools/graft/options.h FALSE)
expect_rule(api/a.cpp kernels/cuda/a.h FALSE)
expect_rule(layers/a.cpp api/model.h FALSE)
expect_rule(runtime/a.cpp graft/graft.hpp FALSE)
expect_rule(kernels/cpu/a.cpp include/graft/graft.h FALSE)
expect_rule(base/a.h graft/graft.h FALSE)
math(EXPR cases "${cases} + 13")

# CUDA's headers only in the CUDA units.
foreach(header cudnn.h cuda_runtime_api.h cublasLt.h)
  foreach(from runtime/a.cpp layers/a.cpp kernels/cpu/a.cpp base/a.h api/a.cpp include/graft/a.h)
    string(RANDOM LENGTH 8 ALPHABET abcdefghijklmnopqrstuvwxyz name)
    set(tree "${WORK_DIR}/${name}")
    file(WRITE "${tree}/${from}" "#include <${header}>\n")
    execute_process(COMMAND ${CMAKE_COMMAND} -DGRAFT_ROOT=${tree} -P ${GRAFT_CHECKER}
                    RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
    file(REMOVE_RECURSE "${tree}")
    if(rc EQUAL 0 OR NOT err MATCHES "${from} includes <${header}>")
      set(failures "${failures}${from} -> <${header}>: not refused by name\n")
    endif()
    math(EXPR cases "${cases} + 1")
  endforeach()
endforeach()

if(failures)
  message(FATAL_ERROR "include rule checker disagrees with the layering:\n${failures}")
endif()
message(STATUS "include rule checker: ${cases} cases agree with tools -> layers -> runtime -> kernels -> base")
