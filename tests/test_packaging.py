"""The sdist holds what a build needs, and the version comes from one place (CMakeLists.txt's project()).
Building an sdist compiles nothing (about a second); tools/check_wheel.sh builds and installs the wheel."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a build from the sdist reads: the CMake project, the C++ sources and headers (the generated
# model_file_rules.inc included), the Python package, and the files pyproject.toml names.
BUILD_INPUTS = ("cmake", "cpp", "python")
BUILD_FILES = ("pyproject.toml", "CMakeLists.txt", "README.md", "requirements-build.txt", "CHANGELOG.md",
               "cpp/src/model_file_rules.inc")


def cmake_project_version(source: Path) -> str:
    match = re.search(r"^project\(lstm_native VERSION (\d+\.\d+\.\d+)", (source / "CMakeLists.txt").read_text(), re.M)
    assert match, "CMakeLists.txt: no project(lstm_native VERSION x.y.z)"
    return match.group(1)


def build_sdist(source: Path, out: Path) -> tuple[str, set[str]]:
    """scikit-build-core's sdist of `source` (PEP 517's build_sdist, as `python -m build --sdist` calls it):
    its PKG-INFO version and its file names relative to its top folder."""
    done = subprocess.run([sys.executable, "-c", "import sys; from scikit_build_core.build import build_sdist; "
                           "print(build_sdist(sys.argv[1]))", out], cwd=source, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with tarfile.open(out / done.stdout.split()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        pkg_info = sdist.extractfile(next(m for m in sdist.getmembers() if m.name.endswith("/PKG-INFO"))).read()
    version = re.search(r"^Version: (.+)$", pkg_info.decode(), re.M).group(1).strip()
    return version, {name for name in names if not name.endswith("/")}


def source_files(folder: str) -> set[str]:
    """The files of `folder` that git tracks: what a checkout holds, whatever tools left beside them (caches,
    builds)."""
    done = subprocess.run(["git", "ls-files", "-z", "--", folder], cwd=REPO, capture_output=True, text=True, check=True)
    return {name for name in done.stdout.split("\0") if name}


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> tuple[str, set[str]]:
    return build_sdist(REPO, tmp_path_factory.mktemp("sdist"))


def test_the_sdist_holds_what_the_build_needs(sdist):
    _, names = sdist
    missing = [name for name in BUILD_FILES if name not in names]
    missing += sorted(set().union(*map(source_files, BUILD_INPUTS)) - names)
    assert not missing, f"the sdist lacks {missing}"


def test_the_sdist_holds_no_build_outputs_or_developer_folders(sdist):
    _, names = sdist
    stray = [name for name in names if name.startswith((".", "build/", "dist/")) or "/." in name
             or name.endswith((".so", ".pyc", ".whl"))]
    assert not stray, stray


def test_the_sdist_version_is_cmakelists_project_version(sdist):
    assert sdist[0] == cmake_project_version(REPO)


def test_a_new_version_in_cmakelists_alone_reaches_the_package_metadata(tmp_path):
    """The version is set once: changing project()'s VERSION changes the distribution's version (pyproject.toml
    reads it, the module and the CMake package are configured from it)."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "dist", "__pycache__"))
    cmakelists = source / "CMakeLists.txt"
    text = cmakelists.read_text()
    bumped = re.sub(r"^(project\(lstm_native VERSION )\d+\.\d+\.\d+", r"\g<1>9.8.7", text, count=1, flags=re.M)
    assert bumped != text
    cmakelists.write_text(bumped)
    assert build_sdist(source, tmp_path)[0] == "9.8.7"
    # the C++ side: config.hpp's LSTM_NATIVE_VERSION (the module's __version__) is project()'s version
    assert '"@PROJECT_VERSION@"' in (REPO / "cpp/include/lstm_native/config.hpp.in").read_text()
