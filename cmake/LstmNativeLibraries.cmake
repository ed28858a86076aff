# The definitions of the C++ libraries, used by the top-level CMakeLists.txt (the installed libraries and the
# Python modules' ISA variants) and by tests/cpp/CMakeLists.txt (the same libraries built from source with the
# sanitizers' or libFuzzer's instrumentation). Expects Eigen3::Eigen, and nlohmann_json::nlohmann_json where
# LSTM_NATIVE_WITH_MODEL_IO is 1 (cmake/LstmNativeDependencies.cmake finds them), and the LSTM_NATIVE_WITH_*
# variables that config.hpp states.

set(_lstm_native_source_dir "${CMAKE_CURRENT_LIST_DIR}/..")

# lstm_native/config.hpp, generated into ${PROJECT_BINARY_DIR}/include from the LSTM_NATIVE_WITH_* variables.
function(lstm_native_configure_header)
  configure_file("${_lstm_native_source_dir}/cpp/include/lstm_native/config.hpp.in"
                 "${PROJECT_BINARY_DIR}/include/lstm_native/config.hpp")
endfunction()

# What every library shares: C++17, position-independent code, the public headers (the source tree's and the
# generated config.hpp while building, the install tree's for consumers of the installed package), warnings,
# and `options` (instruction-set or instrumentation flags) on all its sources.
function(_lstm_native_library_defaults name options)
  target_compile_features(${name} PUBLIC cxx_std_17)
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_EXTENSIONS OFF)
  target_include_directories(${name} PUBLIC
    "$<BUILD_INTERFACE:${_lstm_native_source_dir}/cpp/include>"
    "$<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>"
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${name} PRIVATE -Wall -Wextra)
  endif()
  target_compile_options(${name} PRIVATE ${options})
endfunction()

# lstm_native_add_common_library(<name> [COMPILE_OPTIONS <flag>...])
# The backend-neutral part of the core (cpp/common/): the configuration and shape checks, the sequence calls'
# argument checks and workspace layout, the mask generator's public entry. No Eigen, no OpenMP, no CUDA; both
# backends link it.
function(lstm_native_add_common_library name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "COMPILE_OPTIONS")
  add_library(${name} STATIC
    "${_lstm_native_source_dir}/cpp/common/cell.cpp"
    "${_lstm_native_source_dir}/cpp/common/tensor.cpp"
    "${_lstm_native_source_dir}/cpp/common/sequence_checks.cpp")
  _lstm_native_library_defaults(${name} "${ARG_COMPILE_OPTIONS}")
endfunction()

# lstm_native_add_cpu_library(<name> COMMON <common library> [COMPILE_OPTIONS <flag>...]
#                             [LOADER_COMPILE_OPTIONS <flag>...])
# The CPU backend (cpp/src/), with the model loader where LSTM_NATIVE_WITH_MODEL_IO is 1, linking the common
# library. COMPILE_OPTIONS apply to all its sources, LOADER_COMPILE_OPTIONS to the model loader's alone.
function(lstm_native_add_cpu_library name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "COMMON" "COMPILE_OPTIONS;LOADER_COMPILE_OPTIONS")
  if(NOT ARG_COMMON)
    message(FATAL_ERROR "lstm_native_add_cpu_library(${name}): COMMON <common library> is required")
  endif()
  set(_src "${_lstm_native_source_dir}/cpp/src")
  add_library(${name} STATIC
    "${_src}/threads.cpp"
    "${_src}/sequence_cpu.cpp"
    "${_src}/lstm_forward_cpu.cpp"
    "${_src}/lstm_backward_cpu.cpp")
  if(LSTM_NATIVE_WITH_MODEL_IO)
    set(_loader_sources "${_src}/model.cpp" "${_src}/safetensors_file.cpp")
    target_sources(${name} PRIVATE ${_loader_sources})
    if(ARG_LOADER_COMPILE_OPTIONS)  # a property of the sources in this directory: one such library per directory
      set_source_files_properties(${_loader_sources} PROPERTIES COMPILE_OPTIONS "${ARG_LOADER_COMPILE_OPTIONS}")
    endif()
    # header-only and used inside the library only, like Eigen
    target_link_libraries(${name} PRIVATE $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>)
  endif()
  _lstm_native_library_defaults(${name} "${ARG_COMPILE_OPTIONS}")
  target_link_libraries(${name} PUBLIC ${ARG_COMMON})
  # Eigen is header-only and used only inside the library: consumers of the installed package never need it.
  target_link_libraries(${name} PRIVATE $<BUILD_INTERFACE:Eigen3::Eigen>)
  # The library threads its own work (cpp/src/sequence_cpu.hpp); Eigen itself stays single-threaded.
  target_compile_definitions(${name} PRIVATE EIGEN_DONT_PARALLELIZE)
  if(LSTM_NATIVE_WITH_OPENMP)
    target_link_libraries(${name} PUBLIC OpenMP::OpenMP_CXX)
  endif()
endfunction()
