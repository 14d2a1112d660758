"""Loading the corruption libraries (imagecorruptions, OpenCV) and their data files, once."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import types
import warnings
from typing import Any, Callable

import numpy as np


_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


def _resource_filename(package_or_module: str, resource: str) -> str:
    """``pkg_resources.resource_filename`` for packages installed as plain files.

    Like the original, ``package_or_module`` may name a module; the resource is then
    looked up next to that module's file.
    """
    module = sys.modules.get(package_or_module) or importlib.import_module(package_or_module)
    location = getattr(module, "__file__", None)
    if location is None:
        raise FileNotFoundError(
            f"cannot locate resource {resource!r}: module {package_or_module!r} has no __file__"
        )
    return os.path.normpath(os.path.join(os.path.dirname(location), resource))


def _standin_pkg_resources() -> types.ModuleType:
    module = types.ModuleType("pkg_resources")
    module.__doc__ = "prunecheck stand-in: only resource_filename, for importing imagecorruptions."
    module.resource_filename = _resource_filename  # type: ignore[attr-defined]
    return module


@functools.lru_cache(maxsize=1)
def load_imagecorruptions() -> types.ModuleType:
    """Import ``imagecorruptions`` whether or not ``pkg_resources`` exists.

    If the real ``pkg_resources`` is importable it is used. Otherwise a stand-in
    providing only ``resource_filename`` is put in ``sys.modules`` while
    imagecorruptions is imported, and removed afterwards.

    Returns:
        The ``imagecorruptions`` package.

    Raises:
        ImportError: if imagecorruptions (or its dependency opencv-python) is not installed.
    """
    if "imagecorruptions" in sys.modules:
        return sys.modules["imagecorruptions"]
    need_standin = "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None
    if need_standin:
        sys.modules["pkg_resources"] = _standin_pkg_resources()
    try:
        with warnings.catch_warnings():
            # imagecorruptions imports scipy.ndimage.interpolation (deprecated namespace).
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module("imagecorruptions")
    except ImportError as exc:
        raise ImportError(
            "generated corruptions need the 'imagecorruptions' package (and opencv-python): "
            f"import failed with {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if need_standin and isinstance(sys.modules.get("pkg_resources"), types.ModuleType):
            if getattr(sys.modules["pkg_resources"], "resource_filename", None) is _resource_filename:
                del sys.modules["pkg_resources"]


def _cv2() -> types.ModuleType:
    try:
        return importlib.import_module("cv2")
    except ImportError as exc:
        raise ImportError(
            "generated corruptions need opencv-python (a dependency of imagecorruptions): "
            f"import failed with {exc}"
        ) from exc


def frost_texture_path(index: int) -> str:
    """Path of frost texture ``index`` (0..5) in the installed imagecorruptions package.

    prunecheck does not ship the textures: imagecorruptions distributes them, and their
    own provenance is not stated (see docs/corruptions.md).
    """
    folder = os.path.join(os.path.dirname(load_imagecorruptions().__file__), "frost")
    return os.path.join(folder, _FROST_FILES[index])


def read_frost_texture(index: int) -> np.ndarray:
    """Frost texture ``index`` (0..5) as BGR uint8 [h, w, 3], as ``cv2.imread`` decodes it.

    Raises:
        FileNotFoundError: the file is missing or not an image.
    """
    path = frost_texture_path(index)
    texture = _cv2().imread(path)
    if texture is None:
        raise FileNotFoundError(f"frost texture {path}: expected an image file shipped with imagecorruptions")
    return texture


def blend_frost(
    x: Any, severity: int, profile: str, texture: Callable[[int, int, int], np.ndarray]
) -> np.ndarray:
    """``clip(a x + b window, 0, 255)``: the frost of both profiles, which differ only in how
    ``texture(index, height, width)`` scales the texture (BGR uint8) the window is cut from.

    Draws from ``np.random`` in the reference order: texture index, then row, then column.
    """
    from prunecheck.data.corruptions.profiles import parameters

    image_weight, frost_weight = parameters(profile, "frost", severity)
    index = np.random.randint(5)
    image = np.asarray(x)
    height, width = image.shape[:2]
    scaled = texture(index, height, width)
    top = np.random.randint(0, scaled.shape[0] - height)
    left = np.random.randint(0, scaled.shape[1] - width)
    window = scaled[top : top + height, left : left + width][..., [2, 1, 0]]
    return np.clip(image_weight * image + frost_weight * window, 0, 255)
