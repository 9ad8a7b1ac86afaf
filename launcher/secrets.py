"""Values taken from the launcher's environment with ``${envvar:NAME}`` are secrets: they
reach the trial's container but never a file the launcher writes. A :class:`Masker`
replaces them with ``***`` in logs, history, metrics, reasons, notes and output files
(as they are, and as JSON writes them).

Values shorter than MIN_LENGTH are not masked (masking ``1`` would rewrite every
number): the launcher says so when the run starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

MASK = "***"
MIN_LENGTH = 4


class Masker:
    """Replaces every secret value with ``***``; with no secrets it changes nothing."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_LENGTH:
                forms.add(secret)
                forms.add(json.dumps(secret)[1:-1])  # as JSON writes it (escapes, \\uXXXX)
                forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        self.forms = sorted(forms, key=len, reverse=True)  # longest first
        self._text = re.compile("|".join(map(re.escape, self.forms))) if forms else None
        raw = sorted({f.encode("utf-8") for f in forms}, key=len, reverse=True)
        self._bytes = re.compile(b"|".join(map(re.escape, raw))) if raw else None
        self.overlap = max((len(b) for b in raw), default=1) - 1

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, text: str) -> str:
        return self._text.sub(MASK, text) if self._text else text

    def data(self, raw: bytes) -> bytes:
        return self._bytes.sub(MASK.encode(), raw) if self._bytes else raw

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string (and key) masked."""
        if not self:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def stream(self, source: IO[bytes], chunk: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of ``source`` masked, in chunks; a secret split across two reads is
        still found (the last ``overlap`` bytes wait for the next read)."""
        pending = b""
        while block := source.read(chunk):
            data = pending + block
            if self._bytes is None:
                yield data
                continue
            head, pending = _split_on_match(self._bytes, data, len(data) - self.overlap)
            yield head
        if pending:
            yield self.data(pending)


def _split_on_match(pattern: re.Pattern[bytes], data: bytes, cut: int) -> tuple[bytes, bytes]:
    """Mask ``data`` up to ``cut`` (moved back before a secret that straddles it); return
    the masked head and the rest, unmasked, for the next round."""
    out, last = bytearray(), 0
    cut = max(0, cut)
    for match in pattern.finditer(data):
        if match.end() > cut:
            cut = min(cut, match.start())
            break
        out += data[last:match.start()] + MASK.encode()
        last = match.end()
    out += data[last:cut]
    return bytes(out), data[cut:]
