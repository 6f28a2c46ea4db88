"""Medical image files in and out: NIfTI, DICOM (file, series folder, zipped series), PNG/JPEG.

Used by the medical task packages (``predict.py``: file in -> prediction -> file out) and by
the dashboard (upload, look, download). Reading goes through MONAI's ``LoadImage`` with the
reader that matches the file (``NibabelReader``, ``PydicomReader``, ``PILReader``), so the
arrays and affines are the ones MONAI's own pipelines see:

- :func:`read_image` returns a :class:`MedicalImage`: a float32 channel-first array
  reoriented to RAS with MONAI's ``Orientation``, its voxel-to-world (RAS, mm) affine and
  spacing, plus what is needed to write a result back in the file's own grid.
- :func:`to_native` undoes the reorientation (and the squeeze of a 2D slice), so
  :func:`write_label_nifti`, :func:`write_probabilities_nifti` and :func:`write_map_nifti`
  write label maps, probabilities and per-voxel maps that overlay the input in any
  viewer: same grid, same affine, same qform/sform codes.
- :func:`write_overlay_png` renders a slice with a coloured label overlay for a quick look.

Every problem with the user's file is raised as one :class:`~domainvit.errors.UserError`
naming the file and what was expected, never as a traceback from inside a reader. Zipped
series are extracted defensively (no absolute or ``..`` member paths, bounded member count
and uncompressed size), and every input is bounded by ``max_bytes``.

Writers are atomic: the file is written under a temporary name in the target folder and
renamed into place, so an interrupted or failed write never leaves a partial file.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import nibabel as nib
import numpy as np

from domainvit.distribution import Finding, refuse
from domainvit.errors import UserError
from domainvit.files import atomic_write, format_size, safe_extract

if TYPE_CHECKING:
    from monai.data import MetaTensor

#: the largest input accepted by default, counted uncompressed (file, series or zip contents)
DEFAULT_MAX_BYTES = 2 * 1024**3
#: the most files a zipped DICOM series may hold (a series of thin slices has thousands)
MAX_SERIES_MEMBERS = 10_000

NIFTI_SUFFIXES = (".nii.gz", ".nii")
DICOM_SUFFIXES = (".dcm",)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
ZIP_SUFFIXES = (".zip",)
SUPPORTED_INPUTS = (
    ".nii, .nii.gz, .dcm (or a DICOM file without suffix), a folder or .zip of one DICOM "
    "series, .png, .jpg, .jpeg"
)

#: RGB colours of labels 1, 2, ... (cycled beyond the table); label 0 is background
LABEL_COLOURS = np.array(
    [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
        (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
        (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
    ],
    dtype=np.float64,
)

Kind = Literal["nifti", "dicom", "image"]
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_DICOM_MAGIC_OFFSET = 128


@dataclass(eq=False)
class MedicalImage:
    """An image read by :func:`read_image`, in RAS orientation.

    ``array`` is float32 ``[C, *spatial]`` with the spatial axes in RAS order (MONAI's
    convention: a growing index along spatial axis 0, 1, 2 moves towards the patient's
    Right, Anterior, Superior). For a 2D image (``len(spatial) == 2``)
    ``affine`` maps ``(i, j, 0, 1)`` to world coordinates: its third column is the
    direction of the axis that was squeezed away. ``spacing`` has one entry per spatial
    axis, in mm (1.0 for plain pictures, whose affine is the identity).

    The ``native_*`` fields describe the grid of the file itself (always 3D: a 2D file is
    one slice), ``squeezed_axis`` is the RAS axis removed to make a 2D image, and
    ``nifti_header`` keeps a NIfTI input's header (qform/sform and their codes, units),
    ``modality`` a DICOM input's Modality tag; :func:`to_native` maps arrays from
    ``array``'s grid back onto the file's grid.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]
    source_path: Path
    kind: Kind
    native_affine: np.ndarray
    native_axcodes: tuple[str, str, str]
    native_shape: tuple[int, int, int]
    squeezed_axis: int | None = None
    nifti_header: nib.Nifti1Header | None = None
    #: the DICOM Modality tag (``"CT"``, ``"MR"``, ``"PT"``, ...) of a DICOM input; None
    #: for other files, which record no modality
    modality: str | None = None

    @property
    def spatial_dims(self) -> int:
        return self.array.ndim - 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])


