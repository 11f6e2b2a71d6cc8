"""The wire between the judge and the contestant: length-framed messages of plain data, with bounds.

A message is a JSON array (4-byte big-endian length, then UTF-8 JSON). Values travel as plain data: None, bool,
int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset (JSON objects carry the kinds JSON
lacks), a few standard-library value types rebuilt from their parts by the receiver's own classes (Decimal,
Fraction, the datetime types, deque, Counter, OrderedDict, defaultdict of a builtin, range), and references:

- `{"h": id, ...}` an object of the contestant's (the judge sees a handle; sent back, it is the object again);
- `{"j": id, ...}` an object of the judge's (the contestant sees a proxy; sent back, it is the object again);
- `{"v": base, "x": contents, ...}` an instance of a subclass of a builtin (a namedtuple, an IntEnum member): the
  receiver rebuilds the builtin contents into its own subclass, so comparisons are the builtin's;
- `{"e": ...}` an exception class, `{"bx": name}` a builtin one, `{"mod": name}` a standard-library module.

Receiving never runs code from the sender: the decoder only builds builtin values and the receiver's own classes,
and refuses (ProtocolError) anything malformed, deeper than the decoder allows, or larger than MAX_MESSAGE.
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import fractions
import json
import os
import struct
from collections.abc import Callable
from typing import Any

MAX_MESSAGE = 64 << 20  # bytes per message
MAX_DEPTH = 100  # nesting of plain data a sender encodes by value (deeper values travel as references)
MAX_INT_HEX = 1 << 20  # hex digits of one int (about 4 million bits)
_BIG = 1 << 62  # ints beyond this travel as hex (JSON readers differ on big numbers; Python caps str digits)
_HEADER = struct.Struct(">I")
# Bound at import: in the contestant, code that patches os.write for itself must not silence the channel.
_write, _read, _dumps, _loads = os.write, os.read, json.dumps, json.loads


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message of this protocol."""


class TooLarge(ValueError):
    """A message over MAX_MESSAGE: the sender's value cannot be carried."""


class PeerGone(Exception):
    """The other side closed its end of the channel (it exited or died)."""


