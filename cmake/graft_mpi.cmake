# MPI (Debian's Open MPI; tools/deps.sh installs it) for data-parallel training across
# processes: graft_mpi (runtime/mpi) when it is found. Included by the root CMakeLists.txt
# after graft_runtime. Sets GRAFT_HAVE_MPI and, for tests/, GRAFT_MPIEXEC.
option(GRAFT_MPI "Data-parallel training across processes with MPI, when MPI is found" ON)
set(GRAFT_HAVE_MPI OFF)
if(GRAFT_MPI)
  set(MPI_CXX_SKIP_MPICXX ON)  # only MPI's C interface is used
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(GRAFT_HAVE_MPI ON)
    set(GRAFT_MPIEXEC ${MPIEXEC_EXECUTABLE})
    file(GLOB GRAFT_MPI_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/runtime/mpi/*.cpp)
    graft_layer_library(graft_mpi ${GRAFT_MPI_SOURCES})
    target_link_libraries(graft_mpi PUBLIC graft_runtime MPI::MPI_CXX)
    target_compile_definitions(graft_mpi PUBLIC GRAFT_HAVE_MPI=1)
  endif()
endif()
message(STATUS "graft: MPI ${GRAFT_HAVE_MPI}")
