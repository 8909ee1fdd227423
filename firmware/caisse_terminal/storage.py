"""hal.Storage on a real filesystem: LittleFS on the device, a folder under CPython."""

import os

from .hal import Reader, Storage, Writer


class _FileReader(Reader):
    """One open file for a run of reads: the card table's binary search is on the tap path."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")

    def readinto(self, offset: int, buf) -> int:
        self._file.seek(offset)
        return self._file.readinto(buf) or 0

    def close(self) -> None:
        self._file.close()


class _FileWriter(Writer):
    """One open file for the whole write."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "wb")

    def write(self, data) -> None:
        self._file.write(data)

    def close(self) -> None:
        self._file.close()


class FileStorage(Storage):
    def __init__(self, root: str) -> None:
        self._root = root.rstrip("/")
        try:
            os.mkdir(self._root)
        except OSError:
            pass  # exists

    def _path(self, name: str) -> str:
        return self._root + "/" + name

    def names(self) -> "list[str]":
        return [n for n in os.listdir(self._root) if not n.endswith(".tmp")]

    def size(self, name: str) -> int:
        try:
            return os.stat(self._path(name))[6]
        except OSError:
            return -1

    def readinto(self, name: str, offset: int, buf) -> int:
        with open(self._path(name), "rb") as f:
            f.seek(offset)
            return f.readinto(buf) or 0

    def reader(self, name: str) -> Reader:
        return _FileReader(self._path(name))

    def writer(self, name: str) -> Writer:
        return _FileWriter(self._path(name))

    def read(self, name: str) -> "bytes | None":
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def append(self, name: str, data) -> None:
        with open(self._path(name), "ab") as f:
            f.write(data)

    def replace(self, name: str, data) -> None:
        tmp = self._path(name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, self._path(name))  # atomic on LittleFS and POSIX

    def rename(self, old: str, new: str) -> None:
        os.rename(self._path(old), self._path(new))

    def remove(self, name: str) -> None:
        try:
            os.remove(self._path(name))
        except OSError:
            pass

    def sync(self) -> None:
        sync = getattr(os, "sync", None)  # the WebAssembly port has none
        if sync is not None:
            sync()
