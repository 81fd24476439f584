"""The one exception hierarchy of maestro_core.

Every error raised by the library (Python or native code) is a
:class:`MaestroError`. Subclasses co-inherit a standard exception where the
meaning fits, so ``except ValueError`` or ``except OSError`` still work.

===================  ===============================  =========
class                meaning                          CLI exit
===================  ===============================  =========
InputError           bad argument or malformed input  2
GameError            a game (callable, command) fail. 2
GameTimeoutError     a game command timed out         2
ManifestError        malformed / non-canonical manif. 2
NotFoundError        no such card / entry             2
FileError            a file or folder cannot be read  2
FileChangedError     a file changed while hashing     2
VerificationError    a check failed (proof, sig ...)  1
StorageError         the store is unusable            2
ConflictError        another writer got there first   2
GenomeError          invalid prompt genome/template   2
DuelError            unknown arm/pair, bad algorithm  2
JudgeError           a judge failed or printed junk   2
JudgeTimeoutError    a judge ran out of time          2
PolicyError          a policy does not compile/eval   2
PolicySyntaxError    Rego syntax error (file:l:c)     2
PolicyTimeoutError   evaluation over its time limit   2
DecisionLogError     malformed decision log           2
GuardError           invalid guard (builder AST)      2
GuardSyntaxError     guard text error (line:col)      2
TraceFormatError     malformed OTLP (JSON path)       2
EventTimeError       bad timestamp / watermark        2
InternalError        a bug (a caught Rust panic)      3
===================  ===============================  =========

Messages name the place (file, line, field or index) and the reason.
"""

from __future__ import annotations

__all__ = [
    "MaestroError",
    "InputError",
    "GameError",
    "GameTimeoutError",
    "ManifestError",
    "NotFoundError",
    "FileError",
    "FileChangedError",
    "VerificationError",
    "StorageError",
    "InternalError",
    "ConflictError",
    "GenomeError",
    "DuelError",
    "JudgeError",
    "JudgeTimeoutError",
    "PolicyError",
    "PolicySyntaxError",
    "PolicyTimeoutError",
    "DecisionLogError",
    "GuardError",
    "GuardSyntaxError",
    "TraceFormatError",
    "EventTimeError",
    "exit_code",
]


class MaestroError(Exception):
    """Base of every maestro_core error."""


class InputError(MaestroError, ValueError):
    """An argument or an input document is malformed."""


class GameError(InputError):
    """A game failed: its callable raised, or returned something that is not a
    finite number per coalition, or its command failed or printed no number."""


class GameTimeoutError(GameError, TimeoutError):
    """A game's command did not finish within its timeout."""


class ManifestError(InputError):
    """A manifest is malformed, unsorted, duplicated or not canonical."""


class NotFoundError(InputError, LookupError):
    """A requested card, log entry or checkpoint does not exist."""


class FileError(MaestroError, OSError):
    """A file or folder cannot be read (missing, unreadable, symlink loop)."""


class FileChangedError(FileError):
    """A file changed while it was being hashed."""


class VerificationError(MaestroError):
    """A check failed: a digest, signature, proof or checkpoint does not verify."""


class StorageError(MaestroError):
    """The embedded store cannot be opened or is inconsistent."""


class ConflictError(StorageError):
    """Another writer changed the store first (e.g. a duel recorded by another process)."""


class GenomeError(InputError):
    """A prompt genome is invalid: an undeclared placeholder, a bad JSON Schema, a bad field."""


class DuelError(InputError):
    """A tournament input is invalid: an unknown arm or pair, a bad algorithm or parameter."""


class JudgeError(MaestroError):
    """A judge failed: its command exited non-zero, or it printed no valid verdict."""


class JudgeTimeoutError(JudgeError, TimeoutError):
    """A judge did not answer in time."""


class GuardError(InputError):
    """A guard is invalid (for example one built with the builder API)."""


class GuardSyntaxError(GuardError):
    """Guard source does not parse; the message starts ``origin:line:col:`` and shows a caret."""


class TraceFormatError(InputError):
    """A trace file (OTLP/JSON, protobuf or records) is malformed; the message names the JSON path."""


class EventTimeError(InputError):
    """A timestamp is out of range, a clock goes backwards, or a watermark regresses."""


class InternalError(MaestroError, RuntimeError):
    """A bug inside maestro_core (for example a Rust panic that was caught)."""


class PolicyError(InputError):
    """A Rego policy set does not compile or evaluate (missing import, undefined ref, bad data)."""


class PolicySyntaxError(PolicyError):
    """A Rego module does not parse; the message starts with ``file:line:col``."""


class PolicyTimeoutError(PolicyError, TimeoutError):
    """A Rego evaluation exceeded its time limit."""


class DecisionLogError(InputError):
    """A decision log (or labelled decision set) is malformed."""


def exit_code(exc: BaseException) -> int:
    """CLI exit code for an exception: 1 failed check, 2 bad input, 3 bug."""
    if isinstance(exc, VerificationError):
        return 1
    if isinstance(exc, InternalError):
        return 3
    return 2
