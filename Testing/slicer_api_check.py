"""Checks Python sources that use 3D Slicer's API against Slicer's name index; no Slicer needed.

The index (`slicer-api.json`, see its README) lists Slicer's C++ classes (methods, enums, first
base) and Python modules (functions, classes). The checker infers the class behind expressions —
`slicer.app`, `slicer.mrmlScene`, `slicer.<class>(...)`, `AddNewNodeByClass("vtkMRML...")`,
`slicer.util` helpers, annotated parameters and returns, `self.scriptedEffect`, known getters — and
reports every attribute used on them that the class and its bases do not have, as
`file:line: message`. Expressions of unknown class are not checked (counted in `stats`).
"""

from __future__ import annotations

import ast
import json
import unittest
from pathlib import Path

# VTK and Qt classes are not in the Slicer index. With the `vtk` wheel installed they are read
# from it; otherwise these hand-checked lists (VTK 9 / Qt 5 documentation) of the methods the glue
# uses stand in. Keep them small: every entry is a name that could not be checked automatically.
FALLBACK_MEMBERS = {
    "vtkObject": {"AddObserver", "RemoveObserver", "RemoveObservers", "HasObserver", "Modified", "GetMTime", "IsA",
                  "GetClassName", "InvokeEvent", "SafeDownCast"},
    "vtkDataObject": {"GetPointData", "DeepCopy", "ShallowCopy"},
    "vtkImageData": {"GetDimensions", "SetDimensions", "GetExtent", "SetExtent", "GetSpacing", "GetOrigin",
                     "AllocateScalars", "GetScalarType", "GetNumberOfPoints"},
    "vtkPointData": {"GetScalars", "SetScalars"},
    "vtkMatrix4x4": {"GetElement", "SetElement", "MultiplyPoint", "Multiply4x4", "DeepCopy", "Identity"},
    "vtkTransform": {"Concatenate", "Translate", "RotateWXYZ", "Scale", "GetMatrix", "PostMultiply", "PreMultiply"},
    "vtkTable": {"GetNumberOfRows", "GetNumberOfColumns", "GetColumnByName", "AddColumn"},
    "vtkCommand": {"LeftButtonPressEvent", "LeftButtonReleaseEvent", "MouseMoveEvent", "ModifiedEvent"},
    "vtkRenderWindowInteractor": {"GetEventPosition", "GetShiftKey", "GetControlKey", "GetAltKey"},
    "QObject": {"connect", "disconnect", "className", "blockSignals", "setProperty", "property", "objectName",
                "setObjectName", "deleteLater", "parent", "findChild", "findChildren"},
    "QCoreApplication": {"processEvents", "applicationName", "quit"},
    "QApplication": {"setOverrideCursor", "restoreOverrideCursor", "activeWindow"},
    "QWidget": {"show", "hide", "setVisible", "visible", "enabled", "setEnabled", "toolTip", "setToolTip",
                "layout", "setLayout", "close", "cursor", "setCursor", "width", "height", "update"},
    "qMRMLWidget": {"mrmlScene", "setMRMLScene"},
    "qMRMLAbstractViewWidget": {"mrmlAbstractViewNode", "viewWidget", "viewController"},
    "qMRMLLayoutManager": {"sliceWidget", "sliceViewNames", "threeDWidget", "threeDViewCount", "tableWidget",
                           "plotWidget", "layout", "setLayout", "layoutLogic", "mrmlSliceLogics"},
    "qSlicerScriptedLoadableModule": {"path", "title", "name"},
}
FALLBACK_BASES = {
    "vtkDataObject": "vtkObject", "vtkImageData": "vtkDataObject", "vtkPointData": "vtkObject",
    "vtkMatrix4x4": "vtkObject", "vtkTransform": "vtkObject", "vtkTable": "vtkDataObject",
    "vtkRenderWindowInteractor": "vtkObject",
    "QCoreApplication": "QObject", "QApplication": "QCoreApplication", "QWidget": "QObject",
    "qMRMLWidget": "QWidget", "qMRMLAbstractViewWidget": "qMRMLWidget", "qMRMLLayoutManager": "QObject",
}
VTK_MODULES = {"vtk.util.numpy_support": {"vtk_to_numpy", "numpy_to_vtk", "get_vtk_array_type"}}

SLICER_NAMESPACES = {"util", "app", "mrmlScene", "modules", "ScriptedLoadableModule", "testing", "i18n",
                     "packaging", "parameterNodeWrapper"}