def display_slice(array: np.ndarray, axis: int | None = None, index: int = 0) -> np.ndarray:
    """Slice ``index`` along RAS ``axis`` of ``array`` (``None``: ``array`` is already a
    slice), turned as radiologists read it: the patient's left on the image's left,
    anterior (axial) or superior (coronal, sagittal) at the top, anterior on the right of
    a sagittal view. The last two axes of the slice are turned, so leading channels stay.
    PNG/JPEG pictures are in display order already and need no turning."""
    plane = array if axis is None else np.take(array, index, axis=axis)
    return np.rot90(plane, axes=(-2, -1))


# ---------------------------------------------------------------------------------------
# MONAI, imported on first use: `import monai` loads all of its submodules (torchvision
# included) and takes seconds, which the dashboard and CLI should not pay at start-up.


@functools.cache
def _monai() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import monai.data
        import monai.transforms
    return monai


@functools.cache
def _loader() -> Any:
    """One ``LoadImage``; the reader is passed per call, so no other reader is tried."""
    monai = _monai()
    # LoadImage instantiates every default reader; the GPU DICOM one logs a warning on
    # machines without nvImageCodec that says nothing about the user's file
    plugin_log = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = plugin_log.level
    plugin_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return monai.transforms.LoadImage(image_only=True, ensure_channel_first=True)
    finally:
        plugin_log.setLevel(level)


def _orient(image: MetaTensor, axcodes: str) -> MetaTensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _monai().transforms.Orientation(axcodes=axcodes, labels=_RAS_LABELS)(image)


@functools.cache
def _bad_file_errors() -> tuple[type[BaseException], ...]:
    """What nibabel, pydicom and PIL (through MONAI's readers) raise for a damaged or wrong
    file: these become "cannot read" errors; anything else is a bug of ours and propagates.

    ``OSError`` covers unreadable files, ``gzip.BadGzipFile`` and PIL's
    ``UnidentifiedImageError``; ``EOFError`` and ``zlib.error`` truncated or corrupt
    compressed data; ``ValueError`` headers and pixel data that do not add up.
    """
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError
    from PIL.Image import DecompressionBombError
    from pydicom.errors import InvalidDicomError

    return (ImageFileError, HeaderDataError, InvalidDicomError, DecompressionBombError,
            OSError, EOFError, zlib.error, ValueError)


# ---------------------------------------------------------------------------------------
# Input classification and limits


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            file.seek(_DICOM_MAGIC_OFFSET)
            return file.read(4) == b"DICM"
    except OSError:
        return False


def _input_kind(path: Path) -> str:
    """``nifti``, ``dicom``, ``dicom_folder``, ``zip`` or ``image``, from suffix and magic."""
    name = path.name.lower()
    if path.is_dir():
        return "dicom_folder"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    if name.endswith(PICTURE_SUFFIXES):
        return "image"
    if not path.suffix and _has_dicom_magic(path):
        return "dicom"
    got = f"suffix {path.suffix!r}" if path.suffix else "no suffix and no DICOM marker"
    raise UserError(f"unsupported file {path.name}: expected {SUPPORTED_INPUTS}; got {got}")


def _check_size(path: Path, size: int, max_bytes: int, what: str = "") -> None:
    if size > max_bytes:
        raise UserError(
            f"{path.name}{what} is {format_size(size)}, larger than the "
            f"{format_size(max_bytes)} limit for one image"
        )


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(n)) for n in shape)


def _short_reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# ---------------------------------------------------------------------------------------
# DICOM: validate the files before MONAI reads them, so the user learns which file is wrong


def _dicom_files_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.name.upper() != "DICOMDIR" and _has_dicom_magic(p)
    )


