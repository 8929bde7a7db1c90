"""The effect's mouse and keyboard rules: gestures, prompt polarity and shortcuts (plain Python).

The effect feeds VTK's interaction events in; what a press, drag, release or key means is decided
here, so it is tested without Slicer.

Shortcuts act while the mouse is over a slice view (the effect receives the view's key presses, as
Slicer's Draw effect does for its keys). None of them is a key Slicer 5.10 already binds there:
- Segment Editor (qMRMLSegmentEditorWidget::installKeyboardShortcuts): 0-9 and Shift+0-9 (effects),
  Escape (deselect the effect), Space (toggle the last effect), z / Ctrl+Z, y / Ctrl+Y (undo, redo),
  q, w, /, *, comma, period, <, > (previous / next segment), i (editable intensity range);
- slice views (vtkMRMLSliceIntersectionWidget.cxx): g, t, f, b, v, V, r, arrows, [ ] { };
- markups widgets (vtkSlicerMarkupsWidget.cxx): s, Delete, BackSpace on a control point;
- main window (qSlicerMainWindow.ui, qSlicerModuleSelectorToolBar.cxx): Ctrl+ combinations only.
Escape: the Segment Editor's own shortcut deselects the effect, which clears the prompts (Space brings
the effect back); where the editor's shortcuts are not installed the key reaches the view and only
clears the prompts.

Mouse: only a left press without Ctrl and Alt starts a gesture (Shift: the other polarity, once). The
slice view binds Ctrl+left drag (blend the layers), Ctrl+Alt+left drag (rotate the slice
intersections) and Alt+Shift+left drag (translate them) (vtkMRMLSliceIntersectionWidget.cxx,
UpdateInteractionEventMapping), and Slicer's own effects leave modified presses to it
(SegmentEditorDrawEffect.py, qSlicerSegmentEditorPaintEffect.cxx).
"""

from __future__ import annotations

from dataclasses import dataclass

from .promptbook import MODE_AUTO, MODE_BOX, MODE_CLICK, MODE_LASSO, MODE_SCRIBBLE

DRAG_PIXELS = 4  # a press and release further apart than this is a box, not a click

# Key (VTK key symbol, no modifier) -> action. Actions: "mode:<mode>", "toggle-polarity", "clear".
SHORTCUTS = {
    "p": f"mode:{MODE_CLICK}",     # Point (click) prompts
    "o": f"mode:{MODE_BOX}",       # bOx prompts ("b" is Slicer's previous-slice key)
    "d": f"mode:{MODE_SCRIBBLE}",  # Draw scribbles ("s" is the markups' key)
    "l": f"mode:{MODE_LASSO}",     # Lassos
    "a": f"mode:{MODE_AUTO}",      # Automatic, prompt-free masks
    "n": "toggle-polarity",        # Negative / positive clicks
    "c": "clear",                  # Clear the prompts (the mask stays)
    "Escape": "clear",
}
SHORTCUT_HELP = (
    ("P", "point (click) prompts"), ("O", "box prompts"), ("D", "scribbles (draw)"), ("L", "lassos"),
    ("A", "prompt-free masks"), ("N", "switch clicks and strokes between positive and negative"), ("C", "clear the prompts (the mask stays)"),
    ("Esc", "deselect the effect, which clears the prompts (Space brings it back)"),
)
MODE_HELP = {
    MODE_CLICK: "clicks (a drag still draws a box)",
    MODE_BOX: "drag a box first; clicks then refine it",
    MODE_SCRIBBLE: "drag to draw a stroke along the structure (negative: over what is not); clicks refine",
    MODE_LASSO: "drag a loop around the structure (negative: around a region to leave out); clicks refine",
    MODE_AUTO: "click a slice to segment it without prompts (needs the shipped adapter)",
}
# Keys Slicer 5.10 binds in slice views or the Segment Editor (see the module docstring).
SLICER_KEYS = frozenset(
    [str(digit) for digit in range(10)]
    + ["space", "z", "y", "q", "w", "slash", "asterisk", "comma", "period", "less", "greater", "i",
       "g", "t", "f", "b", "v", "V", "r", "Left", "Right", "Up", "Down", "bracketleft", "bracketright",
       "braceleft", "braceright", "s", "Delete", "BackSpace"])


