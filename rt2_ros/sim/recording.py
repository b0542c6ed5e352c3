"""Record ROS 2 messages to MCAP (Foxglove, ``ros2 bag play`` with the mcap plugin). ROS-free.

Messages arrive already serialised (CDR, from rclpy subscriptions with ``raw=True``)
and are written unchanged with the ``mcap`` library; each channel carries its
message definition in the ``ros2msg`` schema encoding that rosbag2's MCAP storage
uses: the type's ``.msg`` text, then every nested type after a line of ``=`` and
``MSG: pkg/Type`` (``mcap_ros2`` and Foxglove parse exactly this). The ``.msg`` files
come from the installed packages' share directories (``ament_index_python``).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import BinaryIO

__all__ = ["message_definition", "McapRecorder", "PRIMITIVES"]

PRIMITIVES = {
    "bool",
    "byte",
    "char",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "string",
    "wstring",
}
_SEP = "=" * 80


def _msg_file(pkg: str, name: str) -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = Path(get_package_share_directory(pkg))
    except PackageNotFoundError:
        raise LookupError(f"package {pkg!r} is not installed (no share directory on AMENT_PREFIX_PATH)") from None
    path = share / "msg" / f"{name}.msg"
    if not path.is_file():
        raise LookupError(f"no message definition {path}")
    return path


def _dependencies(pkg: str, text: str) -> list[tuple[str, str]]:
    deps = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        ftype = line.split()[0]
        if "=" in line.split(None, 1)[-1] and ftype in PRIMITIVES:
            continue  # a constant
        base = re.sub(r"\[.*\]$", "", ftype)
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVES:
            continue
        if base == "Header":
            deps.append(("std_msgs", "Header"))
        elif "/" in base:
            parts = base.split("/")
            deps.append((parts[0], parts[-1]))
        else:
            deps.append((pkg, base))
    return deps


def message_definition(datatype: str) -> str:
    """The concatenated ``ros2msg`` definition of ``datatype`` (``pkg/msg/Name`` or ``pkg/Name``).

    Raises:
        LookupError: a package or ``.msg`` file is not installed.
        ValueError: a malformed type name.
    """
    parts = datatype.split("/")
    if len(parts) not in (2, 3) or not parts[0] or not parts[-1]:
        raise ValueError(f"message type must be pkg/msg/Name, got {datatype!r}")
    root = (parts[0], parts[-1])
    root_text = _msg_file(*root).read_text()
    out = [root_text.rstrip()]
    seen = {root}
    todo = _dependencies(root[0], root_text)
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        text = _msg_file(*dep).read_text()
        out.append(f"{_SEP}\nMSG: {dep[0]}/{dep[1]}\n{text.rstrip()}")
        todo.extend(_dependencies(dep[0], text))
    return "\n".join(out) + "\n"


class McapRecorder:
    """Writes serialised ROS 2 messages to one MCAP file. Thread-safe.

    Args:
        path: the file to create (parent directories are made).

    Raises:
        OSError: the file cannot be created.
    """

    def __init__(self, path: str | Path):
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.path, "wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="rt2_ros")
        self._lock = threading.Lock()
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self.count = 0
        self._closed = False

    def add_channel(self, topic: str, datatype: str) -> None:
        """Register ``topic`` carrying ``datatype`` (``pkg/msg/Name``).

        Raises:
            LookupError: the type's definition is not installed.
        """
        with self._lock:
            if topic in self._channels:
                return
            if datatype not in self._schemas:
                self._schemas[datatype] = self._writer.register_schema(
                    name=datatype, encoding="ros2msg", data=message_definition(datatype).encode()
                )
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="cdr", schema_id=self._schemas[datatype]
            )
            self._seq[topic] = 0

    def write(
        self, topic: str, data: bytes, log_time_ns: int | None = None, publish_time_ns: int | None = None
    ) -> None:
        """Append one CDR-serialised message on a registered topic (ignored after :meth:`close`).

        Raises:
            KeyError: the topic was never registered.
        """
        now = time.time_ns() if log_time_ns is None else int(log_time_ns)
        with self._lock:
            if self._closed:
                return
            ch = self._channels[topic]
            self._seq[topic] += 1
            self._writer.add_message(
                ch,
                log_time=now,
                data=bytes(data),
                publish_time=now if publish_time_ns is None else int(publish_time_ns),
                sequence=self._seq[topic],
            )
            self.count += 1

    def close(self) -> Path:
        """Finish the file (summary, index); idempotent. Returns its path."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.finish()
                self._file.close()
        return self.path

    def __enter__(self) -> "McapRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
