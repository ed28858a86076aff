# The two header-only libraries the core builds with, found as CMake packages (apt, conda, vcpkg) or, failing
# that, in the PyPI wheels of the Python that CMake finds (-DPython_EXECUTABLE=... picks one): cmeel-eigen keeps
# Eigen's CMake config under site-packages/cmeel.prefix, nlohmann-json ships only the headers. Used by the
# top-level CMakeLists.txt and tests/cpp/CMakeLists.txt.

# Where a Python package's files lie, without importing it: ${out} is empty if it is not installed.
function(_lstm_native_python_locate out snippet)
  set(${out} "" PARENT_SCOPE)
  find_package(Python COMPONENTS Interpreter QUIET)
  if(Python_Interpreter_FOUND)
    execute_process(COMMAND "${Python_EXECUTABLE}" -c "${snippet}" OUTPUT_VARIABLE _path
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _result)
    if(_result EQUAL 0 AND EXISTS "${_path}")
      set(${out} "${_path}" PARENT_SCOPE)
    endif()
  endif()
endfunction()

# Eigen3::Eigen (3.4), or a fatal error that says how to get it.
macro(lstm_native_find_eigen)
  _lstm_native_python_locate(_lstm_native_cmeel_prefix
    "import importlib.metadata as m; print(m.distribution('cmeel-eigen').locate_file('cmeel.prefix'))")
  if(_lstm_native_cmeel_prefix)
    list(APPEND CMAKE_PREFIX_PATH "${_lstm_native_cmeel_prefix}")
  endif()
  find_package(Eigen3 3.4 CONFIG QUIET)
  if(NOT Eigen3_FOUND)
    message(FATAL_ERROR "lstm_native needs Eigen 3.4 (header-only). Get it with `pip install cmeel-eigen` (found "
                        "through the Python that CMake finds; pass -DPython_EXECUTABLE=... to pick one), "
                        "`apt install libeigen3-dev`, conda or vcpkg, or point -DEigen3_DIR at its CMake config.")
  endif()
endmacro()

# nlohmann_json::nlohmann_json where found (the C++ model loader's JSON parser); sets nlohmann_json_FOUND.
macro(lstm_native_find_json)
  find_package(nlohmann_json 3 QUIET)
  if(NOT nlohmann_json_FOUND)
    _lstm_native_python_locate(_lstm_native_json_include
      "import importlib.util as u, os; print(os.path.join(list(u.find_spec('nlohmann_json').submodule_search_locations)[0], 'include'))")
    if(_lstm_native_json_include AND EXISTS "${_lstm_native_json_include}/nlohmann/json.hpp")
      add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
      set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
                            INTERFACE_INCLUDE_DIRECTORIES "${_lstm_native_json_include}")
      set(nlohmann_json_FOUND TRUE)
    endif()
  endif()
endmacro()
