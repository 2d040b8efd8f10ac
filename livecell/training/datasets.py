"""Labelled patches for training: folder-per-class trees and simulator acquisitions.

Both loaders return a :class:`PatchSet`: float32 patches ``[N, C, H, W]`` held in
memory, an integer label and a *group* per patch, and the class names. The group is
what a split must never cut through (``livecell.training.splits``).

Folder-per-class trees (the ImageFolder / fastai convention)
    ``ROOT/<class>/<image files>`` (searched recursively below each class folder);
    ``.tif``/``.tiff`` (tifffile), ``.png``/``.jpg``/``.jpeg`` (OpenCV), any size.
    Pixels: ``YX`` (one channel), ``YXS`` RGB or RGBA (alpha dropped, RGB order), or a
    TIFF ``CYX`` stack with at most 8 channels. A Z stack is not a channel stack: take
    its maximum intensity projection first. ``mode="tile"`` (the default) cuts every
    image into non-overlapping ``patch_size`` tiles, dropping the right and bottom
    remainder (an image smaller than one tile is resized up to one tile, so it still
    counts); ``mode="resize"`` resizes each whole image to one patch (for datasets of
    single-cell crops). The group of a patch is its source image, ``<root>/<class>/<file>``.

Simulator acquisitions (``livecell simulate OUT --kind holotomo``)
    Patches are the cells of the 160 px truth grid in ``OUT/ground_truth/patches.csv``
    cut from ``OUT/frames/<position>/t#####.ome.tif``; a ``ZYX`` volume is reduced to its
    maximum intensity projection. Another ``patch_size`` resizes each 160 px patch (the
    labels belong to the grid, not to other tilings). ``empty`` patches are left out by
    default, as the daemon skips them; ``include_empty=True`` keeps them as a sixth class,
    ``empty``. Classes are always the five states (plus ``empty``), in the simulator's
    order, even when some do not occur. The group is ``<OUT folder name>/<position>``.

Normalisation statistics (:class:`Normalisation`) are fitted on the training split only
and stored in the model card. Augmentation (:func:`augment`) is a pure function of a
patch and a ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import tifffile

from livecell.simulation.scene import DEFAULT_PATCH_SIZE_PX, EMPTY_PATCH, PATCH_STATES
from livecell.stream.tiff import same_size_images

FloatArray = npt.NDArray[np.float32]
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
MAX_CHANNELS = 8
DataKind = Literal["folders", "simulated"]
TileMode = Literal["tile", "resize"]


class DataError(ValueError):
    """Training data that cannot be used; ``path`` names the file or folder."""

    def __init__(self, message: str, *, path: Path | str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


class FrameAxesError(DataError):
    """A TIFF whose axes are none a frame has (YX, ZYX, CYX, ZCYX)."""


@dataclass(frozen=True, slots=True, eq=False)
class PatchSet:
    """Patches ``[N, C, H, W]`` float32, labels ``[N]`` (indices into ``classes``), groups."""

    images: FloatArray
    labels: npt.NDArray[np.int64]
    groups: tuple[str, ...]
    classes: tuple[str, ...]
    kind: DataKind
    sources: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.float32:
            raise ValueError(
                f"images must be float32 [N, C, H, W], got {self.images.dtype} {self.images.shape}"
            )
        n = self.images.shape[0]
        if self.labels.shape != (n,) or len(self.groups) != n:
            raise ValueError(f"{n} images, {self.labels.shape} labels, {len(self.groups)} groups")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def patch_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}


# ---------------------------------------------------------------- pixels to patches


def resize_chw(image: FloatArray, size: tuple[int, int]) -> FloatArray:
    """``image`` ``[C, H, W]`` resized to ``size`` ``(H, W)``; area averaging when shrinking."""
    h, w = size
    if image.shape[1:] == (h, w):
        return image
    shrinking = image.shape[1] >= h and image.shape[2] >= w
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = [cv2.resize(np.ascontiguousarray(ch), (w, h), interpolation=interp) for ch in image]
    return np.stack(out).astype(np.float32, copy=False)


def tiles(image: FloatArray, patch_size: int) -> list[FloatArray]:
    """Non-overlapping ``patch_size`` tiles of ``[C, H, W]``, row-major, remainder dropped.

    An image smaller than one tile in either direction is resized to one tile.
    """
    _, h, w = image.shape
    if h < patch_size or w < patch_size:
        return [resize_chw(image, (patch_size, patch_size))]
    return [
        image[:, r : r + patch_size, c : c + patch_size]
        for r in range(0, h - patch_size + 1, patch_size)
        for c in range(0, w - patch_size + 1, patch_size)
    ]


def _as_chw(pixels: np.ndarray, path: Path, *, bgr: bool) -> FloatArray:
    """A folder-tree image as float32 ``[C, H, W]`` (see the module docstring for layouts)."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] > MAX_CHANNELS:
        a = a[..., :3]
        if bgr:
            a = a[..., ::-1]
        a = np.moveaxis(a, -1, 0)
    elif a.ndim == 3 and a.shape[0] <= MAX_CHANNELS:
        pass
    else:
        raise DataError(
            f"pixels of shape {a.shape} are not YX, YX+RGB(A) or CYX with at most "
            f"{MAX_CHANNELS} channels (take a Z stack's projection first)",
            path=path,
        )
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise DataError(f"pixel type {a.dtype} is not real numbers", path=path)
    return np.ascontiguousarray(a, dtype=np.float32)


