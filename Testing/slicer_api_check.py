"""Checks Python sources that use 3D Slicer's API against Slicer 5.10's API index; no Slicer needed.

The index (`slicer-api-5.10.json`, see its README) lists Slicer's C++ classes (methods with argument
counts per overload, Qt signals and properties, enums, first base) and Python modules (functions and
methods with their arguments). The checker infers the class behind expressions — `slicer.app`,
`slicer.mrmlScene`, `slicer.<class>(...)`, `qt.<class>(...)`, `AddNewNodeByClass("vtkMRML...")`,
`GetNodeByID`, `slicer.util` helpers, widgets of a module's `.ui` file (`self.ui.<name>`),
annotated parameters and returns, `self.scriptedEffect`, known getters — and reports, as
`file:line: message`:
- every attribute used on them that the class and its bases do not have;
- every call whose argument count fits no overload of the receiver's class (and, where the receiver
  is unknown, of no class of the index defining that method; names the project defines itself and
  Python's built-in types' methods are left out there);
- every `connect("signal(...)")` / `disconnect(...)` string that is not a signal of the receiver's
  class with that many arguments;
- `slicer.util` calls with unknown keywords or a positional count outside the function's.
Expressions of unknown class are not checked (counted in `stats`). Qt and VTK classes come from
`qt_classes` (hand-checked) or the `vtk` wheel when installed. Where slicer-core (a test dependency)
wraps the receiver's class, its live Python signatures decide too (slicer_live_api): a call must fit
both the 5.10 index and the wrapped class, and a member the index lists must exist in Python.
"""

from __future__ import annotations

import ast
import json
import re
import unittest
from pathlib import Path

from qt_classes import QT_CLASSES, VTK_CLASSES, qt_chain
from slicer_api_types import (
    NODE_FACTORIES,
    NODE_GETTERS,
    RETURN_TYPES,
    SLICER_NAMESPACES,
    UTIL_RETURNS,
    VTK_MODULES,
)

SIGNAL_CALLS = {"connect": None, "disconnect": None, "connectSignal": 0}
SIGNAL_STRING = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$")
MODULE_LOGICS = {"segmentations": "vtkSlicerSegmentationsModuleLogic", "markups": "vtkSlicerMarkupsLogic",
                 "volumes": "vtkSlicerVolumesLogic", "colors": "vtkSlicerColorLogic"}
MODULE_MEMBERS = {"logic", "widgetRepresentation", "createNewWidgetRepresentation", "path", "title", "name"}
PYTHON_BASE_ATTRIBUTES = {"AbstractScriptedSegmentEditorEffect": {"scriptedEffect": "qSlicerSegmentEditorScriptedEffect"}}
EFFECT_FILES = "Modules/Loadable/Segmentations/EditorEffects/Python/SegmentEditorEffects/"
SCRIPTED_FILE = "Base/Python/slicer/ScriptedLoadableModule.py"
UTIL_FILE = "Base/Python/slicer/util.py"


def load_index(path) -> dict:
    return json.loads(Path(path).read_text())


def _vtk():
    try:
        import vtk
    except ImportError:
        return None
    return vtk


def _builtin_method_names() -> set[str]:
    import collections
    import queue
    import threading

    names = set()
    for kind in (list, dict, set, str, bytes, tuple, int, float, Path, collections.deque, queue.PriorityQueue,
                 threading.Event, threading.Thread, threading.Lock().__class__):
        names |= set(dir(kind))
    return names


