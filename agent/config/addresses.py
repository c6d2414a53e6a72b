"""Where a Modbus tag lives: protocol addresses, Modicon (datasheet) references, 1-based numbers.

What travels in a Modbus frame is a 0-based *protocol address* in one of four tables. Device
manuals, Kepware and many HMIs write a *Modicon reference* instead: a leading digit for the
table and a 1-based number, in a 5-digit form (4xxxx, up to 9999 registers) or a 6-digit one
(4xxxxx, up to 65536):

    0xxxx / 0xxxxx   coil               00001 = coil 0
    1xxxx / 1xxxxx   discrete input     10001 = discrete input 0
    3xxxx / 3xxxxx   input register     30001 = input register 0
    4xxxx / 4xxxxx   holding register   40001 = holding register 0, 400001 likewise

A tag map says which it uses with `address_style` at its top (ADDRESS_STYLES):

    "protocol"   (the default) 0-based protocol addresses, as they travel in the frame
    "modicon"    Modicon references; the leading digit sets the table (a `table` given too
                 must agree). TOML integers lose leading zeros, so a number below 10000 is a
                 5-digit coil reference (5 = 00005); a 6-digit coil reference past 09999 is
                 written as a string, e.g. address = "012000"
    "one-based"  1-based protocol numbers, in the tag's `table`: address - 1 goes on the wire

The rule that keeps a datasheet number from being read silently wrong: a tag map that does not
set `address_style` may not use an address that looks like a 5-digit Modicon reference
(10001..19999, 30001..49999) nor, of course, one past 65535; it is refused with the fix. A map
whose protocol addresses really are that high (a WAGO flag area at 12288, say) writes
`address_style = "protocol"` and is taken as written.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.reader import Section

ADDRESS_STYLES = ("protocol", "modicon", "one-based")
MODICON_TABLES = {"0": "coil", "1": "discrete", "3": "input", "4": "holding"}
TABLE_DIGITS = {table: digit for digit, table in MODICON_TABLES.items()}
TABLE_WORDS = {
    "coil": "coil",
    "discrete": "discrete input",
    "input": "input register",
    "holding": "holding register",
}
HIGHEST_ADDRESS = 0xFFFF
_LIMIT = {5: 9999, 6: 65536}  # the highest 1-based number of each form


@dataclass(frozen=True)
class Reference:
    """A Modicon reference resolved: its table and 0-based protocol address."""

    table: str
    address: int
    text: str  # as written, with the leading digit: "40001", "012000"

    def describe(self) -> str:
        """In words: `Modicon 40001 = holding register, protocol address 0`."""
        return f"Modicon {self.text} = {TABLE_WORDS[self.table]}, protocol address {self.address}"


def parse_modicon(written: int | str) -> Reference:
    """A 5- or 6-digit Modicon reference; ValueError says what is wrong with it.

    >>> parse_modicon(40001), parse_modicon("400010").address, parse_modicon(5).table
    (Reference(table='holding', address=0, text='40001'), 9, 'coil')
    """
    if isinstance(written, bool) or not isinstance(written, int | str):
        raise ValueError(f"{written!r} is not a Modicon reference (a number such as 40001)")
    text = written.strip() if isinstance(written, str) else str(written)
    if isinstance(written, int) and 0 < written < 10000:
        text = text.zfill(5)  # TOML drops the leading zeros of a coil reference
    if not text.isdigit() or len(text) not in _LIMIT:
        raise ValueError(
            f"{written!r} is not a Modicon reference: write 5 digits (40001) or 6 (400001)"
        )
    table = MODICON_TABLES.get(text[0])
    if table is None:
        raise ValueError(
            f"{text} starts with {text[0]}, which names no Modicon table "
            "(0 coil, 1 discrete input, 3 input register, 4 holding register)"
        )
    number = int(text[1:])
    if not 1 <= number <= _LIMIT[len(text)]:
        raise ValueError(
            f"{text}: a {len(text)}-digit reference counts {TABLE_WORDS[table]}s from "
            f"{text[0]}{'1'.zfill(len(text) - 1)} to {text[0]}{_LIMIT[len(text)]:0{len(text) - 1}}"
        )
    return Reference(table=table, address=number - 1, text=text)


def looks_like_modicon(address: int) -> bool:
    """True for a number a datasheet would write for a discrete input, input or holding
    register (10001..19999, 30001..49999, or a 6-digit 1xxxxx/3xxxxx/4xxxxx)."""
    try:
        return parse_modicon(address).table != "coil"
    except ValueError:
        return False


def modicon_text(table: str, address: int) -> str:
    """The Modicon reference of a protocol address: 5 digits where they suffice, else 6."""
    number = address + 1
    width = 4 if number <= _LIMIT[5] else 5
    return f"{TABLE_DIGITS[table]}{number:0{width}d}"


def _modicon_location(t: Section, table: str | None) -> tuple[str, int]:
    raw = t.raw.get("address")
    if raw is None:
        raise t.error("address", "is required", "e.g. address = 40001 (holding register 0)")
    try:
        ref = parse_modicon(raw)
    except ValueError as exc:
        raise t.error(
            "address",
            str(exc),
            'the tag map says address_style = "modicon": write the datasheet reference',
        ) from None
    if table is not None and table != ref.table:
        raise t.error(
            "table",
            f'"{table}" disagrees with address {ref.text}, a {TABLE_WORDS[ref.table]} reference',
            "remove table (the leading digit sets it) or correct the address",
        )
    return ref.table, ref.address


def _refuse_modicon_looking(t: Section, address: int) -> None:
    if not looks_like_modicon(address):
        return
    ref = parse_modicon(address)
    raise t.error(
        "address",
        f"{address} looks like a Modicon (datasheet) reference, not a protocol address",
        f'set address_style = "modicon" at the top of the tag map, or write address = '
        f'{ref.address} (table = "{ref.table}"); if {address} really is the protocol address, '
        'set address_style = "protocol"',
    )


def tag_location(
    t: Section, tables: tuple[str, ...], style: str, explicit: bool
) -> tuple[str, int]:
    """A tag's table and 0-based protocol address, read in the tag map's `address_style`.

    `explicit`: the map set its style itself; only then is a Modicon-looking protocol
    address taken as written."""
    table = t.choice("table", tables) if t.has("table") else None
    if style == "modicon":
        return _modicon_location(t, table)
    table = table or "holding"
    if style == "one-based":
        return table, t.within("address", 1, HIGHEST_ADDRESS + 1) - 1
    address = t.get("address", int)
    if not explicit:
        _refuse_modicon_looking(t, address)
    if not 0 <= address <= HIGHEST_ADDRESS:
        raise t.error(
            "address",
            f"{address} is outside 0..{HIGHEST_ADDRESS}",
            "write the 0-based protocol address (register 40001 of a manual is address 0)",
        )
    return table, address


def address_style(root: Section) -> tuple[str, bool]:
    """The tag map's `address_style`, and whether the map set it itself."""
    return root.choice("address_style", ADDRESS_STYLES, "protocol"), root.has("address_style")