def read_image(path: Path) -> FloatArray:
    """One image file of a folder tree as float32 ``[C, H, W]``."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            return _as_chw(tifffile.imread(path), path, bgr=False)
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the image: {exc}", path=path) from exc
    if pixels is None:
        raise DataError("cannot read the image", path=path)
    return _as_chw(pixels, path, bgr=True)


def read_frame(path: Path) -> FloatArray:
    """A simulator frame as float32 ``[C, H, W]``: a Z stack becomes its maximum projection."""
    try:
        with tifffile.TiffFile(path) as tif:
            images = same_size_images(tif.series)
            series = tif.series[0]
            axes = series.axes.upper()
            pixels = series.asarray() if images == 1 else None
    except (OSError, ValueError, IndexError) as exc:
        raise DataError(f"cannot read the frame: {exc}", path=path) from exc
    if pixels is None:
        raise DataError(
            f"{images} images (series) of one size in one TIFF: give one per file", path=path
        )
    if "Z" in axes:
        pixels = pixels.max(axis=axes.index("Z"))
        axes = axes.replace("Z", "")
    if axes == "YX":
        pixels = pixels[None]
    elif axes != "CYX":
        raise FrameAxesError(f"frame axes {series.axes} are not YX, ZYX, CYX or ZCYX", path=path)
    return np.ascontiguousarray(pixels, dtype=np.float32)


# ---------------------------------------------------------------- loaders


def _images_below(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _cap(n: int, max_patches: int | None, seed: int) -> npt.NDArray[np.int64]:
    """Sorted indices of at most ``max_patches`` of ``n`` items, drawn without replacement."""
    if max_patches is None or max_patches >= n:
        return np.arange(n, dtype=np.int64)
    if max_patches < 1:
        raise ValueError(f"max_patches must be at least 1, got {max_patches}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_patches, replace=False)).astype(np.int64)


def _stack(patches: Sequence[FloatArray], path: Path) -> FloatArray:
    channels = {p.shape[0] for p in patches}
    if len(channels) > 1:
        raise DataError(f"images have different channel counts: {sorted(channels)}", path=path)
    return np.stack(patches).astype(np.float32, copy=False)


def load_folder_tree(
    root: Path,
    *,
    patch_size: int = DEFAULT_PATCH_SIZE_PX,
    mode: TileMode = "tile",
    max_patches: int | None = None,
    seed: int = 0,
) -> PatchSet:
    """Patches from ``ROOT/<class>/<images>``; classes are the class folders, sorted."""
    root = Path(root)
    if patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and _images_below(d))
    if not class_dirs:
        raise DataError("no class folders with images (ROOT/<class>/<image files>)", path=root)
    classes = tuple(d.name for d in class_dirs)
    patches: list[FloatArray] = []
    labels: list[int] = []
    groups: list[str] = []
    for label, folder in enumerate(class_dirs):
        for path in _images_below(folder):
            image = read_image(path)
            cut = (
                [resize_chw(image, (patch_size, patch_size))]
                if mode == "resize"
                else tiles(image, patch_size)
            )
            group = f"{root.name}/{path.relative_to(root).as_posix()}"
            patches.extend(cut)
            labels.extend([label] * len(cut))
            groups.extend([group] * len(cut))
    keep = _cap(len(patches), max_patches, seed)
    return PatchSet(
        images=_stack([patches[i] for i in keep], root),
        labels=np.array(labels, dtype=np.int64)[keep],
        groups=tuple(groups[i] for i in keep),
        classes=classes,
        kind="folders",
        sources=(str(root.resolve()),),
    )


def simulated_classes(*, include_empty: bool) -> tuple[str, ...]:
    return (*PATCH_STATES, EMPTY_PATCH) if include_empty else tuple(PATCH_STATES)


def load_simulated(
    out: Path,
    *,
    patch_size: int = DEFAULT_PATCH_SIZE_PX,
    include_empty: bool = False,
    max_patches: int | None = None,
    seed: int = 0,
) -> PatchSet:
    """Patches of a simulated holotomography acquisition ``OUT`` (see the module docstring)."""
    out = Path(out)
    table = out / "ground_truth" / "patches.csv"
    classes = simulated_classes(include_empty=include_empty)
    try:
        with table.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise DataError(f"cannot read the patch truth: {exc}", path=table) from exc
    wanted = []
    for line, row in enumerate(rows, start=2):
        try:
            state = row["state"]
            key = (row["position"], int(row["t"]), int(row["row"]), int(row["col"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"line {line}: malformed row {row}", path=table) from exc
        if state not in classes and state != EMPTY_PATCH:
            raise DataError(f"line {line}: unknown state {state!r}", path=table)
        if state in classes:
            wanted.append((key, classes.index(state)))
    wanted = [wanted[i] for i in _cap(len(wanted), max_patches, seed)]
    grid = DEFAULT_PATCH_SIZE_PX
    patches: list[FloatArray] = []
    frame_cache: tuple[tuple[str, int], FloatArray] | None = None
    for (position, t, r, c), _ in wanted:
        if frame_cache is None or frame_cache[0] != (position, t):
            path = out / "frames" / position / f"t{t:05d}.ome.tif"
            frame_cache = ((position, t), read_frame(path))
        frame = frame_cache[1]
        patch = frame[:, r * grid : (r + 1) * grid, c * grid : (c + 1) * grid]
        if patch.shape[1:] != (grid, grid):
            raise DataError(f"patch row {r} col {c} is outside the frame", path=out / "frames")
        patches.append(resize_chw(patch, (patch_size, patch_size)))
    if not patches:
        raise DataError("no patches of the wanted classes", path=table)
    return PatchSet(
        images=_stack(patches, out),
        labels=np.array([label for _, label in wanted], dtype=np.int64),
        groups=tuple(f"{out.resolve().name}/{key[0]}" for key, _ in wanted),
        classes=classes,
        kind="simulated",
        sources=(str(out.resolve()),),
    )


def detect_kind(path: Path) -> DataKind:
    """``simulated`` if ``path`` holds ``ground_truth/patches.csv`` and ``frames/``;
    ``folders`` (a folder per class) if it is no simulator acquisition at all."""
    path = Path(path)
    if not path.is_dir():
        raise DataError("not a folder", path=path)
    simulated = (path / "ground_truth").is_dir() and (path / "frames").is_dir()
    if simulated and (path / "ground_truth" / "patches.csv").is_file():
        return "simulated"
    if (path / "frames").is_dir() and not simulated:
        raise DataError(
            "a simulator acquisition without ground_truth/ (its frames/ is no class folder): "
            "train on livecell simulate's whole output folder, or on a folder per class",
            path=path,
        )
    if simulated:
        raise DataError(
            "a simulator acquisition without ground_truth/patches.csv (a nanowell one?): the "
            "patch task trains on holotomography acquisitions or a folder per class; nanowell "
            "models train with --task cell_type, death, segmentation or contact",
            path=path,
        )
    return "folders"


def concatenate(sets: Iterable[PatchSet]) -> PatchSet:
    """One set from several of the same kind; folder trees are mapped onto the union of classes."""
    parts = list(sets)
    if not parts:
        raise ValueError("nothing to concatenate")
    if len({p.kind for p in parts}) > 1:
        raise DataError(
            "cannot mix folder trees and simulator acquisitions", path=parts[0].sources[0]
        )
    if len(parts) == 1:
        return parts[0]
    classes = tuple(sorted({c for p in parts for c in p.classes}))
    if parts[0].kind == "simulated":
        classes = parts[0].classes
    labels = [
        np.array([classes.index(p.classes[i]) for i in p.labels], dtype=np.int64) for p in parts
    ]
    shapes = {p.images.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise DataError(f"patch shapes differ: {sorted(shapes)}", path=parts[0].sources[0])
    return PatchSet(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate(labels),
        groups=tuple(g for p in parts for g in p.groups),
        classes=classes,
        kind=parts[0].kind,
        sources=tuple(s for p in parts for s in p.sources),
    )


def load_data(
    paths: Sequence[Path],
    *,
    patch_size: int = DEFAULT_PATCH_SIZE_PX,
    mode: TileMode = "tile",
    include_empty: bool = False,
    max_patches: int | None = None,
    seed: int = 0,
) -> PatchSet:
    """Every path auto-detected (:func:`detect_kind`), loaded and concatenated.

    ``max_patches`` caps the total: each source is capped at its share, rounded up.
    """
    simulated = [Path(p).resolve() for p in paths if detect_kind(p) == "simulated"]
    if len({p.name for p in simulated}) != len(simulated):
        raise DataError(
            "acquisition folder names must differ (with the position, they name the split "
            "groups: two folders of one name would count as one acquisition)",
            path=", ".join(str(p) for p in paths),
        )
    per_source = None if max_patches is None else max(1, math.ceil(max_patches / len(paths)))
    sets = []
    for i, path in enumerate(paths):
        if detect_kind(path) == "simulated":
            sets.append(
                load_simulated(
                    path,
                    patch_size=patch_size,
                    include_empty=include_empty,
                    max_patches=per_source,
                    seed=seed + i,
                )
            )
        else:
            sets.append(
                load_folder_tree(
                    path, patch_size=patch_size, mode=mode, max_patches=per_source, seed=seed + i
                )
            )
    return concatenate(sets)


# ---------------------------------------------------------------- normalisation


@dataclass(frozen=True, slots=True)
class Normalisation:
    """Per-channel mean and standard deviation; ``apply`` gives ``(x - mean) / std``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, images: FloatArray) -> Normalisation:
        """Statistics of ``images`` ``[N, C, H, W]`` (the training split only)."""
        if images.shape[0] == 0:
            raise ValueError("cannot fit normalisation on no images")
        x = images.astype(np.float64)
        mean = x.mean(axis=(0, 2, 3))
        std = x.std(axis=(0, 2, 3))
        std = np.where(std > 1e-12, std, 1.0)  # a constant channel is only centred
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def apply(self, images: FloatArray) -> FloatArray:
        """``[..., C, H, W]`` normalised, float32."""
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        return ((images - mean) / std).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