class ApiChecker:
    def __init__(self, index: dict, ui_widgets=None, project_names=(), live=None):
        """`ui_widgets(relative_ui_path)`: {widget name: class} of a module's .ui file (or None);
        `project_names`: method names the project defines itself (left out of the unknown-receiver
        argument check, where a name could be ours or Slicer's); `live`: slicer_live_api.LiveSignatures
        (Slicer's wrapped classes as Python sees them), checked beside the index where it has the class."""
        self.live = live
        self.cpp = index["cpp"]
        python = index["python"]
        self.util_functions = python[UTIL_FILE]["functions"]
        self.util_names = set(self.util_functions) | set(python[UTIL_FILE]["classes"])
        self.python_bases = dict(python[UTIL_FILE]["classes"])
        self.python_bases.update(python[SCRIPTED_FILE]["classes"])
        self.effect_classes = {}
        for path, entry in python.items():
            if path.startswith(EFFECT_FILES):
                self.effect_classes.update(entry["classes"])
        self.python_bases.update(self.effect_classes)
        self.vtk = _vtk()
        self.ui_widgets = ui_widgets or (lambda path: None)
        self.unchecked_names = set(project_names) | _builtin_method_names()
        self.overloads_by_name: dict[str, list] = {}
        for entry in self.cpp.values():
            for name, overloads in entry["methods"].items():
                self.overloads_by_name.setdefault(name, []).extend(overloads)
        self.stats = {"checked": 0, "unchecked": 0}

    # --- class knowledge -------------------------------------------------------------------------
    def chain(self, cls: str):
        """(class, kind, entry) along the base chain: kind "cpp" (index), "qt", "vtk"; ("?", None) where it ends unknown."""
        seen = set()
        while cls and cls not in seen:
            seen.add(cls)
            if cls in self.cpp:
                yield cls, "cpp", self.cpp[cls]
                cls = self.cpp[cls]["base"]
            elif cls in QT_CLASSES:
                for name, entry in qt_chain(cls):
                    yield name, "qt", entry
                return
            elif cls.startswith("vtk") and (self.vtk is not None and hasattr(self.vtk, cls) or cls in VTK_CLASSES):
                yield cls, "vtk", VTK_CLASSES.get(cls)
                cls = VTK_CLASSES[cls][0] if cls in VTK_CLASSES else None
            else:
                yield cls, "?", None
                return

    def member_problem(self, cls: str, name: str):
        """(known, problem): whether the class is known at all, and why `name` cannot be used on it (or None).
        A class slicer-core wraps must have the name there too: the index reads C++ headers, and some
        members never reach Python."""
        indexed = self.has_member(cls, name)
        wrapped = self.live.has_member(cls, name) if self.live is not None else None
        if indexed is None and wrapped is None:
            return False, None
        if indexed is False:
            return True, f"{cls} has no method or enum '{name}' (Slicer API index, bases included)"
        if wrapped is False:
            return True, (f"{cls}.{name} is not reachable from Python: slicer-core's wrapped class has no "
                          f"'{name}' (the Slicer 5.10 index reads it from a C++ header)")
        return True, None

    def has_member(self, cls: str, name: str):
        """True / False, or None where the class (or a base) is unknown to the index and qt_classes."""
        for owner, kind, entry in self.chain(cls):
            if kind == "cpp" and (name in entry["methods"] or name in entry["enums"] or name in entry["properties"]
                                  or name in entry["signals"]):
                return True
            if kind == "qt" and (name in entry[1] or name in entry[2] or name in entry[3]):
                return True
            if kind == "vtk":
                if self.vtk is not None and hasattr(self.vtk, owner):
                    return hasattr(getattr(self.vtk, owner), name)
                if name in entry[1]:
                    return True
            if kind == "?":
                return None
        return False

    def overloads(self, cls: str, name: str):
        """[[min, max], ...] of the method along the chain, or None where the index has no counts for it."""
        for _owner, kind, entry in self.chain(cls):
            if kind == "cpp" and name in entry["methods"]:
                return entry["methods"][name]
            if kind != "cpp":
                return None
        return None

    def signal_counts(self, cls: str, name: str):
        """Argument counts of a Qt signal; [] when the class is known and has no such signal; None if unknown."""
        for _owner, kind, entry in self.chain(cls):
            if kind == "cpp" and name in entry["signals"]:
                return entry["signals"][name]
            if kind == "qt" and name in entry[2]:
                return entry[2][name]
            if kind in ("?", "vtk"):
                return None
        return []

    def has_property(self, cls: str, name: str):
        for _owner, kind, entry in self.chain(cls):
            if (kind == "cpp" and name in entry["properties"]) or (kind == "qt" and name in entry[3]):
                return True
            if kind in ("?", "vtk"):
                return None
        return False

    def is_class(self, name: str) -> bool:
        return name in self.cpp

    def python_base_methods(self, base: str) -> set[str] | None:
        methods, stack = set(), [base]
        while stack:
            name = stack.pop()
            if name == "unittest.TestCase":
                methods |= set(dir(unittest.TestCase))
                continue
            entry = self.python_bases.get(name)
            if entry is None:
                return None
            methods |= set(entry["methods"])
            stack += entry["bases"]
        return methods

    # --- entry point -----------------------------------------------------------------------------
    def check_source(self, source: str, path: str) -> list[str]:
        self.stats = {"checked": 0, "unchecked": 0}
        return _Module(self, ast.parse(source), path).check()


