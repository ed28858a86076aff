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

# The instruction sets the CPU code is built for besides the baseline ("generic"), and their flags: on x86-64
# with GCC or Clang, and an ELF target (whose linker and objcopy keep the builds apart, see below); else none.
set(LSTM_NATIVE_ISA_VARIANTS)
set(LSTM_NATIVE_ISA_FLAGS_generic)
set(LSTM_NATIVE_ISA_FLAGS_avx2 -mavx2 -mfma)
set(LSTM_NATIVE_ISA_FLAGS_avx512 -mavx512f -mavx512dq -mavx512vl -mavx512bw -mavx2 -mfma)
if(CMAKE_EXECUTABLE_FORMAT STREQUAL "ELF" AND CMAKE_LINKER AND CMAKE_OBJCOPY)
  set(_lstm_native_cpu_dispatch 1)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    set(LSTM_NATIVE_ISA_VARIANTS avx2 avx512)
  endif()
else()
  set(_lstm_native_cpu_dispatch 0)
endif()

# The model loader and its streams (lstm_native/model.hpp), built where LSTM_NATIVE_WITH_MODEL_IO is 1.
set(LSTM_NATIVE_LOADER_SOURCES "${_lstm_native_source_dir}/cpp/src/model.cpp"
    "${_lstm_native_source_dir}/cpp/src/model_stream.cpp" "${_lstm_native_source_dir}/cpp/src/safetensors_file.cpp")

# lstm_native_add_cpu_library(<name> COMMON <common library> [ISAS <isa>...] [COMPILE_OPTIONS <flag>...]
#                             [LOADER_COMPILE_OPTIONS <flag>...])
# The CPU backend (cpp/src/): the library <name> whose public functions dispatch at first use to the fastest of
# its builds of the numeric code that the CPU runs ("generic" and each of ISAS, a subset of
# LSTM_NATIVE_ISA_VARIANTS), with the threads and the model loader (where LSTM_NATIVE_WITH_MODEL_IO is 1),
# linking the common library. COMPILE_OPTIONS apply to all its sources, LOADER_COMPILE_OPTIONS to the model
# loader's alone.
# Each build is also a static library of its own, <name>_<isa> (not installed), whose objects define the
# public names themselves: a program that picks a build itself (the Python modules) links one of them instead
# of <name>.
function(lstm_native_add_cpu_library name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "COMMON" "ISAS;COMPILE_OPTIONS;LOADER_COMPILE_OPTIONS")
  if(NOT ARG_COMMON)
    message(FATAL_ERROR "lstm_native_add_cpu_library(${name}): COMMON <common library> is required")
  endif()
  set(_src "${_lstm_native_source_dir}/cpp/src")
  add_library(${name}_runtime OBJECT "${_src}/threads.cpp" "${_src}/cpu_isa.cpp")
  _lstm_native_cpu_target_defaults(${name}_runtime ${ARG_COMMON} "${ARG_COMPILE_OPTIONS}")
  add_library(${name} STATIC "${_src}/dispatch_cpu.cpp" $<TARGET_OBJECTS:${name}_runtime>)
  _lstm_native_cpu_target_defaults(${name} ${ARG_COMMON} "${ARG_COMPILE_OPTIONS}")
  target_compile_definitions(${name} PRIVATE LSTM_NATIVE_CPU_DISPATCH=${_lstm_native_cpu_dispatch})
  foreach(isa IN ITEMS generic ${ARG_ISAS})
    _lstm_native_add_kernels(${name} ${isa} ${ARG_COMMON} "${ARG_COMPILE_OPTIONS}")
  endforeach()
  if(LSTM_NATIVE_WITH_MODEL_IO)
    set(_loader_sources ${LSTM_NATIVE_LOADER_SOURCES})
    target_sources(${name} PRIVATE ${_loader_sources})
    if(ARG_LOADER_COMPILE_OPTIONS)  # a property of the sources in this directory: one such library per directory
      set_source_files_properties(${_loader_sources} PROPERTIES COMPILE_OPTIONS "${ARG_LOADER_COMPILE_OPTIONS}")
    endif()
    # header-only and used inside the library only, like Eigen
    target_link_libraries(${name} PRIVATE $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>)
  endif()
