"""Ed25519 keys for manifests (DSSE) and log checkpoints (signed notes).

A key pair is written as three files: ``NAME.key`` (PKCS#8 PEM, mode 0600),
``NAME.pub`` (SPKI PEM) and ``NAME.vkey`` (C2SP signed-note verifier key
``name+keyid+base64``). The key name is the log origin of checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import _native
from .errors import FileError, InputError

__all__ = ["KeyPair", "PublicKey", "generate", "load_private", "load_public"]


@dataclass(frozen=True)
class PublicKey:
    """A public key; ``name`` is set when known (verifier keys, named PEMs)."""

    name: str | None
    pem: str
    key_id: str

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        name, pem, key_id = _native.parse_public_key(text)
        return cls(name, pem, key_id)


@dataclass(frozen=True)
class KeyPair:
    name: str
    private_pem: str
    public_pem: str
    vkey: str
    key_id: str

    @classmethod
    def from_private_pem(cls, pem: str) -> KeyPair:
        name, pub, vkey, key_id = _native.public_key_of(pem)
        return cls(name, pem, pub, vkey, key_id)

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.name, self.public_pem, self.key_id)

    def save(self, directory: str | os.PathLike[str], stem: str = "maestro") -> dict[str, Path]:
        """Write ``stem.key`` (0600), ``stem.pub`` and ``stem.vkey``; refuse to overwrite."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = {"key": d / f"{stem}.key", "pub": d / f"{stem}.pub", "vkey": d / f"{stem}.vkey"}
        for p in paths.values():
            if p.exists():
                raise InputError(f"{p}: already exists (refusing to overwrite a key)")
        fd = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.private_pem)
        paths["pub"].write_text(self.public_pem)
        paths["vkey"].write_text(self.vkey + "\n")
        return paths


def generate(name: str = "maestro.local/log") -> KeyPair:
    """A fresh Ed25519 key pair named ``name`` (no spaces, no ``+``)."""
    priv, _pub, _vkey = _native.generate_key(name)
    return KeyPair.from_private_pem(priv)


def _read(path: str | os.PathLike[str], what: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise FileError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FileError(f"{path}: cannot read {what} ({e})") from None


def load_private(path: str | os.PathLike[str]) -> KeyPair:
    """Load a private key file written by :meth:`KeyPair.save`."""
    text = _read(path, "private key")
    try:
        return KeyPair.from_private_pem(text)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


def load_public(path: str | os.PathLike[str]) -> PublicKey:
    """Load a public key: SPKI PEM or signed-note verifier key."""
    text = _read(path, "public key")
    try:
        return PublicKey.parse(text)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