class _Module:
    def __init__(self, checker: ApiChecker, tree: ast.Module, path: str):
        self.c = checker
        self.tree = tree
        self.path = path
        self.errors: list[str] = []
        self.names: dict = {}
        self.functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        self.classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        self.class_attributes: dict[str, dict] = {}

    def error(self, node, message: str) -> None:
        self.errors.append(f"{self.path}:{node.lineno}: {message}")

    # --- imports ---------------------------------------------------------------------------------
    def read_imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    self.names[local] = ("module", alias.name if alias.asname else local)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.names[alias.asname or alias.name] = self.imported(node, alias.name)

    def imported(self, node: ast.ImportFrom, name: str):
        module = node.module
        if module == "slicer.ScriptedLoadableModule" or module == "SegmentEditorEffects":
            known = self.c.python_bases if module == "slicer.ScriptedLoadableModule" else self.c.effect_classes
            if name not in known:
                self.error(node, f"{module} has no class '{name}' in the Slicer API index")
            return ("pybase", name)
        if module == "slicer.util":
            if name not in self.c.util_names:
                self.error(node, f"slicer.util has no '{name}' in the Slicer API index")
            return ("utilfunc", name)
        if module == "vtk.util":
            return ("module", f"vtk.util.{name}")
        if module == "slicer" and self.c.is_class(name):
            return ("classref", name)
        return None

    # --- types -----------------------------------------------------------------------------------
    def annotation_type(self, node):
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self.annotation_type(ast.parse(node.value, mode="eval").body)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self.annotation_type(node.left) or self.annotation_type(node.right)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "slicer":
            return ("cls", node.attr) if self.c.is_class(node.attr) else None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("vtk", "qt"):
            return ("cls", node.attr)
        return None

    def type_of(self, node, env: dict):
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute_type(self.type_of(node.value, env), node.attr)
        if isinstance(node, ast.Call):
            return self.call_type(node, env)
        return None

    def attribute_type(self, owner, attr: str):
        if owner == ("module", "slicer"):
            special = {"app": ("cls", "qSlicerApplication"), "mrmlScene": ("cls", "vtkMRMLScene"),
                       "util": ("module", "slicer.util"), "modules": ("modules",)}
            return special.get(attr) or (("classref", attr) if self.c.is_class(attr) else None)
        if owner == ("module", "vtk"):
            return ("classref", attr) if attr.startswith("vtk") else ("module", f"vtk.{attr}")
        if owner == ("module", "qt"):
            return ("classref", attr) if attr.startswith("Q") else None
        if owner and owner[0] == "uivars":
            widgets = self.c.ui_widgets(owner[1]) or {}
            return ("cls", widgets[attr]) if attr in widgets else None
        if owner == ("module", "vtk.util"):
            return ("module", f"vtk.util.{attr}")
        if owner == ("module", "slicer.util"):
            return ("utilfunc", attr)
        if owner == ("modules",):
            return ("slicermodule", attr)
        if owner and owner[0] == "pyself":
            return self.class_attributes.get(owner[1], {}).get(attr) or self.base_attribute(owner[1], attr)
        return None

    def base_attribute(self, class_name: str, attr: str):
        for base in self.class_bases(class_name):
            if base in PYTHON_BASE_ATTRIBUTES and attr in PYTHON_BASE_ATTRIBUTES[base]:
                return ("cls", PYTHON_BASE_ATTRIBUTES[base][attr])
        return None

    def call_type(self, node: ast.Call, env: dict):
        func = node.func
        ftype = self.type_of(func, env)
        if ftype and ftype[0] == "classref":
            return ("cls", ftype[1])
        if ftype and ftype[0] == "utilfunc":
            return self.util_call_type(ftype[1], node, env)
        if isinstance(func, ast.Attribute):
            receiver = self.type_of(func.value, env)
            if receiver and receiver[0] == "cls":
                first = node.args[0] if node.args else None
                if func.attr in NODE_FACTORIES and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    return ("cls", first.value)
                if func.attr in NODE_GETTERS:
                    return ("cls", NODE_GETTERS[func.attr])
                return ("cls", RETURN_TYPES[func.attr]) if func.attr in RETURN_TYPES else None
            if receiver and receiver[0] == "slicermodule" and func.attr == "logic":
                return ("cls", MODULE_LOGICS[receiver[1]]) if receiver[1] in MODULE_LOGICS else None
            if receiver and receiver[0] == "pyself":
                method = self.find_method(receiver[1], func.attr)
                return self.annotation_type(method.returns) if method is not None else None
        if isinstance(func, ast.Name) and func.id in self.functions and func.id not in env:
            return self.annotation_type(self.functions[func.id].returns)
        return None

    def util_call_type(self, name: str, node: ast.Call, env: dict | None = None):
        if name == "getFirstNodeByClassByName" and node.args and isinstance(node.args[0], ast.Constant):
            return ("cls", node.args[0].value)
        if name == "loadUI" and node.args:
            path = _ui_path(node.args[0])
            widgets = self.c.ui_widgets(path) if path else None
            if widgets is not None:
                return ("cls", widgets[None], path)  # the root widget (key None), its .ui file
        if name == "childWidgetVariables" and node.args:
            owner = self.type_of(node.args[0], env or {})
            return ("uivars", owner[2]) if owner and owner[0] == "cls" and len(owner) == 3 else None
        for keyword in node.keywords:
            if name == "addVolumeFromArray" and keyword.arg == "nodeClassName" and isinstance(keyword.value, ast.Constant):
                return ("cls", keyword.value.value)
        return ("cls", UTIL_RETURNS[name]) if name in UTIL_RETURNS else None

    # --- classes -----------------------------------------------------------------------------------
    def class_bases(self, class_name: str) -> list[str]:
        bases, stack = [], [class_name]
        while stack:
            cls = self.classes.get(stack.pop())
            for base in cls.bases if cls else []:
                kind = self.names.get(base.id) if isinstance(base, ast.Name) else None
                if kind and kind[0] == "pybase":
                    bases.append(kind[1])
                elif isinstance(base, ast.Name) and base.id in self.classes:
                    stack.append(base.id)
                else:
                    bases.append("?")
        return bases

    def find_method(self, class_name: str, name: str):
        stack = [class_name]
        while stack:
            cls = self.classes.get(stack.pop())
            if cls is None:
                continue
            for item in cls.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    return item
            stack += [b.id for b in cls.bases if isinstance(b, ast.Name) and b.id in self.classes]
        return None

    def self_call_known(self, class_name: str, name: str):
        """True/False whether `self.name(...)` exists; None when a base class is unknown."""
        if self.find_method(class_name, name) is not None or name in self.class_attributes.get(class_name, {}):
            return True
        methods = set()
        for base in self.class_bases(class_name):
            base_methods = self.c.python_base_methods(base)
            if base_methods is None:
                return None
            methods |= base_methods
        return name in methods

    # --- scopes ------------------------------------------------------------------------------------
    def function_env(self, function, outer: dict, class_name: str | None) -> dict:
        env = dict(outer)
        arguments = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
        for index, argument in enumerate(arguments):
            env[argument.arg] = self.annotation_type(argument.annotation)
            if index == 0 and class_name and argument.arg == "self":
                env["self"] = ("pyself", class_name)
            if class_name and argument.arg == "scriptedEffect":
                env["scriptedEffect"] = self.base_attribute(class_name, "scriptedEffect")
        return self.assignments_env(function.body, env)

    def assignments_env(self, body, env: dict) -> dict:
        """Flow-insensitive local types: a name assigned values of two classes is unknown."""
        for _ in range(2):  # twice, so that chains of assignments resolve
            conflicts = set()
            for node in _scope_nodes(body):
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    env[node.target.id] = self.annotation_type(node.annotation)
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    name, value = node.targets[0].id, self.type_of(node.value, env)
                    if value is None:
                        env.setdefault(name, None)
                        continue
                    if env.get(name) not in (None, value) and name != "self":
                        conflicts.add(name)
                    env[name] = value
            for name in conflicts:
                env[name] = None
        return env

    def collect_class_attributes(self) -> None:
        for class_name, cls in self.classes.items():
            attributes, declared = {}, set()
            for method in (i for i in cls.body if isinstance(i, ast.FunctionDef)):
                env = self.function_env(method, {}, class_name)
                for node in _scope_nodes(method.body):
                    if isinstance(node, ast.AnnAssign) and _is_self_attribute(node.target):
                        attributes[node.target.attr] = self.annotation_type(node.annotation)
                        declared.add(node.target.attr)
                    elif isinstance(node, ast.Assign):
                        for target in (t for t in node.targets if _is_self_attribute(t)):
                            value = self.type_of(node.value, env)
                            if target.attr in declared or value is None:
                                attributes.setdefault(target.attr, None)
                                continue
                            previous = attributes.get(target.attr) or value
                            attributes[target.attr] = value if previous == value else None
            self.class_attributes[class_name] = attributes

    # --- checks ------------------------------------------------------------------------------------
    def check(self) -> list[str]:
        self.read_imports()
        self.collect_class_attributes()
        self.check_scope(self.tree.body, self.assignments_env(self.tree.body, {}), None)
        return self.errors

    def check_scope(self, body, env: dict, class_name: str | None) -> None:
        for node in _scope_nodes(body):
            if isinstance(node, ast.ClassDef):
                self.check_scope(node.body, env, node.name)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = self.function_env(node, env, class_name)
                self.check_scope(node.body, inner, None)
            elif isinstance(node, ast.Lambda):
                self.check_scope([ast.Expr(node.body, lineno=node.lineno)], env, None)
            elif isinstance(node, ast.Attribute):
                self.check_attribute(node, env)
            elif isinstance(node, ast.Call):
                self.check_call(node, env)

    def check_attribute(self, node: ast.Attribute, env: dict) -> None:
        owner, attr = self.type_of(node.value, env), node.attr
        if owner is None:
            self.c.stats["unchecked"] += 1
            return
        kind = owner[0]
        if owner == ("module", "slicer"):
            ok = attr in SLICER_NAMESPACES or self.c.is_class(attr)
            message = f"slicer has no attribute '{attr}' (not a Slicer class in the API index)"
        elif owner == ("module", "slicer.util"):
            ok, message = attr in self.c.util_names, f"slicer.util has no '{attr}' in the Slicer API index"
        elif kind == "module" and owner[1] in VTK_MODULES:
            ok, message = attr in VTK_MODULES[owner[1]], f"{owner[1]} has no '{attr}'"
        elif kind in ("cls", "classref"):
            known, problem = self.c.member_problem(owner[1], attr)
            if not known:
                self.c.stats["unchecked"] += 1
                return
            ok, message = problem is None, problem
        elif kind == "uivars":
            widgets = self.c.ui_widgets(owner[1])
            if widgets is None:
                self.c.stats["unchecked"] += 1
                return
            ok, message = attr in widgets, f"{owner[1]} has no widget named '{attr}'"
        elif kind == "slicermodule":
            ok, message = attr in MODULE_MEMBERS, f"slicer.modules.{owner[1]} has no '{attr}'"
        else:
            self.c.stats["unchecked"] += 1
            return
        self.c.stats["checked"] += 1
        if not ok:
            self.error(node, message)

    def check_call(self, node: ast.Call, env: dict) -> None:
        func = node.func
        ftype = self.type_of(func, env)
        if ftype and ftype[0] == "utilfunc" and ftype[1] in self.c.util_functions:
            self.check_python_call(node, f"slicer.util.{ftype[1]}", self.c.util_functions[ftype[1]])
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = env.get(func.value.id)
            if owner and owner[0] == "pyself":
                known = self.self_call_known(owner[1], func.attr)
                if known is False:
                    self.error(node, f"self.{func.attr}() is defined neither in class {owner[1]} nor in its "
                                     f"Slicer base classes (Slicer API index)")
                self.c.stats["checked" if known is not None else "unchecked"] += 1
        if isinstance(func, ast.Attribute):
            self.check_argument_count(node, func, env)
            if func.attr in SIGNAL_CALLS:
                self.check_signal_string(node, func, env)

    def check_python_call(self, node: ast.Call, name: str, function: dict) -> None:
        """Keywords and positional count of a call of a Slicer Python function (index: args, required, max_positional)."""
        parameters = function["args"]
        self.c.stats["checked"] += 1
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return
        if "**kwargs" not in parameters:
            for keyword in node.keywords:
                if keyword.arg not in parameters:
                    self.error(node, f"{name}() has no parameter '{keyword.arg}' (parameters: {', '.join(parameters)})")
        positional = len(node.args)
        named = {k.arg for k in node.keywords}
        maximum = function["max_positional"]
        if maximum is not None and positional > maximum:
            self.error(node, f"{name}() takes at most {maximum} positional arguments, called with {positional}")
        missing = [p for p in parameters[positional:function["required"]] if p not in named]
        if missing:
            self.error(node, f"{name}() is missing required argument(s) {', '.join(missing)}")

    def check_argument_count(self, node: ast.Call, func: ast.Attribute, env: dict) -> None:
        """The call's argument count must fit an overload of the receiver's class (or of any class, unknown receiver)."""
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            return  # C++ methods take no keywords; *args are not countable
        receiver, count, name = self.type_of(func.value, env), len(node.args), func.attr
        if receiver and receiver[0] in ("cls", "classref") and self.c.live is not None:
            wrapped = self.c.live.overloads(receiver[1], name, unbound=receiver[0] == "classref")
            if wrapped is not None:
                self.c.stats["checked"] += 1
                if not any(low <= count <= high for low, high in wrapped):
                    self.error(node, f"{receiver[1]}.{name}() takes {_counts(wrapped)} argument(s) from Python "
                                     f"(slicer-core's wrapped signature), called with {count}")
        if receiver and receiver[0] in ("cls", "classref"):
            overloads, where = self.c.overloads(receiver[1], name), f"{receiver[1]}.{name}()"
        elif receiver is None and name not in self.c.unchecked_names and name in self.c.overloads_by_name:
            overloads, where = self.c.overloads_by_name[name], f"{name}() (receiver unknown: any class of the index)"
        else:
            return
        if overloads is None:
            return
        self.c.stats["checked"] += 1
        if not any(low <= count <= high for low, high in overloads):
            self.error(node, f"{where} takes {_counts(overloads)} argument(s) (Slicer 5.10 API index), called with {count}")

    def check_signal_string(self, node: ast.Call, func: ast.Attribute, env: dict) -> None:
        position = SIGNAL_CALLS[func.attr]
        signal_index = 0 if position is None else position + 1
        if len(node.args) <= signal_index:
            return
        signal = node.args[signal_index]
        target = func.value if position is None else node.args[position]
        if not (isinstance(signal, ast.Constant) and isinstance(signal.value, str)):
            return
        match = SIGNAL_STRING.match(signal.value)
        if match is None:
            self.error(node, f"'{signal.value}' is not a Qt signal signature such as 'clicked(bool)'")
            return
        receiver = self.type_of(target, env)
        if not receiver or receiver[0] not in ("cls", "classref"):
            self.c.stats["unchecked"] += 1
            return
        counts = self.c.signal_counts(receiver[1], match.group(1))
        if counts is None:
            self.c.stats["unchecked"] += 1
            return
        self.c.stats["checked"] += 1
        arguments = [a for a in match.group(2).split(",") if a.strip()]
        if not counts:
            self.error(node, f"{receiver[1]} has no Qt signal '{match.group(1)}' (Slicer 5.10 API index / qt_classes)")
        elif not any(low <= len(arguments) <= high for low, high in counts):
            self.error(node, f"signal {receiver[1]}::{match.group(1)} has {counts} argument(s), "
                             f"'{signal.value}' names {len(arguments)}")


def _counts(overloads) -> str:
    return " or ".join(sorted({f"{low}" if low == high else f"{low}-{high}" for low, high in overloads}))


def _ui_path(node):
    """The "UI/<file>.ui" of `self.resourcePath("UI/<file>.ui")` or of a string constant."""
    if isinstance(node, ast.Call) and node.args:
        node = node.args[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".ui"):
        return node.value
    return None


def _is_self_attribute(node) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _scope_nodes(body):
    """All nodes of a scope, not descending into nested functions, classes and lambdas (yielded)."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
