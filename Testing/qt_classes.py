"""Qt 5 and VTK classes the glue uses, which the Slicer API index does not list.

Hand-checked against the Qt 5.15 and VTK 9 class references: members (methods, as PythonQt and
VTK's wrapper expose them), Qt signals with their argument counts, and Qt properties (what `.ui`
files and PythonQt attribute access may use). Keep them small and true: every entry is a name the
checks could not take from Slicer's index. Classes of the index (vtkMRML*, qMRML*, qSlicer*, ctk*)
are looked up there first; their base chains end in these classes (QWidget, QAbstractButton...).
"""

from __future__ import annotations

# class: (base, methods, {signal: [[min, max], ...]}, properties)
QT_CLASSES = {
    "QObject": (None, {"connect", "disconnect", "className", "blockSignals", "signalsBlocked", "setProperty",
                       "property", "objectName", "setObjectName", "deleteLater", "parent", "setParent", "findChild",
                       "findChildren", "installEventFilter"},
                {"destroyed": [[0, 1]], "objectNameChanged": [[1, 1]]}, {"objectName"}),
    "QCoreApplication": ("QObject", {"processEvents", "instance", "quit", "exit", "applicationName"},
                         {"aboutToQuit": [[0, 0]]}, {"applicationName", "applicationVersion", "organizationName"}),
    "QGuiApplication": ("QCoreApplication", {"setOverrideCursor", "restoreOverrideCursor", "changeOverrideCursor"},
                        {"lastWindowClosed": [[0, 0]]}, set()),
    "QApplication": ("QGuiApplication", {"activeWindow", "focusWidget", "topLevelWidgets"}, {}, set()),
    "QTimer": ("QObject", {"start", "stop", "setInterval", "interval", "setSingleShot", "isSingleShot", "isActive",
                           "singleShot", "remainingTime"},
               {"timeout": [[0, 0]]}, {"singleShot", "interval", "active", "remainingTime", "timerType"}),
    "QWidget": ("QObject", {"show", "hide", "setVisible", "isVisible", "setEnabled", "isEnabled", "setToolTip",
                            "close", "update", "layout", "setLayout", "setCursor", "resize", "adjustSize",
                            "setFixedWidth", "setFixedHeight", "setMinimumWidth", "setFocus", "raise_", "window"},
                {"customContextMenuRequested": [[1, 1]], "windowTitleChanged": [[1, 1]], "windowIconChanged": [[1, 1]]},
                {"enabled", "visible", "toolTip", "toolTipDuration", "statusTip", "whatsThis", "windowTitle",
                 "minimumWidth", "maximumWidth", "minimumHeight", "maximumHeight", "minimumSize", "maximumSize",
                 "sizePolicy", "geometry", "width", "height", "focusPolicy", "cursor", "font", "styleSheet",
                 "layoutDirection", "contextMenuPolicy", "autoFillBackground", "mouseTracking", "windowModality",
                 "accessibleName", "accessibleDescription", "updatesEnabled", "palette", "size", "pos"}),
    "QFrame": ("QWidget", set(), {}, {"frameShape", "frameShadow", "lineWidth", "midLineWidth", "frameWidth", "frameRect"}),
    "QLabel": ("QFrame", {"setText", "text", "clear", "setWordWrap", "setPixmap", "setAlignment"},
               {"linkActivated": [[1, 1]], "linkHovered": [[1, 1]]},
               {"text", "textFormat", "pixmap", "scaledContents", "alignment", "wordWrap", "margin", "indent",
                "openExternalLinks", "textInteractionFlags", "hasSelectedText", "selectedText"}),
    "QAbstractButton": ("QWidget", {"click", "toggle", "setChecked", "isChecked", "setText", "text", "setCheckable",
                                    "animateClick", "setIcon"},
                        {"clicked": [[0, 1]], "pressed": [[0, 0]], "released": [[0, 0]], "toggled": [[1, 1]]},
                        {"text", "icon", "iconSize", "shortcut", "checkable", "checked", "autoRepeat", "autoExclusive",
                         "autoRepeatDelay", "autoRepeatInterval", "down"}),
    "QPushButton": ("QAbstractButton", {"setMenu", "menu"}, {}, {"autoDefault", "default", "flat"}),
    "QCheckBox": ("QAbstractButton", {"checkState", "setCheckState"}, {"stateChanged": [[1, 1]]}, {"tristate"}),
    "QRadioButton": ("QAbstractButton", set(), {}, set()),
    "QComboBox": ("QWidget", {"addItem", "addItems", "clear", "findData", "findText", "setCurrentIndex",
                              "setCurrentText", "itemData", "itemText", "insertItem", "removeItem", "count",
                              "currentIndex", "currentText", "currentData", "showPopup"},
                  {"activated": [[1, 1]], "currentIndexChanged": [[1, 1]], "currentTextChanged": [[1, 1]],
                   "editTextChanged": [[1, 1]], "highlighted": [[1, 1]], "textActivated": [[1, 1]],
                   "textHighlighted": [[1, 1]]},
                  {"editable", "count", "currentText", "currentIndex", "currentData", "maxVisibleItems", "maxCount",
                   "insertPolicy", "sizeAdjustPolicy", "minimumContentsLength", "iconSize", "placeholderText",
                   "duplicatesEnabled", "frame", "modelColumn"}),
    "QAbstractSpinBox": ("QWidget", {"stepUp", "stepDown", "selectAll"}, {"editingFinished": [[0, 0]]},
                         {"wrapping", "frame", "alignment", "readOnly", "buttonSymbols", "specialValueText", "text",
                          "accelerated", "correctionMode", "acceptableInput", "keyboardTracking", "showGroupSeparator"}),
    "QSpinBox": ("QAbstractSpinBox", {"setRange", "setValue", "setMinimum", "setMaximum", "value", "minimum", "maximum",
                                      "setSingleStep", "setSuffix", "setPrefix"},
                 {"valueChanged": [[1, 1]], "textChanged": [[1, 1]]},
                 {"suffix", "prefix", "cleanText", "minimum", "maximum", "singleStep", "value", "displayIntegerBase",
                  "stepType"}),
    "QAbstractScrollArea": ("QFrame", set(), {}, {"verticalScrollBarPolicy", "horizontalScrollBarPolicy",
                                                  "sizeAdjustPolicy"}),
    "QAbstractItemView": ("QAbstractScrollArea", {"clearSelection", "selectionModel", "setModel", "model", "scrollToTop"},
                          {"activated": [[1, 1]], "clicked": [[1, 1]], "doubleClicked": [[1, 1]], "entered": [[1, 1]],
                           "pressed": [[1, 1]], "viewportEntered": [[0, 0]], "iconSizeChanged": [[1, 1]]},
                          {"autoScroll", "autoScrollMargin", "editTriggers", "tabKeyNavigation", "showDropIndicator",
                           "dragEnabled", "dragDropOverwriteMode", "dragDropMode", "defaultDropAction",
                           "alternatingRowColors", "selectionMode", "selectionBehavior", "iconSize", "textElideMode",
                           "verticalScrollMode", "horizontalScrollMode"}),
    "QListView": ("QAbstractItemView", set(), {"indexesMoved": [[1, 1]]},
                  {"movement", "flow", "isWrapping", "resizeMode", "layoutMode", "spacing", "gridSize", "viewMode",
                   "modelColumn", "uniformItemSizes", "batchSize", "wordWrap", "selectionRectVisible", "itemAlignment"}),
    "QListWidget": ("QListView", {"addItem", "addItems", "takeItem", "clear", "count", "item", "setCurrentRow",
                                  "insertItem", "currentItem"},
                    {"currentItemChanged": [[2, 2]], "currentRowChanged": [[1, 1]], "currentTextChanged": [[1, 1]],
                     "itemActivated": [[1, 1]], "itemChanged": [[1, 1]], "itemClicked": [[1, 1]],
                     "itemDoubleClicked": [[1, 1]], "itemEntered": [[1, 1]], "itemPressed": [[1, 1]],
                     "itemSelectionChanged": [[0, 0]]},
                    {"count", "currentRow", "sortingEnabled"}),
    "QTableView": ("QAbstractItemView", {"resizeColumnsToContents", "horizontalHeader", "verticalHeader"}, {},
                   {"showGrid", "gridStyle", "sortingEnabled", "wordWrap", "cornerButtonEnabled"}),
    "QTableWidget": ("QTableView", {"clear", "clearContents", "setColumnCount", "setRowCount",
                                    "setHorizontalHeaderLabels", "setItem", "item", "rowCount", "columnCount"},
                     {"cellActivated": [[2, 2]], "cellChanged": [[2, 2]], "cellClicked": [[2, 2]],
                      "cellDoubleClicked": [[2, 2]], "cellEntered": [[2, 2]], "cellPressed": [[2, 2]],
                      "currentCellChanged": [[4, 4]], "currentItemChanged": [[2, 2]], "itemActivated": [[1, 1]],
                      "itemChanged": [[1, 1]], "itemClicked": [[1, 1]], "itemDoubleClicked": [[1, 1]],
                      "itemEntered": [[1, 1]], "itemPressed": [[1, 1]], "itemSelectionChanged": [[0, 0]]},
                     {"rowCount", "columnCount"}),
    "QDialog": ("QWidget", {"exec", "exec_", "open", "accept", "reject", "done"},
                {"accepted": [[0, 0]], "finished": [[1, 1]], "rejected": [[0, 0]]}, {"sizeGripEnabled", "modal"}),
    "QProgressDialog": ("QDialog", {"setValue", "setCancelButton", "setLabelText", "cancel", "reset", "setMaximum",
                                    "setMinimum", "setRange", "value", "wasCanceled"},
                        {"canceled": [[0, 0]]},
                        {"wasCanceled", "minimum", "maximum", "value", "autoReset", "autoClose", "minimumDuration",
                         "labelText"}),
}

