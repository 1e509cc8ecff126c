# `cmake --install` for graft as a library: libgraft.so.<version> and libgraft.a, the public
# headers (include/graft/), graftConfig.cmake with its version file (find_package(graft)
# gives graft::graft), a pkg-config file, and the graft program. The config is written by
# hand from cmake/graftConfig.cmake.in: the static library's dependencies are the libraries
# found here, named by path, and CUDA's through find_dependency(CUDAToolkit).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# What a program linking libgraft.a needs besides it (libgraft.so carries its own).
set(GRAFT_STATIC_DEPS "${GRAFT_DEP_zlib_LIBRARY}")
if(TARGET graft_dep::blas)
  get_target_property(blas_libs graft_dep::blas INTERFACE_LINK_LIBRARIES)
  list(REMOVE_ITEM blas_libs Threads::Threads)
  list(APPEND GRAFT_STATIC_DEPS ${blas_libs})
endif()
set(GRAFT_STATIC_CUDA_DEPS "")
if(GRAFT_HAVE_CUDA)
  foreach(lib cublas cublasLt cudnn)
    if(TARGET graft_cuda_dep::${lib})
      get_target_property(loc graft_cuda_dep::${lib} IMPORTED_LOCATION)
      list(APPEND GRAFT_STATIC_CUDA_DEPS "${loc}")
    endif()
  endforeach()
endif()
list(JOIN GRAFT_STATIC_DEPS " " GRAFT_PC_STATIC_DEPS)
list(JOIN GRAFT_STATIC_CUDA_DEPS " " GRAFT_PC_STATIC_CUDA_DEPS)
if(GRAFT_HAVE_CUDA)
  string(APPEND GRAFT_PC_STATIC_CUDA_DEPS " -L${CUDAToolkit_LIBRARY_DIR} -lcudart")
endif()

set(GRAFT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/graft)
configure_package_config_file(cmake/graftConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/graftConfig.cmake
                              INSTALL_DESTINATION ${GRAFT_INSTALL_CMAKEDIR}
                              PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
# 0.x: a new minor version may change the API; within one minor version it stays.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/graftConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
configure_file(cmake/graft.pc.in ${CMAKE_CURRENT_BINARY_DIR}/graft.pc @ONLY)

install(TARGETS graft_shared graft_static
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/graft DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h*")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/graftConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/graftConfigVersion.cmake
        DESTINATION ${GRAFT_INSTALL_CMAKEDIR})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/graft.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
