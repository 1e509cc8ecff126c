# The host libraries graft builds with, as imported targets named graft_dep::*, found either
# through the packages' own CMake configs (Debian's -dev packages) or, where a machine has no
# configs, as plain headers and libraries under CMAKE_PREFIX_PATH: the prefix that
# tools/gpu-kit.sh carries to a GPU machine that has none of our Debian packages.
#
#   graft_dep::zlib   zlib (IDX .gz files)            graft_dep::json  nlohmann/json (headers)
#   graft_dep::cli11  CLI11 (headers)                 graft_dep::stb   stb_image (headers)
#   graft_dep::yaml   yaml-cpp (graft --config)       graft_dep::blas  OpenBLAS's cblas (optional)
#
# GRAFT_PORTABLE links every one of them statically (and libstdc++, libgcc), so the binaries
# carry nothing but glibc and the CUDA libraries as dependencies.

function(graft_dep_fail what package)
  message(FATAL_ERROR "graft needs ${what}: install the Debian package ${package} (tools/deps.sh does), "
                      "or put its headers and libraries under a prefix named in CMAKE_PREFIX_PATH")
endfunction()

# A header-only dependency: its include folder as an INTERFACE target.
function(graft_header_dep target header package)
  find_path(GRAFT_DEP_${target}_INCLUDE_DIR ${header})
  if(NOT GRAFT_DEP_${target}_INCLUDE_DIR)
    graft_dep_fail(${header} ${package})
  endif()
  add_library(graft_dep::${target} INTERFACE IMPORTED)
  set_target_properties(graft_dep::${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${GRAFT_DEP_${target}_INCLUDE_DIR}")
endfunction()

# A compiled dependency: header + library; static archives first when GRAFT_PORTABLE.
function(graft_library_dep target header package)
  cmake_parse_arguments(ARG "" "" "NAMES" ${ARGN})
  set(names ${ARG_NAMES})
  if(GRAFT_PORTABLE)
    list(TRANSFORM ARG_NAMES PREPEND "lib" OUTPUT_VARIABLE static_names)
    list(TRANSFORM static_names APPEND ".a")
    set(names ${static_names})  # portable binaries must not need the shared library
  endif()
  find_path(GRAFT_DEP_${target}_INCLUDE_DIR ${header})
  find_library(GRAFT_DEP_${target}_LIBRARY NAMES ${names})
  if(NOT GRAFT_DEP_${target}_INCLUDE_DIR OR NOT GRAFT_DEP_${target}_LIBRARY)
    graft_dep_fail("${header} and ${names}" ${package})
  endif()
  add_library(graft_dep::${target} UNKNOWN IMPORTED)
  set_target_properties(graft_dep::${target} PROPERTIES IMPORTED_LOCATION "${GRAFT_DEP_${target}_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${GRAFT_DEP_${target}_INCLUDE_DIR}")
endfunction()

find_package(Threads REQUIRED)
graft_library_dep(zlib zlib.h zlib1g-dev NAMES z)
graft_library_dep(yaml yaml-cpp/yaml.h libyaml-cpp-dev NAMES yaml-cpp)
graft_header_dep(json nlohmann/json.hpp nlohmann-json3-dev)
graft_header_dep(cli11 CLI/CLI.hpp libcli11-dev)
graft_header_dep(stb stb/stb_image.h libstb-dev)

# OpenBLAS: the CPU GEMM's fast path. Without it the built-in blocked loop runs (slower, same
# results within float tolerance). Statically it needs the Fortran runtime it was built with.
option(GRAFT_OPENBLAS "Use OpenBLAS for the CPU GEMM when it is found" ON)
if(GRAFT_OPENBLAS)
  find_path(CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas)
  if(GRAFT_PORTABLE)
    find_library(OPENBLAS_LIBRARY NAMES libopenblas.a)
    find_library(GFORTRAN_STATIC NAMES libgfortran.a HINTS ${CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES})
    find_library(QUADMATH_STATIC NAMES libquadmath.a HINTS ${CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES})
    set(blas_extra ${GFORTRAN_STATIC} ${QUADMATH_STATIC})
    if(NOT GFORTRAN_STATIC OR NOT QUADMATH_STATIC)
      set(OPENBLAS_LIBRARY OPENBLAS_LIBRARY-NOTFOUND)
    endif()
  else()
    find_library(OPENBLAS_LIBRARY openblas)
  endif()
  if(OPENBLAS_LIBRARY AND CBLAS_INCLUDE_DIR)
    add_library(graft_dep::blas INTERFACE IMPORTED)
    set_target_properties(graft_dep::blas PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${CBLAS_INCLUDE_DIR}"
                          INTERFACE_LINK_LIBRARIES "${OPENBLAS_LIBRARY};${blas_extra};Threads::Threads;m")
    message(STATUS "graft: CPU GEMM through OpenBLAS (${OPENBLAS_LIBRARY})")
  else()
    message(WARNING "OpenBLAS not found: CPU GEMM uses the built-in blocked loop (slower)")
  endif()
endif()
