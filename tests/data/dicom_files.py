"""Writes real DICOM CT files for the data tests."""

from __future__ import annotations


def write_dicom(path, stored, slope=1.0, intercept=-1024.0, rescale=True, spacing=None):
    """A minimal valid CT image (Explicit VR Little Endian), int16 pixels; ``spacing``: its
    PixelSpacing (row, column mm), or None for none."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1  # signed
    if rescale:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if spacing is not None:
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.PixelData = stored.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
