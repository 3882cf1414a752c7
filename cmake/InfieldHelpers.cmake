# infield_add_library(NAME <short> SOURCES ...): one library per folder, alias infield::<short>.
function(infield_add_library short)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  set(target infield_${short})
  add_library(${target} ${ARG_SOURCES})
  add_library(infield::${short} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${short} OUTPUT_NAME infield_${short})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic PUBLIC ${INFIELD_SIMD_FLAGS})
  target_link_libraries(${target} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  install(TARGETS ${target} EXPORT infieldTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endfunction()

# infield_add_test(<source> [LIBS ...] [LABELS ...]): tests mirror the tree; the test is named after
# the source path, e.g. tests/core/field_test.cpp -> core.field_test.
function(infield_add_test source)
  cmake_parse_arguments(ARG "" "TIMEOUT" "LIBS;LABELS" ${ARGN})
  get_filename_component(stem ${source} NAME_WE)
  get_filename_component(dir ${source} DIRECTORY)
  get_filename_component(group ${dir} NAME)
  set(target test_${group}_${stem})
  add_executable(${target} ${source})
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  # The benchmark problems live in ../shared beside the repository, fetched data sets in data/
  # (absent: those tests skip).
  target_compile_definitions(${target} PRIVATE
    INFIELD_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared"
    INFIELD_DATA_DIR="${PROJECT_SOURCE_DIR}/data")
  add_test(NAME ${group}.${stem} COMMAND ${target})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${group}.${stem} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  if(ARG_LABELS)
    set_tests_properties(${group}.${stem} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