class Channel:
    """One end: reads framed messages from `in_fd`, writes them to `out_fd` (blocking, in one thread)."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd, self.out_fd = in_fd, out_fd
        self._buffer = bytearray()

    def send(self, message: list) -> None:
        data = _dumps(message, separators=(",", ":")).encode()
        if len(data) > MAX_MESSAGE:
            raise TooLarge(f"a message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[_write(self.out_fd, view) :]

    def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = _read(self.in_fd, max(size - len(self._buffer), 1 << 16))
            if not chunk:
                raise PeerGone("the other side closed the channel")
            self._buffer += chunk

    def receive(self, hook: Callable[[dict], Any]) -> list:
        """The next message, with each JSON object passed through `hook` (which turns tags into values)."""
        self._fill(_HEADER.size)
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > MAX_MESSAGE:
            raise ProtocolError(f"a message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
        self._fill(_HEADER.size + size)
        data = bytes(self._buffer[_HEADER.size : _HEADER.size + size])
        del self._buffer[: _HEADER.size + size]
        try:
            message = _loads(data, object_hook=hook)
        except ProtocolError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError) as exc:
            raise ProtocolError(f"malformed message: {type(exc).__name__}: {exc}") from None
        if not isinstance(message, list) or not message or not isinstance(message[0], str):
            raise ProtocolError("a message must be a list starting with its kind")
        return message


# ------------------------------------------------------------------------------------------- encoding

# Builtin bases a subclass instance can be carried as (its contents rebuilt into the receiver's own subclass).
VIEW_BASES = {"int": int, "float": float, "str": str, "bytes": bytes, "tuple": tuple, "list": list,
              "dict": dict, "set": set, "frozenset": frozenset, "complex": complex}  # fmt: skip
_FACTORIES = {"list": list, "dict": dict, "set": set, "int": int, "str": str, "float": float, "tuple": tuple}


def encode(value: Any, other: Callable[[Any, int], Any], depth: int = 0) -> Any:
    """`value` as JSON-ready data; `other(value, depth)` describes anything that is not plain data."""
    t = type(value)
    if t is str or t is bool or value is None or t is float:
        return value
    if t is int:
        return value if -_BIG < value < _BIG else {"i": format(value, "x")}
    if depth >= MAX_DEPTH:
        return other(value, depth)
    depth += 1
    if t is list:
        return [encode(v, other, depth) for v in value]
    if t is tuple:
        return {"t": [encode(v, other, depth) for v in value]}
    if t is dict:
        flat = []
        for k, v in value.items():
            flat.append(encode(k, other, depth))
            flat.append(encode(v, other, depth))
        return {"d": flat}
    if t is set or t is frozenset:
        return {"s" if t is set else "f": [encode(v, other, depth) for v in value]}
    if t is bytes or t is bytearray:
        return {"b" if t is bytes else "y": base64.b64encode(value).decode()}
    if t is complex:
        return {"c": [value.real, value.imag]}
    std = _encode_std(value, t, other, depth)
    return std if std is not None else other(value, depth)


def _encode_std(value: Any, t: type, other: Callable, depth: int) -> dict | None:
    if t is decimal.Decimal:
        return {"std": "Decimal", "x": str(value)}
    if t is fractions.Fraction:
        return {"std": "Fraction", "x": [encode(value.numerator, other), encode(value.denominator, other)]}
    if t is datetime.datetime or t is datetime.date or t is datetime.time:
        if getattr(value, "tzinfo", None) is not None and value.tzinfo is not datetime.timezone.utc:
            return None
        return {"std": t.__name__, "x": value.isoformat(), "utc": getattr(value, "tzinfo", None) is not None}
    if t is datetime.timedelta:
        return {"std": "timedelta", "x": [value.days, value.seconds, value.microseconds]}
    if t is range:
        return {
            "std": "range",
            "x": [encode(value.start, other), encode(value.stop, other), encode(value.step, other)],
        }
    if t is collections.deque:
        return {"std": "deque", "x": [encode(v, other, depth) for v in value], "n": value.maxlen}
    if t is collections.Counter or t is collections.OrderedDict:
        return {"std": t.__name__, "x": encode(dict(value), other, depth - 1)}
    if t is collections.defaultdict:
        name = next((n for n, f in _FACTORIES.items() if value.default_factory is f), None)
        if value.default_factory is not None and name is None:
            return None
        return {"std": "defaultdict", "x": encode(dict(value), other, depth - 1), "f": name}
    return None


def view_contents(value: Any) -> tuple[str, Any] | None:
    """(base name, plain contents) of an instance of a subclass of a builtin, read with the builtin's methods."""
    for name, base in VIEW_BASES.items():
        if isinstance(value, base):
            if base is int:
                return name, int.__index__(value)
            if base is float:
                return name, float.__float__(value)
            if base is complex:
                return name, complex(float(value.real), float(value.imag))
            if base is str:
                return name, str.__str__(value)
            if base is bytes:
                return name, bytes(memoryview(value))
            if base is dict:
                return name, dict(dict.items(value))
            return name, base.__new__(base, base.__iter__(value)) if base in (tuple, frozenset) else base(
                base.__iter__(value)
            )
    return None


# ------------------------------------------------------------------------------------------- decoding


def _check_int_hex(text: Any) -> int:
    if not isinstance(text, str) or len(text) > MAX_INT_HEX:
        raise ProtocolError("bad or too long integer")
    return int(text, 16)


def _seq(items: Any) -> list:
    if type(items) is not list:
        raise ProtocolError("expected a list")
    return items


def decode_plain(obj: dict) -> Any:
    """The plain value a tagged JSON object stands for, or the NotImplemented marker if it is a reference."""
    if len(obj) == 1:
        (key, body), = obj.items()  # fmt: skip
        if key == "t":
            return tuple(_seq(body))
        if key == "d":
            flat = _seq(body)
            if len(flat) % 2:
                raise ProtocolError("a dict needs key, value pairs")
            return dict(zip(flat[0::2], flat[1::2], strict=True))
        if key == "s":
            return set(_seq(body))
        if key == "f":
            return frozenset(_seq(body))
        if key == "b" or key == "y":
            if not isinstance(body, str):
                raise ProtocolError("bytes must be base64 text")
            raw = base64.b64decode(body, validate=True)
            return raw if key == "b" else bytearray(raw)
        if key == "c":
            parts = _seq(body)
            if len(parts) != 2 or not all(type(p) in (int, float) for p in parts):
                raise ProtocolError("a complex needs two numbers")
            return complex(parts[0], parts[1])
        if key == "i":
            return _check_int_hex(body)
    if "std" in obj:
        return _decode_std(obj)
    return NotImplemented


