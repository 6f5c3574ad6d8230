"""The one escaping rule for text others wrote (a name, a message, a tag, a registry's error) before we print it.

Characters that change how a terminal shows text — C0 and C1 controls, the ESC of ANSI sequences, bidirectional
overrides and isolates such as U+202E, zero-width marks — are printed escaped (``\\x1b``, ``\\u202e``), never raw.
Pure; imports nothing of ours, so every layer escapes the same way.
"""

from __future__ import annotations

import re

#: Every control character but tab and newline (which lay text out), and the invisible marks that reorder or hide it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
#: The same, tab and newline included: for text that must stay on its line (a table cell, a quoted reason).
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(s: str, *, one_line: bool = False) -> str:
    """``s`` with every control character escaped (``\\x1b``, ``\\u202e``), so a name or message cannot move the
    cursor, colour the terminal or reverse the text around it. Tabs and newlines stay, unless ``one_line``."""
    pattern = _CONTROL_OR_BREAK if one_line else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", s)