# ---------------------------------------------------------------- augmentation


@dataclass(frozen=True, slots=True)
class AugmentParams:
    """What :func:`augment` may do; jitter is in units of the normalised intensity."""

    flips: bool = True
    rot90: bool = True
    max_rotation_deg: float = 10.0
    gain_sd: float = 0.1
    offset_sd: float = 0.1


def rotate(patch: FloatArray, angle_deg: float) -> FloatArray:
    """``[C, H, W]`` rotated by ``angle_deg`` about its centre, edges reflected."""
    _, h, w = patch.shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    out = [
        cv2.warpAffine(
            np.ascontiguousarray(ch),
            matrix,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        for ch in patch
    ]
    return np.stack(out).astype(np.float32, copy=False)


def augment(
    patch: FloatArray, rng: np.random.Generator, params: AugmentParams = AugmentParams()
) -> FloatArray:
    """A randomly flipped, rotated and intensity-jittered copy of ``patch`` ``[C, H, W]``.

    90-degree rotations need a square patch (otherwise they are skipped). Every random
    number comes from ``rng``, drawn in a fixed order, so a seeded generator gives the
    same result on every machine.
    """
    flip_h, flip_v = rng.random(2) < 0.5
    k = int(rng.integers(4))
    angle = float(rng.uniform(-params.max_rotation_deg, params.max_rotation_deg))
    channels = patch.shape[0]
    gain = np.asarray(1.0 + params.gain_sd * rng.standard_normal(channels), dtype=np.float32)
    offset = np.asarray(params.offset_sd * rng.standard_normal(channels), dtype=np.float32)
    out = patch
    if params.flips and flip_h:
        out = out[:, :, ::-1]
    if params.flips and flip_v:
        out = out[:, ::-1, :]
    if params.rot90 and k and out.shape[1] == out.shape[2]:
        out = np.rot90(out, k, axes=(1, 2))
    out = np.ascontiguousarray(out, dtype=np.float32)
    if params.max_rotation_deg > 0 and angle != 0.0:
        out = rotate(out, angle)
    jittered: FloatArray = out * gain[:, None, None] + offset[:, None, None]
    return jittered.astype(np.float32, copy=False)
