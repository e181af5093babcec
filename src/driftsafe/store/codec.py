"""How a state version's bytes are stored: zstd, against a keyframe of its workspace.

A version is stored one of three ways (its ``codec`` column):

- ``raw``: AES-GCM of the plaintext (AAD: the workspace). Rows written before schema 6
  until they are re-encoded (store/recode.py); always readable.
- ``keyframe``: the version's content is the keyframe ``base_serial`` itself (a row of
  ``ds_keyframes``: AES-GCM of the plaintext compressed alone). The version row's body
  is empty. One decompression to read.
- ``delta``: AES-GCM of the plaintext compressed by zstd with the keyframe's plaintext
  as a raw-content dictionary. Two decompressions to read (the keyframe, then the
  delta), never a chain: every delta names a keyframe, never another delta.

The plaintext is any bytes (a tfstate JSON, or an OpenTofu encrypted envelope); zstd
does not care what it compresses. This module holds no database code.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import zstandard

from driftsafe.errors import StoreError

RAW = "raw"
KEYFRAME = "keyframe"
DELTA = "delta"
CODECS = (RAW, KEYFRAME, DELTA)

# A keyframe is compressed alone; level 3 is zstd's default: 2 MiB of state JSON in
# ~2 ms, ~14x smaller. A delta uses level 5: the first level whose search (greedy,
# with a hash chain) finds matches spread over a dictionary of megabytes. Measured on
# a 2.3 MiB state with one resource changed: level 3 (dfast) gave a 116 KB "delta",
# level 5 350 bytes in 0.5 ms with a precomputed dictionary.
KEYFRAME_LEVEL = 3
DELTA_LEVEL = 5

# States above this are always stored as their own keyframe, never as a delta: a delta
# needs its keyframe's plaintext beside its own while it is written or read (2x the
# state in memory), a keyframe only itself. Big states are rare and compress well alone.
DELTA_MAX_BYTES = 16 * 1024 * 1024

# A new keyframe starts when the deltas stored against the current one (this one
# included) would exceed KEYFRAME_FACTOR times the keyframe's stored size. When each
# write adds a little more difference from the keyframe, the deltas grow linearly, and
# this rule (the ski-rental rule: stop paying for deltas once they cost what a new
# keyframe costs) gives close to the interval that minimizes the bytes stored per
# version. bench/storage.py --sweep measures factors 0.25..4; see docs/storage.md.
KEYFRAME_FACTOR = 1.0

# Decompression accepts windows up to this (the delta window covers keyframe + state).
MAX_WINDOW_LOG = 27

# Keyframe plaintexts kept in memory (LRU, by bytes), so a write does not decrypt and
# decompress its keyframe again, nor digest it again as a zstd dictionary.
CACHE_BYTES = 64 * 1024 * 1024


def keyframe_aad(workspace: str) -> str:
    return f"{workspace}\x00keyframe"


def delta_aad(workspace: str) -> str:
    return f"{workspace}\x00delta"


def needs_new_keyframe(stored_size: int, delta_bytes: int, delta_len: int) -> bool:
    """The keyframe policy (see KEYFRAME_FACTOR)."""
    return delta_bytes + delta_len > KEYFRAME_FACTOR * stored_size


def compress_alone(plaintext: bytes | bytearray | memoryview) -> bytes:
    return zstandard.ZstdCompressor(level=KEYFRAME_LEVEL).compress(plaintext)


def _decompressor(dictionary: zstandard.ZstdCompressionDict | None) -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(dict_data=dictionary, max_window_size=1 << MAX_WINDOW_LOG)


def decompress(data: bytes, size: int, what: str) -> bytes:
    """The plaintext of a keyframe (``size`` bytes, as recorded)."""
    try:
        return _decompressor(None).decompress(data, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise StoreError(f"{what}: stored data does not decompress ({exc})") from None


class Keyframe:
    """A keyframe's plaintext, as a zstd raw-content dictionary. Immutable once built;
    the compression digest is computed once, on first use, and shared by threads."""

    def __init__(
        self, workspace: str, serial: int, sha256: str, plaintext: bytes | bytearray
    ) -> None:
        self.workspace = workspace
        self.serial = serial
        self.sha256 = sha256
        self.dictionary = zstandard.ZstdCompressionDict(
            plaintext, dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
        self._params: zstandard.ZstdCompressionParameters | None = None
        self._lock = threading.Lock()

    @property
    def plaintext(self) -> bytes:
        data: bytes = self.dictionary.as_bytes()
        return data

    def __len__(self) -> int:
        return len(self.dictionary)

    def _compression_params(self) -> zstandard.ZstdCompressionParameters:
        with self._lock:
            if self._params is None:
                # The window must reach from the end of the state back to the start of
                # the dictionary: a match sits about one dictionary length back.
                window = min(MAX_WINDOW_LOG, max(20, (2 * len(self) + 65536).bit_length()))
                params = zstandard.ZstdCompressionParameters.from_level(
                    DELTA_LEVEL, window_log=window
                )
                self.dictionary.precompute_compress(compression_params=params)
                self._params = params
            return self._params

    def compress(self, plaintext: bytes | bytearray | memoryview) -> bytes:
        params = self._compression_params()
        return zstandard.ZstdCompressor(
            dict_data=self.dictionary, compression_params=params
        ).compress(plaintext)

    def decompress(self, data: bytes, size: int, what: str) -> bytes:
        try:
            return _decompressor(self.dictionary).decompress(data, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise StoreError(f"{what}: stored delta does not decompress ({exc})") from None


class KeyframeCache:
    """The most recently used keyframes, up to ``limit`` bytes of plaintext. Entries
    are keyed by workspace, serial and sha256, so a stale entry is never used."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[str, int], Keyframe] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, workspace: str, serial: int, sha256: str) -> Keyframe | None:
        with self._lock:
            found = self._entries.get((workspace, serial))
            if found is None or found.sha256 != sha256:
                return None
            self._entries.move_to_end((workspace, serial))
            return found

    def put(self, keyframe: Keyframe) -> None:
        if len(keyframe) > min(DELTA_MAX_BYTES, self.limit):
            return  # a big state is never a dictionary: do not keep it in memory
        key = (keyframe.workspace, keyframe.serial)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = keyframe
            self._bytes += len(keyframe)
            while self._bytes > self.limit:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
