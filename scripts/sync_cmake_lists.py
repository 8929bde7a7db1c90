"""Rewrite SEGMOTELIB_PYTHON_SCRIPTS / _RESOURCES in the top-level CMakeLists.txt from the files on disk.

    python scripts/sync_cmake_lists.py .
"""
import re
import sys
from pathlib import Path

repo = Path(sys.argv[1])
def files(folder, keep):
    return sorted(p.relative_to(repo).as_posix() for p in (repo / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc" and keep(p))
scripts = files("SegMoTELib", lambda p: p.suffix == ".py")
other = files("SegMoTELib", lambda p: p.suffix != ".py")
resources = other + files("Resources", lambda p: True)
cmake = repo / "CMakeLists.txt"
text = cmake.read_text()
def block(name, items):
    return f"set({name}\n" + "".join(f"  {item}\n" for item in items) + "  )"
text = re.sub(r"set\(SEGMOTELIB_PYTHON_SCRIPTS\n.*?\n  \)", block("SEGMOTELIB_PYTHON_SCRIPTS", scripts), text, flags=re.S)
text = re.sub(r"set\(SEGMOTELIB_PYTHON_RESOURCES\n.*?\n  \)", block("SEGMOTELIB_PYTHON_RESOURCES", resources), text, flags=re.S)
cmake.write_text(text)
print(len(scripts), "scripts,", len(resources), "resources")
