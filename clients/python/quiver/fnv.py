"""FNV-1a, exactly as `quiver load` computes it, at numpy speed.

A load's identity is FNV-1a 128 over every row's encoding, tens of bytes a row. Byte by byte in
Python that runs at about 3 MB a second, so a million-row load would wait half a minute before
sending anything. FNV-1a is sequential, but only through the hash's low byte `r`:

    h' = (h ^ b) * P = (h + d) * P        with d = (r ^ b) - r, since b only touches the low byte
    r' = ((r ^ b) * 0x3B) & 0xFF          0x3B being P's low byte

Bit k of `r'` is bit k of `r`, XOR bit k of `b`, XOR bit k of `(low k bits of r ^ b) * 0x3B`
(0x3B is odd, so the rest of the product cannot reach bit k). Once the low k bits of every `r`
are known, bit k of every `r` is therefore a running XOR: eight vectorized passes give every
`r`, hence every `d`. Unrolling `h' = (h + d) * P` over a block of n bytes then gives

    h_n = h_0 * P^n + sum(d_i * P^(n - i))   (mod 2^128)

a dot product of the small `d` (|d| < 256) with the powers of P, taken in 32-bit limbs so that
every partial sum fits in an int64. `tests/test_load.py` checks it against the plain loop.

FNV-1a 64 (how a load splits rows over its producers) hashes each row separately, so it is
vectorized across rows instead.
"""

from __future__ import annotations

import threading
from typing import Optional, Sequence, Tuple

import numpy as np

OFFSET_128 = 0x6C62272E07BB014262B821756295C58D
PRIME_128 = 0x0000000001000000000000000000013B
OFFSET_64 = 0xCBF29CE484222325
PRIME_64 = 0x100000001B3
MASK_128 = (1 << 128) - 1

# Bytes hashed per vectorized step; the partial sums stay below 2^56.
BLOCK = 1 << 16

_powers: Optional[np.ndarray] = None
_powers_lock = threading.Lock()


def _powers_of_prime() -> np.ndarray:
    """P^m mod 2^128 for m = 0..BLOCK, as four 32-bit limbs (little end first) in int64s."""
    global _powers
    with _powers_lock:
        if _powers is None:
            power, out = 1, bytearray()
            for _ in range(BLOCK + 1):
                out += power.to_bytes(16, "little")
                power = (power * PRIME_128) & MASK_128
            limbs = np.frombuffer(bytes(out), "<u4").reshape(BLOCK + 1, 4)
            _powers = np.ascontiguousarray(limbs.T.astype(np.int64))  # (4, BLOCK + 1)
        return _powers


def _low_bytes(first: int, data: np.ndarray) -> np.ndarray:
    """The hash's low byte before each byte of `data`, `first` being the one before data[0]."""
    n = len(data)
    low = np.zeros(n, np.uint8)
    bit = np.empty(n, np.uint8)
    for k in range(8):
        # Bit k of the next low byte flips bit k of this one by bit k of `b ^ (x * 0x3B)`, x
        # being the low k bits of `low ^ b` (known); uint8 products wrap above bit 7 only.
        known = (low ^ data) & np.uint8((1 << k) - 1)
        flips = ((known * np.uint8(0x3B)) ^ data) & np.uint8(1 << k)
        bit[0] = first & (1 << k)
        if n > 1:
            np.bitwise_xor.accumulate(flips[:-1], out=bit[1:])
            if bit[0]:
                bit[1:] ^= bit[0]
        low |= bit
    return low


class Fnv1a128:
    """FNV-1a 128 over bytes fed in pieces: `update(data)`, then `value`."""

    def __init__(self) -> None:
        self.value = OFFSET_128

    def update(self, data: bytes) -> None:
        """Hashes `data` after what was hashed before."""
        array = np.frombuffer(data, np.uint8)
        for start in range(0, len(array), BLOCK):
            self._block(array[start : start + BLOCK])

    def update_field(self, data: bytes) -> None:
        """Hashes `data`'s length (a little-endian u64), then `data`, as `quiver load` feeds each
        field, so that fields cannot run into each other."""
        self.update(len(data).to_bytes(8, "little") + data)

    def _block(self, data: np.ndarray) -> None:
        n = len(data)
        low = _low_bytes(self.value & 0xFF, data)
        step = (low ^ data).astype(np.int64) - low.astype(np.int64)
        powers = _powers_of_prime()[:, n:0:-1]  # P^n, ..., P^1: the power each byte's d gets
        total = 0
        for limb in range(4):
            total += int(np.dot(step, powers[limb])) << (32 * limb)
        self.value = (self.value * pow(PRIME_128, n, 1 << 128) + total) & MASK_128


def fnv1a_128_reference(data: bytes, value: int = OFFSET_128) -> int:
    """FNV-1a 128, a byte at a time (the definition; for tests)."""
    for byte in data:
        value = ((value ^ byte) * PRIME_128) & MASK_128
    return value


def fnv1a_64_rows(parts: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]], rows: int) -> np.ndarray:
    """FNV-1a 64 of each of `rows` rows' bytes, a row's bytes being its part of each
    `(buffer, start per row, length per row)` in turn, as one stream per row."""
    value = np.full(rows, OFFSET_64, np.uint64)
    prime = np.uint64(PRIME_64)
    for data, starts, lengths in parts:
        longest = int(lengths.max()) if rows else 0
        shortest = int(lengths.min()) if rows else 0
        for at in range(longest):
            if at < shortest:
                value = (value ^ data[starts + at]) * prime
            else:
                live = np.flatnonzero(lengths > at)
                value[live] = (value[live] ^ data[starts[live] + at]) * prime
    return value
