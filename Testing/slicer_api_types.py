"""What the API checker infers about expressions: the class behind getters, node factories, `slicer.util`
helpers and the `slicer` namespaces (slicer_api_check uses them; facts of Slicer 5.10's API)."""

from __future__ import annotations

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
    "GetObjectToWorldMatrix": "vtkMatrix4x4", "GetSegmentEditorNode": "vtkMRMLSegmentEditorNode",
}
NODE_FACTORIES = {"AddNewNodeByClass", "AddNewNodeByClassWithID", "CreateNodeByClass", "GetFirstNodeByClass"}
NODE_GETTERS = {"GetNodeByID": "vtkMRMLNode", "GetFirstNodeByName": "vtkMRMLNode", "GetNodeReference": "vtkMRMLNode"}
UTIL_RETURNS = {"getNode": "vtkMRMLNode", "loadVolume": "vtkMRMLScalarVolumeNode",
                "loadSegmentation": "vtkMRMLSegmentationNode", "loadLabelVolume": "vtkMRMLLabelMapVolumeNode",
                "addVolumeFromArray": "vtkMRMLScalarVolumeNode", "vtkMatrixFromArray": "vtkMatrix4x4",
                "createProgressDialog": "QProgressDialog", "mainWindow": "qSlicerMainWindow"}
# method -> index of the argument holding the sender (None: the method's own object), the signal follows it