def shortcutAction(keySym: str, shift: bool = False, control: bool = False, alt: bool = False) -> str | None:
    """The action of a key press, or None (the key is left to Slicer). Shift+P arrives as "P": not ours."""
    if control or alt:
        return None
    return SHORTCUTS.get(keySym)


def pressStartsGesture(control: bool = False, alt: bool = False) -> bool:
    """Whether a left press is the effect's (a click or box) or left to the slice view (Ctrl, Alt)."""
    return not (control or alt)


def effectHelpHtml() -> str:
    """The effect's help: the mouse, the Mode selector, the keys, propagation."""
    keys = "".join(f"<li><b>{key}</b>: {action}</li>" for key, action in SHORTCUT_HELP)
    modes = "".join(f"<li><b>{mode.capitalize()}</b>: {text}</li>" for mode, text in MODE_HELP.items())
    return ("<html>Segment with SegMoTE (SAM with a Mixture-of-Experts adapter).<p>"
            "<b>Left click</b>: a click of the current polarity (<b>Clicks</b> button or key <b>N</b>; the "
            "cursor shows it: green + adds, red - removes). <b>Shift+click</b>: the other polarity, once "
            "(Ctrl and Alt with the mouse stay the slice view's). <b>Drag</b>: box, or in Scribble and Lasso "
            "mode a stroke of the current polarity (Shift: the other one). Works in any slice view; each "
            "prompt replaces the selected segment on that slice only and is one undo step (Ctrl+Z takes the "
            "last prompt's result back and starts a new prompt set). On a slice where the segment already has voxels "
            "(made with any tool), the first prompt corrects that mask instead of starting anew.<p>"
            f"<b>Mode</b>:<ul>{modes}</ul><b>Keys</b> (mouse over a slice view):<ul>{keys}</ul>"
            "<b>Propagate to 3D</b> extends the last slice mask through the volume, or through the "
            "slices of <b>3D range</b>; the segment's other slices are kept.</html>")


@dataclass
class Polarity:
    """Whether a click is positive (foreground) or negative; Shift inverts it for one click."""

    positive: bool = True

    def toggle(self) -> bool:
        self.positive = not self.positive
        return self.positive

    def clickIsPositive(self, inverted: bool) -> bool:
        return self.positive != bool(inverted)

    def describe(self) -> str:
        return "positive (adds)" if self.positive else "negative (removes)"


@dataclass
class Release:
    """A finished gesture: a click at `releaseXy`, or a box dragged from `pressXy`."""

    pressXy: tuple
    releaseXy: tuple
    dragged: bool


class Gesture:
    """Press, drag and release of the left button in one slice view.

    A double click arrives as press, release, LeftButtonDoubleClickEvent, release: the double-click
    event stands for the second press (vtkMRMLSliceIntersectionWidget.cxx maximizes the view on it,
    so the effect must take it, as Slicer's Draw effect does).
    """

    def __init__(self):
        self.pressXy = None
        self.viewName = None
        self.dragging = False

    def press(self, xy, viewName: str) -> None:
        self.pressXy, self.viewName, self.dragging = tuple(xy), viewName, False

    def belongsTo(self, viewName: str) -> bool:
        return self.pressXy is not None and viewName == self.viewName

    def move(self, xy, canDrag: bool) -> bool:
        """True while the movement is a drag (a box being drawn)."""
        if abs(xy[0] - self.pressXy[0]) + abs(xy[1] - self.pressXy[1]) > DRAG_PIXELS:
            self.dragging = canDrag
        return self.dragging

    def release(self, xy) -> Release:
        finished = Release(self.pressXy, tuple(xy), self.dragging)
        self.pressXy, self.viewName, self.dragging = None, None, False
        return finished