def _check_dicom_files(shown: dict[Path, str], source: Path) -> None:
    """Every file is an image of one series; raise UserError naming the first that isn't.

    ``shown`` maps each file to the name the user knows it by (its name in a zip).
    """
    files = list(shown)
    import pydicom

    def where(path: Path) -> str:
        name = shown[path]
        return name if name == source.name else f"{name} in {source.name}"

    series: set[str] = set()
    for path in files:
        try:
            # defer_size keeps the pixel data on disk: only presence is checked here
            dataset = pydicom.dcmread(path, defer_size="1 KB")
        except _bad_file_errors() as error:
            raise UserError(
                f"{where(path)} is not a readable DICOM file ({_short_reason(error)})"
            ) from None
        if not any(tag in dataset for tag in ("PixelData", "FloatPixelData",
                                               "DoubleFloatPixelData")):
            sop = dataset.get("SOPClassUID")
            got = f"a {sop.name} object" if sop is not None else "a DICOM object"
            raise UserError(
                f"{where(path)} has no pixel data: expected a DICOM image, "
                f"got {got} without PixelData"
            )
        if len(files) > 1 and "InstanceNumber" not in dataset:
            raise UserError(
                f"{where(path)} has no InstanceNumber: slices of a series cannot be "
                "ordered without it"
            )
        series.add(str(dataset.get("SeriesInstanceUID", "")))
    if len(series) > 1:
        raise UserError(
            f"{source.name} holds {len(series)} DICOM series: expected one series "
            "(put each series in its own folder or zip)"
        )


def _extract_zip(path: Path, target: Path, max_bytes: int) -> dict[Path, str]:
    """Extract the members of a zipped series as flat numbered files in ``target``.

    Returns the extracted DICOM files with their names in the archive. Member names are
    never used as paths (so nothing can land outside ``target``), but an archive that
    tries is refused outright: it was not made by a scanner export.
    """
    expected = "a zip of one DICOM series"
    extracted = safe_extract(path, target, max_members=MAX_SERIES_MEMBERS, max_bytes=max_bytes,
                             rename=lambda index, _: f"{index:06d}", expected=expected)
    if not extracted:
        raise UserError(f"{path.name} is empty: expected {expected}")
    dicom = {file: name for file, name in extracted.items()
             if PurePosixPath(name).name.upper() != "DICOMDIR" and _has_dicom_magic(file)}
    if not dicom:
        raise UserError(f"{path.name} contains no DICOM files ({len(extracted)} other "
                        f"members): expected {expected}")
    return dicom


# ---------------------------------------------------------------------------------------
# Reading


def _load(path: Path, reader: Any, kind: str) -> MetaTensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _loader()(str(path), reader=reader)
        except _bad_file_errors() as error:
            raise UserError(
                f"cannot read {path.name} as {kind} ({_short_reason(error)})"
            ) from None


def _read_nifti(path: Path, max_bytes: int) -> tuple[MetaTensor, nib.Nifti1Header]:
    try:
        header = nib.load(path).header  # header only: the data is read by MONAI below
        shape = header.get_data_shape()
        itemsize = header.get_data_dtype().itemsize
    except _bad_file_errors() as error:
        raise UserError(
            f"cannot read {path.name} as NIfTI ({_short_reason(error)})"
        ) from None
    # a small .nii.gz can inflate to a huge array: bound what the header declares
    _check_size(path, int(np.prod(shape, dtype=np.int64)) * itemsize, max_bytes,
                " (uncompressed)")
    reader = _monai().data.NibabelReader()
    return _load(path, reader, "NIfTI"), header.copy()


def _read_dicom(files: dict[Path, str], source: Path, max_bytes: int) -> MetaTensor:
    """One DICOM file, or a series of ``files`` in one folder (other files there are left
    out); ``files`` maps each file to the name shown in messages."""
    _check_size(source, sum(p.stat().st_size for p in files), max_bytes)
    _check_dicom_files(files, source)
    paths = list(files)
    if len(paths) == 1:
        return _load(paths[0], _monai().data.PydicomReader(), "DICOM")
    folder = paths[0].parent
    # read exactly the validated files of the folder (not a DICOMDIR or a stray file)
    names = "|".join(re.escape(p.name) for p in paths)
    reader = _monai().data.PydicomReader(fname_regex=rf".*[\\/](?:{names})$")
    image = _load(folder, reader, "a DICOM series")
    if image.shape[-1] != len(paths):
        raise UserError(
            f"cannot read {source.name} as a DICOM series: {len(paths)} files gave "
            f"{image.shape[-1]} slices"
        )
    return image