# VTK classes the glue calls, when the `vtk` wheel is not installed (it is preferred when it is).
VTK_CLASSES = {
    "vtkObject": (None, {"AddObserver", "RemoveObserver", "RemoveObservers", "HasObserver", "Modified", "GetMTime",
                         "IsA", "GetClassName", "InvokeEvent", "SafeDownCast"}),
    "vtkDataObject": ("vtkObject", {"GetPointData", "DeepCopy", "ShallowCopy"}),
    "vtkImageData": ("vtkDataObject", {"GetDimensions", "SetDimensions", "GetExtent", "SetExtent", "GetSpacing",
                                       "GetOrigin", "AllocateScalars", "GetScalarType", "GetNumberOfPoints"}),
    "vtkPointData": ("vtkObject", {"GetScalars", "SetScalars"}),
    "vtkMatrix4x4": ("vtkObject", {"GetElement", "SetElement", "MultiplyPoint", "Multiply4x4", "DeepCopy", "Identity"}),
    "vtkTransform": ("vtkObject", {"Concatenate", "Translate", "RotateWXYZ", "Scale", "GetMatrix", "PostMultiply",
                                   "PreMultiply"}),
    "vtkTable": ("vtkDataObject", {"GetNumberOfRows", "GetNumberOfColumns", "GetColumnByName", "AddColumn"}),
    "vtkCommand": ("vtkObject", {"LeftButtonPressEvent", "LeftButtonReleaseEvent", "MouseMoveEvent", "ModifiedEvent"}),
    "vtkRenderWindowInteractor": ("vtkObject", {"GetEventPosition", "GetShiftKey", "GetControlKey", "GetAltKey"}),
}


def qt_chain(cls: str):
    """The class and its Qt bases, nearest first (empty for a class not listed here)."""
    while cls in QT_CLASSES:
        yield cls, QT_CLASSES[cls]
        cls = QT_CLASSES[cls][0]