def _decode_std(obj: dict) -> Any:
    kind, x = obj.get("std"), obj.get("x")
    if kind == "Decimal" and isinstance(x, str):
        return decimal.Decimal(x)
    if kind == "Fraction":
        parts = _seq(x)
        if len(parts) != 2 or not all(type(p) is int for p in parts) or parts[1] == 0:
            raise ProtocolError("bad Fraction")
        return fractions.Fraction(parts[0], parts[1])
    if kind in ("datetime", "date", "time") and isinstance(x, str):
        value = getattr(datetime, kind).fromisoformat(x)
        return value.replace(tzinfo=datetime.timezone.utc) if obj.get("utc") and kind != "date" else value
    if kind == "timedelta":
        parts = _seq(x)
        if len(parts) != 3 or not all(type(p) is int for p in parts):
            raise ProtocolError("bad timedelta")
        return datetime.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])
    if kind == "range":
        parts = _seq(x)
        if len(parts) != 3 or not all(type(p) is int for p in parts) or parts[2] == 0:
            raise ProtocolError("bad range")
        return range(*parts)
    if kind == "deque":
        maxlen = obj.get("n")
        if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
            raise ProtocolError("bad deque")
        return collections.deque(_seq(x), maxlen)
    if kind in ("Counter", "OrderedDict") and type(x) is dict:
        return getattr(collections, kind)(x)
    if kind == "defaultdict" and type(x) is dict:
        factory = obj.get("f")
        if factory is not None and factory not in _FACTORIES:
            raise ProtocolError("bad defaultdict factory")
        return collections.defaultdict(_FACTORIES.get(factory), x)
    raise ProtocolError(f"unknown value kind {kind!r}")


def view_class(base: type, remote_attr: Callable[[Any, str], Any]) -> type:
    """The receiver's own subclass of `base` for views: the builtin's comparisons and methods; any other
    attribute (a namedtuple's field, an enum member's name) is read from the sender's object."""

    def __getattr__(self: Any, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") or name == "_sbx_ref":
            raise AttributeError(name)
        return remote_attr(self.__dict__["_sbx_ref"], name)

    def __repr__(self: Any) -> str:
        return base.__repr__(self)

    def __reduce__(self: Any) -> tuple:
        return (base, (base(self),))

    return type(f"Remote{base.__name__.capitalize()}", (base,), {"__getattr__": __getattr__, "__repr__": __repr__,
                                                                  "__reduce__": __reduce__})  # fmt: skip


def make_view(cls: type, base: type, contents: Any, ref: Any) -> Any:
    """An instance of the view class `cls` (from view_class) holding `contents`, standing for the object `ref`."""
    if base in (list, set, dict):
        view = cls()
        if base is list:
            view.extend(contents)
        else:
            view.update(contents)
    else:
        view = cls(contents)
    view.__dict__["_sbx_ref"] = ref
    return view


class Endpoint:
    """What both sides share: a table of the objects this side has sent by reference, and the request loop.

    A request is answered by `["ret", value, ...]` or `["err", exception]`; while waiting, the other side may
    send its own requests (a callback), which are served in between, so calls nest both ways.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.objects: dict[int, Any] = {}  # reference id -> object (kept alive for the whole job)
        self._ids: dict[int, int] = {}  # id(object) -> reference id, so one object keeps one reference
        self._next_id = 1

    def export(self, obj: Any) -> int:
        ref = self._ids.get(id(obj))
        if ref is not None and self.objects[ref] is obj:
            return ref
        ref = self._next_id
        self._next_id += 1
        self.objects[ref] = obj
        self._ids[id(obj)] = ref
        return ref

    def hook(self, obj: dict) -> Any:  # the decoder's object hook
        raise NotImplementedError

    def serve(self, message: list) -> None:  # answer one request of the other side
        raise NotImplementedError

    def reply_error(self, exc: BaseException) -> list:
        raise NotImplementedError

    def raise_error(self, description: Any) -> Any:
        raise NotImplementedError

    def request(self, message: list) -> list:
        """Send a request and return the other side's `ret` message, serving its requests meanwhile."""
        self.channel.send(message)
        while True:
            reply = self.channel.receive(self.hook)
            kind = reply[0]
            if kind == "ret":
                return reply
            if kind == "err":
                return self.raise_error(reply[1] if len(reply) > 1 else None)
            self.serve(reply)