def dicom_modality(files: list[Path]) -> str | None:
    """The Modality tag (0008,0060) the DICOM ``files`` share (upper case; None when it is
    missing or the files disagree)."""
    import pydicom

    found = set()
    for file in files:
        try:
            value = pydicom.dcmread(file, stop_before_pixels=True,
                                    specific_tags=["Modality"]).get("Modality")
        except _bad_file_errors():
            return None
        found.add(str(value).strip().upper() if value else None)
    return found.pop() if len(found) == 1 else None


#: readable names of DICOM Modality codes (PS3.3 C.7.3.1.1.1)
MODALITY_NAMES = {"MR": "MR", "CT": "CT", "PT": "PET", "NM": "nuclear medicine",
                  "US": "ultrasound", "CR": "radiograph", "DX": "radiograph",
                  "MG": "mammogram", "XA": "angiogram", "SM": "slide microscopy",
                  "XC": "photograph", "OT": "other"}


def modality_name(code: str) -> str:
    """The readable name of a DICOM Modality code (the code itself when unknown)."""
    return MODALITY_NAMES.get(code, code)


def modality_findings(image: MedicalImage, expected: str | None, trained_on: str,
                      noun: str = "scan") -> list[Finding]:
    """The refusal of ``image`` by a model trained on modality ``expected`` (described as
    ``trained_on``), or none: a DICOM Modality other than ``expected``, else, with no
    Modality recorded, Hounsfield units (:func:`hounsfield_evidence`) when ``expected``
    is not CT. Nothing is compared when ``expected`` is None (unknown)."""
    if expected is None:
        return []
    if image.modality:
        if image.modality == expected:
            return []
        return [refuse("modality", (
            f"it is a {modality_name(image.modality)} {noun} (DICOM Modality "
            f"{image.modality}); the model was trained on {trained_on}"))]
    evidence = hounsfield_evidence(image) if expected != "CT" else None
    return [refuse("units", f"{evidence}; the model was trained on {trained_on}")] \
        if evidence else []


def hounsfield_evidence(image: MedicalImage) -> str | None:
    """Why ``image``'s intensities look like CT Hounsfield units, or None.

    CT in HU has air at about -1000 around and inside the body (lungs, sinuses,
    airways), so a large share of voxels lies at or below -500; MR signal, PET and
    ultrasound intensities are not negative (a z-scored MR reaches a few units below 0,
    never hundreds). The rule needs both: at least 5% of the finite voxels at or below
    -500 and a minimum at or below -800 (reconstructions put air at -850 to -1024).
    """
    values = image.array[np.isfinite(image.array)]
    if values.size == 0:
        return None
    share = float(np.mean(values <= -500))
    low = float(values.min())
    if share >= 0.05 and low <= -800:
        return (f"its intensities look like CT Hounsfield units ({share:.0%} of the voxels "
                f"at or below -500, minimum {low:.0f}: air)")
    return None


def _dimension_error(path: Path, kind: str, channels: int, shape: tuple[int, ...],
                     spatial_dims: int | None) -> str | None:
    """Why the loaded ``[channels, *shape]`` does not fit ``spatial_dims``, or None."""
    if spatial_dims is None:
        return None
    four_d = kind == "nifti" and channels > 1
    if spatial_dims == 3:
        if four_d:
            return (f"{path.name} is a 4D series with {channels} volumes of "
                    f"{_shape_text(shape)}: expected one 3D volume, give one volume")
        if len(shape) == 2:
            return f"{path.name} is a 2D image of {_shape_text(shape)}: expected a 3D volume"
        if min(shape) == 1:
            return (f"{path.name} is a single slice ({_shape_text(shape)}): "
                    "expected a 3D volume")
        return None
    if four_d:
        return (f"{path.name} is a 4D series with {channels} volumes of {_shape_text(shape)}: "
                "expected a 2D image")
    if len(shape) == 3 and sum(n == 1 for n in shape) != 1:
        what = "a 3D volume" if min(shape) > 1 else "one-dimensional"
        return (f"{path.name} is {what} ({_shape_text(shape)}): expected a 2D image "
                "(a 3D volume with one slice is accepted)")
    return None


