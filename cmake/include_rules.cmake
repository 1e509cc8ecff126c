# Runs cmake/check_includes.cmake over the source tree before any library compiles (every
# layer target depends on graft_include_rules), again whenever a checked source changes.
file(GLOB_RECURSE GRAFT_CHECKED_SOURCES CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/base/*.h ${PROJECT_SOURCE_DIR}/base/*.cpp
     ${PROJECT_SOURCE_DIR}/kernels/*.h ${PROJECT_SOURCE_DIR}/kernels/*.cpp
     ${PROJECT_SOURCE_DIR}/kernels/*.cu ${PROJECT_SOURCE_DIR}/kernels/*.cuh
     ${PROJECT_SOURCE_DIR}/runtime/*.h ${PROJECT_SOURCE_DIR}/runtime/*.cpp ${PROJECT_SOURCE_DIR}/runtime/*.cu
     ${PROJECT_SOURCE_DIR}/layers/*.h ${PROJECT_SOURCE_DIR}/layers/*.cpp
     ${PROJECT_SOURCE_DIR}/tools/*.h ${PROJECT_SOURCE_DIR}/tools/*.cpp
     ${PROJECT_SOURCE_DIR}/api/*.h ${PROJECT_SOURCE_DIR}/api/*.cpp ${PROJECT_SOURCE_DIR}/api/*.cu
     ${PROJECT_SOURCE_DIR}/include/graft/*.h ${PROJECT_SOURCE_DIR}/include/graft/*.hpp)
set(GRAFT_INCLUDE_RULES_STAMP ${CMAKE_BINARY_DIR}/include_rules.stamp)
add_custom_command(
  OUTPUT ${GRAFT_INCLUDE_RULES_STAMP}
  COMMAND ${CMAKE_COMMAND} -DGRAFT_ROOT=${PROJECT_SOURCE_DIR} -P ${PROJECT_SOURCE_DIR}/cmake/check_includes.cmake
  COMMAND ${CMAKE_COMMAND} -E touch ${GRAFT_INCLUDE_RULES_STAMP}
  DEPENDS ${GRAFT_CHECKED_SOURCES} ${PROJECT_SOURCE_DIR}/cmake/check_includes.cmake
  COMMENT "Checking graft's include rules"
  VERBATIM)
add_custom_target(graft_include_rules ALL DEPENDS ${GRAFT_INCLUDE_RULES_STAMP})
