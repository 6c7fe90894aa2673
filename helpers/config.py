"""Where data lives, the quick setting, seeding, device choice and a version print-out.

Nothing here imports torch or TensorFlow at import time; functions that use a framework import it
only when called and only if it is installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import random
import sys
from pathlib import Path

import numpy as np

#: Environment variable that overrides where data sets and caches are written.
DATA_DIR_ENV = "MEDIMG_DATA_DIR"
#: Environment variable that selects the quick setting (``1``) used by CI and ``make test``.
QUICK_ENV = "MEDIMG_QUICK"
#: Environment variable that says no person is watching (``1``: make demo, make test, CI): widgets fall back to static output.
HEADLESS_ENV = "MEDIMG_HEADLESS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

#: Packages whose versions ``print_versions`` reports (read from metadata, never imported).
VERSION_PACKAGES = (
    "numpy",
    "pandas",
    "pydicom",
    "matplotlib",
    "scikit-image",
    "scikit-learn",
    "torch",
    "torchvision",
    "fastai",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "azure-ai-ml",
    "mlflow-skinny",
)


def data_dir(create: bool = True) -> Path:
    """Root folder for generated data, downloads and caches: ``$MEDIMG_DATA_DIR`` or the user cache dir."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("medimg-tutorials"))
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(name: str, create: bool = True) -> Path:
    """A named sub-folder of :func:`data_dir`, e.g. ``cache_dir("downloads")``."""
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"cache_dir name must be a relative folder name, got {name!r}")
    path = data_dir(create=create) / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def is_quick(override: bool | None = None) -> bool:
    """The quick setting: ``override`` if given (a papermill parameter), else ``$MEDIMG_QUICK``."""
    if override is not None:
        return bool(override)
    raw = os.environ.get(QUICK_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{QUICK_ENV}={raw!r} is not understood: use 1 (quick) or 0 (full).")


def is_headless() -> bool:
    """True when no person is watching (``$MEDIMG_HEADLESS=1``, or not inside a Jupyter kernel): use static output."""
    if os.environ.get(HEADLESS_ENV, "").strip().lower() in _TRUE:
        return True
    return "ipykernel" not in sys.modules


def on_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def seed_everything(seed: int = 0, deterministic: bool = False) -> list[str]:
    """Seed random, numpy, and torch / TensorFlow / Keras if the caller has imported them; return what was seeded.

    Frameworks are seeded only when already in ``sys.modules``: seeding must not drag a heavy
    framework into a process that does not use it. Call this after importing your framework.
    With ``deterministic=True`` torch and TensorFlow are also asked for deterministic kernels
    (slower; some operations then raise instead of running non-deterministically).
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    seeded = ["random", "numpy"]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        seeded.append("torch")
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        tf.random.set_seed(seed)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        seeded.append("tensorflow")
    if "keras" in sys.modules:  # Keras 3 draws weight initialisation from its own global seed
        sys.modules["keras"].utils.set_random_seed(seed)
        seeded.append("keras")
    return seeded


def get_device(prefer: str | None = None) -> str:
    """The best torch device name available: ``"cuda"``, then ``"mps"``, then ``"cpu"`` (imports torch).

    ``prefer`` forces a choice and raises ``RuntimeError`` if that device is not available.
    """
    import torch

    available = ["cpu"]
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.insert(len(available) - 1, "mps")
    if prefer is None:
        return available[0]
    if prefer not in available:
        raise RuntimeError(
            f"Device {prefer!r} is not available here (available: {', '.join(available)}). "
            "On Colab choose Runtime > Change runtime type > GPU; otherwise pass prefer=None."
        )
    return prefer


def package_versions(packages: tuple[str, ...] = VERSION_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` from their metadata (nothing is imported); absent ones are left out."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def versions_report() -> dict[str, str]:
    """What :func:`print_versions` prints, as a dict: Python, platform, packages, settings, devices."""
    from helpers import __version__

    report = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "helpers": __version__,
    }
    report.update(package_versions())
    report["quick setting"] = str(is_quick())
    report["data dir"] = display_path(data_dir(create=False))
    if "torch" in sys.modules:
        report["torch device"] = get_device()
    if "tensorflow" in sys.modules:
        gpus = sys.modules["tensorflow"].config.list_physical_devices("GPU")
        report["tensorflow GPUs"] = str(len(gpus))
    return report


def print_versions() -> None:
    """Print Python, package versions, the quick setting, data folder and devices (see :func:`versions_report`)."""
    report = versions_report()
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")


def display_path(path: Path) -> str:
    """``path`` with the home folder written as ``~`` so printed output carries no user name."""
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def framework_available(name: str) -> bool:
    """True if ``name`` (e.g. ``"torch"``) can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None