# What getters return (by method name; applied only where the receiver's class is known).
RETURN_TYPES = {
    "GetParentTransformNode": "vtkMRMLTransformNode", "GetSegmentation": "vtkSegmentation",
    "GetSegment": "vtkSegment", "GetMarkupsDisplayNode": "vtkMRMLMarkupsDisplayNode",
    "GetSegmentationNode": "vtkMRMLSegmentationNode", "GetSourceVolumeNode": "vtkMRMLScalarVolumeNode",
    "parameterSetNode": "vtkMRMLSegmentEditorNode", "sourceVolumeImageData": "vtkOrientedImageData",
    "defaultModifierLabelmap": "vtkOrientedImageData", "selectedSegmentLabelmap": "vtkOrientedImageData",
    "mrmlSliceNode": "vtkMRMLSliceNode", "sliceLogic": "vtkMRMLSliceLogic", "layoutManager": "qSlicerLayoutManager",
    "sliceWidget": "qMRMLSliceWidget", "GetSliceToRAS": "vtkMatrix4x4", "GetImageData": "vtkImageData",
    "GetTable": "vtkTable", "GetPointData": "vtkPointData", "GetMatrix": "vtkMatrix4x4",
    "GetDisplayNode": "vtkMRMLDisplayNode", "GetSubjectHierarchyNode": "vtkMRMLSubjectHierarchyNode",
    "GetInteractionNode": "vtkMRMLInteractionNode", "GetSliceNode": "vtkMRMLSliceNode",
    "applicationLogic": "vtkMRMLApplicationLogic", "GetSelectionNode": "vtkMRMLSelectionNode",
}
NODE_FACTORIES = {"AddNewNodeByClass", "AddNewNodeByClassWithID", "CreateNodeByClass", "GetFirstNodeByClass"}
UTIL_RETURNS = {"getNode": "vtkMRMLNode", "loadVolume": "vtkMRMLScalarVolumeNode",
                "loadSegmentation": "vtkMRMLSegmentationNode", "loadLabelVolume": "vtkMRMLLabelMapVolumeNode",
                "addVolumeFromArray": "vtkMRMLScalarVolumeNode", "vtkMatrixFromArray": "vtkMatrix4x4"}
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


class ApiChecker:
    def __init__(self, index: dict):
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
        self.stats = {"checked": 0, "unchecked": 0}

    # --- class knowledge -------------------------------------------------------------------------
    def has_member(self, cls: str, name: str):
        """True / False, or None where the class is unknown to the index and the fallbacks."""
        seen = set()
        while cls and cls not in seen:
            seen.add(cls)
            entry = self.cpp.get(cls)
            if entry is None:
                return self._external_has(cls, name)
            if name in entry["methods"] or name in entry["enums"]:
                return True
            cls = entry["base"]
        return False

    def _external_has(self, cls: str, name: str):
        if self.vtk is not None and cls.startswith("vtk") and hasattr(self.vtk, cls):
            return hasattr(getattr(self.vtk, cls), name)
        if cls not in FALLBACK_MEMBERS:
            return None
        while cls:
            if name in FALLBACK_MEMBERS.get(cls, ()):
                return True
            cls = FALLBACK_BASES.get(cls)
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
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "vtk":
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
            return self.util_call_type(ftype[1], node)
        if isinstance(func, ast.Attribute):
            receiver = self.type_of(func.value, env)
            if receiver and receiver[0] == "cls":
                first = node.args[0] if node.args else None
                if func.attr in NODE_FACTORIES and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    return ("cls", first.value)
                return ("cls", RETURN_TYPES[func.attr]) if func.attr in RETURN_TYPES else None
            if receiver and receiver[0] == "slicermodule" and func.attr == "logic":
                return ("cls", MODULE_LOGICS[receiver[1]]) if receiver[1] in MODULE_LOGICS else None
            if receiver and receiver[0] == "pyself":
                method = self.find_method(receiver[1], func.attr)
                return self.annotation_type(method.returns) if method is not None else None
        if isinstance(func, ast.Name) and func.id in self.functions and func.id not in env:
            return self.annotation_type(self.functions[func.id].returns)
        return None

    def util_call_type(self, name: str, node: ast.Call):
        if name == "getFirstNodeByClassByName" and node.args and isinstance(node.args[0], ast.Constant):
            return ("cls", node.args[0].value)
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
            found = self.c.has_member(owner[1], attr)
            if found is None:
                self.c.stats["unchecked"] += 1
                return
            ok, message = found, f"{owner[1]} has no method or enum '{attr}' (Slicer API index, bases included)"
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
            parameters = self.c.util_functions[ftype[1]]
            if "**kwargs" not in parameters:
                for keyword in node.keywords:
                    if keyword.arg is not None and keyword.arg not in parameters:
                        self.error(node, f"slicer.util.{ftype[1]}() has no parameter '{keyword.arg}' "
                                         f"(parameters: {', '.join(parameters)})")
            self.c.stats["checked"] += 1
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = env.get(func.value.id)
            if owner and owner[0] == "pyself":
                known = self.self_call_known(owner[1], func.attr)
                if known is False:
                    self.error(node, f"self.{func.attr}() is defined neither in class {owner[1]} nor in its "
                                     f"Slicer base classes (Slicer API index)")
                self.c.stats["checked" if known is not None else "unchecked"] += 1


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
