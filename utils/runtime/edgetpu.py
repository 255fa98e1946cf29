"""libedgetpu: where it is, which Edge TPUs it sees, and its delegate for one device.

Device names are libedgetpu's own: ``usb``, ``pci`` or ``:N`` (any type), ``usb:N``/``pci:N``
(the N-th of that type) or ``usb:/sys/...`` (a path from the device list, opened by its number).
A device's number changes when one before it is unplugged; its path (the USB port or PCIe slot)
does not, so a device that failed is reopened by its path.
"""
from __future__ import annotations

import ctypes
import os
import platform
import re

from utils.errors import DeviceError, UserError

LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
# For tests and benches: a stand-in library with the same ABI (utils/testing/standin_edgetpu.c).
LIBRARY_VARIABLE = "TINYYOLO_EDGETPU_LIBRARY"
_DEVICE = re.compile(r"(usb|pci)?(:\d+)?|(usb|pci):/\S+")
_TYPES = {0: "pci", 1: "usb"}  # enum edgetpu_device_type in edgetpu_c.h


class _Device(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("path", ctypes.c_char_p)]


def library_name() -> str:
    return os.environ.get(LIBRARY_VARIABLE) or LIBRARY.get(platform.system(), "libedgetpu.so.1")


def _library() -> ctypes.CDLL:
    """libedgetpu, loaded first on its own: a failed ``load_delegate`` leaves the runtimes printing
    a traceback at exit."""
    name = library_name()
    try:
        return ctypes.CDLL(name)
    except OSError:
        raise UserError(f"Edge TPU runtime not found: {name} cannot be loaded. Install it (Coral's "
                        "libedgetpu1-std package, or a build matching your TFLite runtime), or run on the CPU "
                        "without --edge_tpu") from None


def list_devices() -> list[tuple[str, str]]:
    """(name, path) of every Edge TPU libedgetpu sees, named ``usb:N``/``pci:N`` in its order."""
    library = _library()
    try:
        enumerate_devices, free = library.edgetpu_list_devices, library.edgetpu_free_devices
    except AttributeError:
        raise UserError(f"{library_name()} cannot list devices (no edgetpu_list_devices); name them with "
                        "--device usb:0 or pci:0") from None
    enumerate_devices.restype = ctypes.POINTER(_Device)
    enumerate_devices.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    free.argtypes = [ctypes.POINTER(_Device)]
    count = ctypes.c_size_t(0)
    found = enumerate_devices(ctypes.byref(count))
    devices, seen = [], {"usb": 0, "pci": 0}
    for i in range(count.value):
        kind = _TYPES.get(found[i].type, "unknown")
        devices.append((f"{kind}:{seen.get(kind, 0)}", (found[i].path or b"").decode(errors="replace")))
        seen[kind] = seen.get(kind, 0) + 1
    if found:
        free(found)
    return devices


def device_path(name: str | None) -> str | None:
    """The path of the device ``name`` opens now (None: the first), or None if the library does not
    list devices or does not see it."""
    try:
        devices = list_devices()
    except UserError:
        return None
    kind, _, rest = (name or "").partition(":")
    if rest.startswith("/"):
        return rest if any(path == rest for _, path in devices) else None
    matching = [path for listed, path in devices if not kind or listed.split(":")[0] == kind]
    index = int(rest) if rest.isdigit() else 0
    return matching[index] if index < len(matching) else None


def name_of_path(path: str) -> str | None:
    """The ``usb:N``/``pci:N`` name of the device at ``path`` now, or None if it is not listed."""
    try:
        return next((name for name, listed in list_devices() if listed == path), None)
    except UserError:
        return None


def device_names(option: str) -> list[str] | None:
    """The names in ``--device`` (one, or a comma-separated list), checked; None for ``all``."""
    if option.strip() == "all":
        return None
    names = [name.strip() for name in option.split(",")]
    for name in names:
        if not name or not _DEVICE.fullmatch(name):
            raise UserError(f"--device {option}: {name!r} is not a device name (usb, usb:0, pci:1, :0 or all)")
    if len(set(names)) != len(names):
        raise UserError(f"--device {option}: a device is named twice")
    return names


def parse_devices(option: str | None) -> list[str | None]:
    """``--device``: one name, a list, or ``all`` (every device listed); ``[None]`` means the first device."""
    if option is None:
        return [None]
    names = device_names(option)
    if names is None:
        names = [name for name, _ in list_devices()]
        if not names:
            raise UserError("--device all: no Edge TPU found (check the USB connection; --list-devices shows "
                            "what the runtime sees)")
    return names


def delegate(load_delegate, device: str | None):
    """The Edge TPU delegate for ``device`` (None: the first one), or a UserError saying what is missing."""
    _library()
    name = library_name()
    if device and ":/" in device:  # libedgetpu opens devices by number only
        device = name_of_path(device.split(":", 1)[1]) or device
    try:
        return load_delegate(name, {"device": device} if device else {})
    except (ValueError, OSError, RuntimeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = lines[-1][:160] if lines else type(error).__name__  # the library's own words come last
        raise DeviceError(f"no Edge TPU found{f' at {device}' if device else ''}: {name} is installed but the "
                          f"delegate failed ({reason}); check the connection, or --list-devices", reason) from None