def read_image(path: str | os.PathLike, spatial_dims: int | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES) -> MedicalImage:
    """Read a medical image file into a :class:`MedicalImage` in RAS orientation.

    Args:
        path: a ``.nii``/``.nii.gz`` file; a DICOM file (``.dcm``, or no suffix with the
            ``DICM`` marker); a folder or ``.zip`` holding one DICOM series; a ``.png``,
            ``.jpg`` or ``.jpeg`` picture (grayscale or RGB, identity affine).
        spatial_dims: 3 requires a 3D volume (not a single slice, not a 4D series of
            several volumes); 2 requires a 2D image (a 3D volume with one singleton axis
            is squeezed to 2D); None keeps what the file holds (a 4D NIfTI's volumes
            become channels).
        max_bytes: the largest input accepted, counted uncompressed.

    Raises:
        UserError: for any file that cannot be read or does not match ``spatial_dims``;
            the message names the file, what was expected and what it holds.
    """
    if spatial_dims not in (None, 2, 3):
        raise ValueError(f"spatial_dims must be 2, 3 or None, got {spatial_dims!r}")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    input_kind = _input_kind(path)
    header = None
    modality = None
    with tempfile.TemporaryDirectory(prefix="domainvit-read-") as scratch:
        if input_kind == "nifti":
            loaded, header = _read_nifti(path, max_bytes)
        elif input_kind == "image":
            _check_size(path, path.stat().st_size, max_bytes)
            # reverse_indexing=False keeps PIL's (rows, columns) order: array[0] looks
            # like the picture
            loaded = _load(path, _monai().data.PILReader(reverse_indexing=False), "an image")
        elif input_kind == "dicom":
            loaded = _read_dicom({path: path.name}, path, max_bytes)
            modality = dicom_modality([path])
        elif input_kind == "dicom_folder":
            files = _dicom_files_in(path)
            if not files:
                raise UserError(
                    f"{path.name} holds no DICOM files: expected a folder with one DICOM "
                    "series (subfolders are not searched)"
                )
            loaded = _read_dicom({p: p.name for p in files}, path, max_bytes)
            modality = dicom_modality(files)
        else:
            _check_size(path, path.stat().st_size, max_bytes)
            extracted = _extract_zip(path, Path(scratch), max_bytes)
            loaded = _read_dicom(extracted, path, max_bytes)
            modality = dicom_modality(list(extracted))
    kind: Kind = "dicom" if input_kind in ("dicom_folder", "zip") else input_kind
    image = _to_ras(loaded, path, kind, spatial_dims, header)
    image.modality = modality
    return image


def _to_ras(loaded: MetaTensor, path: Path, kind: Kind, spatial_dims: int | None,
            header: nib.Nifti1Header | None) -> MedicalImage:
    channels, *shape = loaded.shape
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise UserError(f"{path.name} has {len(shape)} spatial axes: expected 2 or 3")
    reason = _dimension_error(path, kind, channels, shape, spatial_dims)
    if reason:
        raise UserError(reason)
    values = loaded.as_tensor()
    if values.numel() == 0 or not bool(values.isfinite().any()):
        raise UserError(f"{path.name} holds no finite values (all NaN or infinite): "
                        "expected an image")

    # orient in 3D always: a 2D image is a one-slice volume whose affine (4x4) says
    # where the slice lies, so a sagittal DICOM slice comes out as (A, S) like a volume's
    picture_2d = len(shape) == 2
    volume = loaded.unsqueeze(-1) if picture_2d else loaded
    native_affine = volume.affine.numpy().astype(np.float64)
    axcodes = nib.aff2axcodes(native_affine)
    if None in axcodes:
        raise UserError(f"{path.name} has a degenerate affine (axes {axcodes}): "
                        "cannot orient it")
    try:
        oriented = _orient(volume, "RAS")
    except ValueError as error:  # MONAI and nibabel refuse an affine they cannot orient
        raise UserError(
            f"cannot orient {path.name} to RAS ({_short_reason(error)})"
        ) from None
    array = oriented.as_tensor().numpy().astype(np.float32, copy=False)
    affine = oriented.affine.numpy().astype(np.float64)

    squeezed_axis = None
    if picture_2d or spatial_dims == 2:
        native_axis = 2 if picture_2d else shape.index(1)
        # where that native axis went in RAS order
        squeezed_axis = int(nib.io_orientation(native_affine)[native_axis, 0])
        array = np.squeeze(array, axis=1 + squeezed_axis)
        kept = [axis for axis in range(3) if axis != squeezed_axis]
        affine = affine[:, [*kept, squeezed_axis, 3]]
    spatial = array.ndim - 1
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :spatial], axis=0))
    return MedicalImage(
        array=np.ascontiguousarray(array), affine=affine, spacing=spacing, source_path=path,
        kind=kind, native_affine=native_affine, native_axcodes=tuple(axcodes),
        native_shape=tuple(int(n) for n in volume.shape[1:]), squeezed_axis=squeezed_axis,
        nifti_header=header,
    )


