"""What a store was created as (keyed chain, encryption), and the checks that keep it so.

A store records its mode once, when it is created, in the append-only `mar_meta` table:
which chain scheme its links use, whether its events are encrypted, and a check value for
each key (an HMAC of a fixed message, a ciphertext of a fixed plaintext). With the mode on
record, a wrong or missing key is a clear error before anything is read or written, and
`mar verify` refuses to pass a keyed store without its key. See docs/audit.md.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator

from .errors import StoreError, WriteRefused

if TYPE_CHECKING:
    from .store import EventStore

PLAIN = "sha256"
KEYED = "hmac-sha256"
CIPHER = "aes-gcm"
NO_CIPHER = "none"

HMAC_CHECK_MESSAGE = b"mar: chain key check"
CIPHER_CHECK_PLAINTEXT = b"mar: cipher key check"

# Keys are base64 of 32 random bytes (AES-256); the same form serves as an HMAC key.
KEY_BYTES = 32

# Written once when the store is created; append-only like the event tables.
META_TABLE = """
CREATE TABLE IF NOT EXISTS mar_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class StoreMode:
    """The mode recorded when the store was created; all None for a store without a record."""

    chain: str | None = None
    hmac_check: str | None = None
    cipher: str | None = None
    cipher_check: str | None = None
    created_at: str | None = None

    @property
    def recorded(self) -> bool:
        return self.chain is not None

    @classmethod
    def from_rows(cls, rows: dict[str, str]) -> "StoreMode":
        return cls(**{k: rows.get(k) for k in ("chain", "hmac_check", "cipher", "cipher_check", "created_at")})


def hmac_check(key: bytes) -> str:
    return hmac.digest(key, HMAC_CHECK_MESSAGE, hashlib.sha256).hex()


def mode_rows(key: bytes | None, cipher) -> dict[str, str]:
    """The mode rows a new store records for the keys it is opened with."""
    rows = {
        "chain": KEYED if key else PLAIN,
        "cipher": CIPHER if cipher else NO_CIPHER,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    if key:
        rows["hmac_check"] = hmac_check(key)
    if cipher:
        rows["cipher_check"] = base64.b64encode(cipher.encrypt(CIPHER_CHECK_PLAINTEXT)).decode()
    return rows


def open_mode(store: "EventStore") -> StoreMode:
    """Record the mode of a new store (writable opens only), read it, check the cipher key."""
    recorder = store.recorder
    if not hasattr(recorder, "select_meta"):
        return StoreMode()  # a backend without mar_meta: nothing recorded, nothing checked
    rows = recorder.select_meta()
    if not rows and not store.read_only:  # a new store (or one made before mar_meta existed)
        recorder.insert_meta_once(mode_rows(recorder.chain_key, store.mapper.cipher))
        rows = recorder.select_meta()
    mode = StoreMode.from_rows(rows)
    check_cipher(mode, store.mapper.cipher)
    return mode


def check_cipher(mode: StoreMode, cipher) -> None:
    """A key given for a store that is not encrypted, or not this store's key, stops here."""
    if cipher is None or not mode.recorded:
        return
    if mode.cipher == NO_CIPHER:
        raise StoreError("this store is not encrypted, but MAR_CIPHER_KEY is set: "
                         "unset it to use this store")
    if mode.cipher_check:
        try:
            plain = cipher.decrypt(base64.b64decode(mode.cipher_check))
        except (ValueError, binascii.Error):
            plain = None
        if plain != CIPHER_CHECK_PLAINTEXT:
            raise StoreError("MAR_CIPHER_KEY is not this store's key: its events cannot be decrypted")


def check_writable(mode: StoreMode, key: bytes | None, cipher) -> None:
    """Refuse a write that would mix chain schemes or put clear text into an encrypted store."""
    if not mode.recorded:
        return
    if mode.chain == KEYED and not key:
        raise WriteRefused("this store was created in keyed mode: set MAR_HMAC_KEY to write; "
                           "nothing was written")
    if mode.chain == PLAIN and key:
        raise WriteRefused("this store was created without a chain key: unset MAR_HMAC_KEY to write; "
                           "nothing was written")
    if key and mode.hmac_check and not hmac.compare_digest(mode.hmac_check, hmac_check(key)):
        raise WriteRefused("MAR_HMAC_KEY is not this store's key; nothing was written")
    if mode.cipher == CIPHER and cipher is None:
        raise WriteRefused("this store is encrypted: set MAR_CIPHER_KEY to write; nothing was written")


def cipher_key_error(exc: Exception) -> StoreError:
    return StoreError(f"MAR_CIPHER_KEY is not a usable key ({exc}); make one with `mar keygen`")


def unreadable(cipher, exc: Exception) -> StoreError:
    """The error for a stored event that cannot be decoded: name the likely key problem."""
    if cipher is None:
        return StoreError("a stored event is not readable JSON: the store is probably encrypted "
                          "(set MAR_CIPHER_KEY)")
    return StoreError(f"a stored event cannot be decrypted with MAR_CIPHER_KEY ({exc}): "
                      "wrong key, or the row was damaged (run `mar verify`)")


def new_key() -> str:
    """A fresh key for MAR_CIPHER_KEY or MAR_HMAC_KEY, from the library's cipher."""
    try:
        from eventsourcing.cipher import AESCipher
    except ImportError as exc:
        raise StoreError(f"encryption needs the crypto extra: pip install 'mar[crypto]' ({exc})") from None
    return AESCipher.create_key(KEY_BYTES)


@contextmanager
def private_files() -> Iterator[None]:
    """Files created inside (the store, its -wal and -shm) are readable by the owner only.

    SQLite gives -wal and -shm the mode of the database file; the umask covers whatever
    else is created while the store is opened.
    """
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)

