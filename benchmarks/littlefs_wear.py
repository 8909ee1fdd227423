"""Flash erases of the terminal's files, counted with LittleFS's rules (docs/performance.md).

WearStorage is the simulated flash of caisse_terminal.sim that also counts what LittleFS (the
ESP32's filesystem, 4 KiB blocks) would erase for each write, following its design
(littlefs DESIGN.md, "CTZ skip-lists", and lfs_ctz_extend in lfs.c):
- a file's data blocks are copy-on-write: writing n bytes into a file opened once erases one
  block per 4 KiB block it fills;
- appending to a closed file whose last block is partly written first copies that block to a
  fresh one: one erase more per append (the log's frames, the old card table's 512-byte appends);
- every close, rename and remove commits to the directory's metadata pair, a 4 KiB log of
  ~100-byte commits that is erased when compacted: COMMITS_PER_ERASE commits per erase.
Files small enough to be inlined in the metadata are counted as if they took blocks (an upper
bound).

Usable with any firmware tree on sys.path that has caisse_terminal.sim (this one, or an older
release for comparison).
"""

from __future__ import annotations

from collections import Counter

from caisse_terminal import sim

BLOCK = 4096
COMMITS_PER_ERASE = 32


def blocks_to_append(size: int, n: int) -> int:
    """Erases of writing n bytes after `size` bytes: new blocks, and the partial last one copied."""
    if n <= 0:
        return 0
    return -(-(size + n) // BLOCK) - size // BLOCK


class _Session:
    def __init__(self, storage: WearStorage, name: str) -> None:
        self._storage = storage
        self._name = name
        self._written = 0
        storage._commit(name)  # created
        storage.files[name] = bytearray()

    def write(self, data) -> None:
        # the file stays open: its last block is still being filled, only new blocks are erased
        self._storage.erase(self._name, -(-(self._written + len(data)) // BLOCK) - -(-self._written // BLOCK))
        self._storage.files[self._name].extend(bytes(data))
        self._storage.bytes_written += len(data)
        self._written += len(data)

    def close(self) -> None:
        self._storage._commit(self._name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WearStorage(sim.MemoryStorage):
    def __init__(self, files=None) -> None:
        super().__init__(files)
        self.erases: Counter[str] = Counter()  # by kind of file: cards, log, config...
        self.commits: Counter[str] = Counter()

    @staticmethod
    def kind(name: str) -> str:
        if name.startswith("cards"):
            return "card table"
        if name.startswith("log"):
            return "log"
        return "config"

    def erase(self, name: str, blocks: int) -> None:
        self.erases[self.kind(name)] += blocks

    def _commit(self, name: str) -> None:
        self.commits[self.kind(name)] += 1

    def total(self, kind: str | None = None) -> float:
        kinds = [kind] if kind else set(self.erases) | set(self.commits)
        return sum(self.erases[k] + self.commits[k] / COMMITS_PER_ERASE for k in kinds)

    def reset(self) -> None:
        self.erases.clear()
        self.commits.clear()

    def append(self, name: str, data) -> None:
        self.erase(name, blocks_to_append(max(0, self.size(name)), len(data)))
        self._commit(name)
        super().append(name, data)

    def writer(self, name: str):
        return _Session(self, name)

    def replace(self, name: str, data) -> None:
        self.erase(name, blocks_to_append(0, len(data)))
        self._commit(name)  # the temporary file
        self._commit(name)  # the rename
        super().replace(name, data)

    def remove(self, name: str) -> None:
        if name in self.files:
            self._commit(name)
        super().remove(name)

    def rename(self, old: str, new: str) -> None:
        self._commit(new)
        super().rename(old, new)