# ---------------------------------------------------------------------------------------
# Back to the file's grid


def _ras_volume_affine(image: MedicalImage) -> np.ndarray:
    """The affine of the 3D RAS grid that ``image.array`` was taken from."""
    if image.squeezed_axis is None:
        return image.affine
    columns = [0, 1]  # the 2D affine holds the kept axes first, the squeezed one third
    columns.insert(image.squeezed_axis, 2)
    return image.affine[:, [*columns, 3]]


def to_native(array: np.ndarray, image: MedicalImage) -> np.ndarray:
    """Map ``array`` from ``image.array``'s grid (RAS) back onto the file's own grid.

    ``array`` is ``[*spatial]`` or ``[K, *spatial]`` with ``spatial == image.spatial_shape``
    (a label map, a probability map); the result has the same dtype and leading axis and
    ``image.native_shape`` as spatial shape (3D: a 2D image comes back as one slice), so
    that with ``image.native_affine`` it lies exactly where the input did.
    """
    import torch

    data = np.asarray(array)
    with_channels = data.ndim == image.array.ndim
    stacked = data if with_channels else data[None]
    if tuple(stacked.shape[1:]) != image.spatial_shape:
        raise ValueError(
            f"expected an array of spatial shape {_shape_text(image.spatial_shape)} "
            f"(the image's), got shape {_shape_text(data.shape)}"
        )
    if image.squeezed_axis is not None:
        stacked = np.expand_dims(stacked, 1 + image.squeezed_axis)
    monai = _monai()
    volume = monai.data.MetaTensor(
        torch.from_numpy(np.ascontiguousarray(stacked)),
        affine=torch.from_numpy(_ras_volume_affine(image)),
    )
    native = _orient(volume, "".join(image.native_axcodes)).as_tensor().numpy()
    return native if with_channels else native[0]


# ---------------------------------------------------------------------------------------
# Writing


def _check_output_suffix(path: Path, suffixes: tuple[str, ...], what: str) -> None:
    if not path.name.lower().endswith(suffixes):
        raise UserError(f"cannot write {what} to {path.name}: expected a name ending in "
                        f"{' or '.join(suffixes)}")


def _save_nifti(data: np.ndarray, image: MedicalImage, path: Path) -> None:
    nifti = nib.Nifti1Image(data, image.native_affine)
    if image.nifti_header is not None:
        # keep the input's two spatial transforms and their codes, not just one affine
        source = image.nifti_header
        qform, qform_code = source.get_qform(coded=True)
        sform, sform_code = source.get_sform(coded=True)
        nifti.header.set_qform(qform, code=int(qform_code))
        nifti.header.set_sform(sform, code=int(sform_code))
        nifti.header.set_xyzt_units(*source.get_xyzt_units())
    elif image.kind == "dicom":
        # DICOM positions are scanner coordinates
        nifti.header.set_qform(image.native_affine, code=1)
        nifti.header.set_sform(image.native_affine, code=1)
    nifti.header.set_data_dtype(data.dtype)
    with atomic_write(path) as temporary:
        nib.save(nifti, temporary)


def _label_dtype(labels: np.ndarray) -> np.dtype:
    if labels.size == 0:
        return np.dtype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or not np.array_equal(labels, np.round(labels)):
            raise ValueError("labels must be integers")
    low, high = labels.min(), labels.max()
    if low >= 0 and high <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if low >= np.iinfo(np.int16).min and high <= np.iinfo(np.int16).max:
        return np.dtype(np.int16)
    raise ValueError(f"labels must fit int16, got values {low}..{high}")