endfunction()

# The compile settings of the CPU library and its object libraries, and what they link: the common library, and
# OpenMP where used.
function(_lstm_native_cpu_target_defaults name common options)
  _lstm_native_library_defaults(${name} "${options}")
  target_link_libraries(${name} PUBLIC ${common})
  if(LSTM_NATIVE_WITH_OPENMP)
    target_link_libraries(${name} PUBLIC OpenMP::OpenMP_CXX)
  endif()
endfunction()

# The build <library>_kernels_<isa> of the numeric code, and its objects in <library>. The builds' code must
# not mix: they define the same names, and each emits its own copy of every inline function and template
# instantiation it uses (Eigen's GEMM kernels, std::vector's members), which a linker would otherwise merge
# into one copy of one build, run by all (AVX-512 instructions on a CPU without them). So each build's objects
# are linked into one (ld -r, its section groups resolved inside it), and objcopy makes every symbol local but
# its table, lstm_native_cpu_kernels_<isa> (cpp/src/kernels_cpu.hpp).
function(_lstm_native_add_kernels library isa common options)
  set(_src "${_lstm_native_source_dir}/cpp/src")
  set(kernels ${library}_kernels_${isa})
  add_library(${kernels} OBJECT "${_src}/sequence_cpu.cpp" "${_src}/lstm_forward_cpu.cpp"
              "${_src}/lstm_backward_cpu.cpp" "${_src}/lstm_step_cpu.cpp" "${_src}/kernels_cpu.cpp")
  _lstm_native_cpu_target_defaults(${kernels} ${common} "${LSTM_NATIVE_ISA_FLAGS_${isa}};${options}")
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # the static variables of inline functions as weak symbols, which objcopy can make local, not GCC's
    # process-wide "unique" ones, which it cannot
    target_compile_options(${kernels} PRIVATE -fno-gnu-unique)
  endif()
  # Eigen is header-only and used only inside the library: consumers of the installed package never need it.
  target_link_libraries(${kernels} PRIVATE Eigen3::Eigen)
  # The library threads its own work (cpp/src/sequence_cpu.hpp); Eigen itself stays single-threaded.
  target_compile_definitions(${kernels} PRIVATE EIGEN_DONT_PARALLELIZE LSTM_NATIVE_KERNELS_ISA=${isa})
  string(TOUPPER "${isa}" _isa_upper)
  target_compile_definitions(${library} PRIVATE LSTM_NATIVE_KERNELS_${_isa_upper}=1)
  # The build alone, with the threads and cpu_supports (<library>_runtime), as an archive (so that a shared
  # object linking it with --exclude-libs keeps its symbols local).
  add_library(${library}_${isa} STATIC $<TARGET_OBJECTS:${kernels}> $<TARGET_OBJECTS:${library}_runtime>)
  _lstm_native_cpu_target_defaults(${library}_${isa} ${common} "")
  if(NOT _lstm_native_cpu_dispatch)  # the generic build alone: its objects as they are
    target_sources(${library} PRIVATE $<TARGET_OBJECTS:${kernels}>)
    return()
  endif()
  set(_merged "${CMAKE_CURRENT_BINARY_DIR}/${kernels}.merged.o")
  set(_object "${CMAKE_CURRENT_BINARY_DIR}/${kernels}.o")
  add_custom_command(OUTPUT "${_object}"
    COMMAND "${CMAKE_LINKER}" -r --force-group-allocation -o "${_merged}" "$<TARGET_OBJECTS:${kernels}>"
    COMMAND "${CMAKE_OBJCOPY}" --keep-global-symbol=lstm_native_cpu_kernels_${isa} "${_merged}" "${_object}"
    DEPENDS "$<TARGET_OBJECTS:${kernels}>" COMMAND_EXPAND_LISTS VERBATIM
    COMMENT "lstm_native: the ${isa} build of the CPU code as one object with local symbols")
  set_source_files_properties("${_object}" PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  target_sources(${library} PRIVATE "${_object}")
  add_dependencies(${library} ${kernels})  # the objects first (Makefile generators order targets, not files)
endfunction()