def write_label_nifti(labels: np.ndarray, image: MedicalImage,
                      path: str | os.PathLike) -> Path:
    """Write a label map computed on ``image.array``'s grid as NIfTI in the input's grid.

    ``labels`` is ``[*spatial]`` (or ``[1, *spatial]``) of integers; it is stored as uint8
    when it fits, else int16, on ``image.native_shape`` with ``image.native_affine`` (and,
    for NIfTI inputs, the input's qform/sform and their codes). Returns the path written.
    """
    path = Path(path)
    _check_output_suffix(path, NIFTI_SUFFIXES, "a label map")
    data = np.asarray(labels)
    if data.ndim == image.array.ndim and data.shape[0] == 1:
        data = data[0]
    data = data.astype(_label_dtype(data))
    _save_nifti(to_native(data, image), image, path)
    return path


def write_probabilities_nifti(probabilities: np.ndarray, image: MedicalImage,
                              path: str | os.PathLike) -> Path:
    """Write class probabilities ``[K, *spatial]`` as a float32 4D NIfTI (K volumes)."""
    path = Path(path)
    _check_output_suffix(path, NIFTI_SUFFIXES, "probabilities")
    data = np.asarray(probabilities, dtype=np.float32)
    if data.ndim != image.array.ndim:
        raise ValueError(f"expected probabilities [K, {_shape_text(image.spatial_shape)}], "
                         f"got shape {_shape_text(data.shape)}")
    native = to_native(data, image)
    _save_nifti(np.ascontiguousarray(np.moveaxis(native, 0, -1)), image, path)
    return path


def write_map_nifti(values: np.ndarray, image: MedicalImage, path: str | os.PathLike) -> Path:
    """Write a map of one float per voxel (a confidence, an uncertainty) computed on
    ``image.array``'s grid as a float32 NIfTI on the input's grid, like
    :func:`write_label_nifti`."""
    path = Path(path)
    _check_output_suffix(path, NIFTI_SUFFIXES, "a map")
    data = np.asarray(values, dtype=np.float32)
    if data.ndim == image.array.ndim and data.shape[0] == 1:
        data = data[0]
    _save_nifti(np.ascontiguousarray(to_native(data, image)), image, path)
    return path


def _window(intensity: np.ndarray) -> np.ndarray:
    """Intensities scaled to [0, 1] between the 1st and 99th percentile of finite values."""
    finite = intensity[np.isfinite(intensity)]
    if finite.size == 0:
        return np.zeros(intensity.shape)
    low, high = np.percentile(finite, [1, 99])
    if high <= low:
        return np.zeros(intensity.shape)
    scaled = (np.nan_to_num(intensity, nan=low) - low) / (high - low)
    return np.clip(scaled, 0.0, 1.0)


def write_overlay_png(image2d: np.ndarray, labels: np.ndarray, path: str | os.PathLike,
                      alpha: float = 0.45) -> Path:
    """Write a slice with its labels drawn over it as an RGB PNG.

    ``image2d`` is ``[H, W]`` or channel-first ``[C, H, W]`` (channels are averaged);
    it is shown in grayscale windowed to its 1st-99th percentile. Label ``l > 0`` is
    blended with weight ``alpha`` in colour ``LABEL_COLOURS[(l - 1) % len(LABEL_COLOURS)]``.
    Rows and columns are written as given: orient the slice for display before calling.
    """
    from PIL import Image

    path = Path(path)
    _check_output_suffix(path, (".png",), "an overlay")
    intensity = np.asarray(image2d, dtype=np.float64)
    if intensity.ndim == 3:
        intensity = intensity.mean(axis=0)
    labels = np.asarray(labels)
    if intensity.ndim != 2 or labels.shape != intensity.shape:
        raise ValueError(f"expected a 2D image and labels of the same shape, got "
                         f"{_shape_text(np.shape(image2d))} and {_shape_text(labels.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    gray = np.repeat(_window(intensity)[..., None] * 255.0, 3, axis=-1)
    labelled = labels > 0
    colours = LABEL_COLOURS[(labels[labelled].astype(np.int64) - 1) % len(LABEL_COLOURS)]
    gray[labelled] = (1.0 - alpha) * gray[labelled] + alpha * colours
    rgb = np.clip(np.round(gray), 0, 255).astype(np.uint8)
    with atomic_write(path) as temporary:
        Image.fromarray(rgb, mode="RGB").save(temporary, format="PNG")
    return path
