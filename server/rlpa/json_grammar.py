"""JSON Schema to GBNF: rules that hold a model's JSON (a tool call's arguments, a JSON reply) to
a schema, in the grammar dialect llama.cpp and vLLM's xgrammar both read.

The JSON is written in one layout, json.dumps's: `{"key": "value", "list": [1, 2]}`. A small
model then only chooses values, and a large one writes this layout anyway.

Enforced: `type` (one or a list), `enum`, `const`, `properties` with `required` (keys in the
schema's order, each optional one may be left out; no other key, so `"properties": {}` is
`{}`), `additionalProperties` as a schema (a map) where no `properties` are given, `items`,
`minItems`, `maxItems`, `minLength`, `maxLength`, `anyOf`/`oneOf`, `allOf` of objects
(merged), and `$ref` into `$defs`/`definitions` (recursive ones too). Anything else
(`pattern`, `format`, numeric bounds) is not: such a value is held to its type only, and a
schema this reads nothing from admits any JSON value.

No JSON string may hold `</` as written: a `<` is followed by another character than `/` (JSON
writes it `<\\/`), so that a value cannot close the block it is written in (`</tool_call>`,
`</response>`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# Shared by every schema's rules. Numbers have bounded digits: a model cannot run on in one.
JSON_RULES = r"""
j-value   ::= j-object | j-array | j-string | j-number | j-boolean | "null"
j-object  ::= "{" ( j-string ": " j-value ( ", " j-string ": " j-value )* )? "}"
j-array   ::= "[" ( j-value ( ", " j-value )* )? "]"
j-string  ::= "\"" j-char* "\""
j-char    ::= [^"\\<\x00-\x1F\x7F] | "\\" j-escape | "<"+ ( [^"\\</\x00-\x1F\x7F] | "\\" j-escape )
j-escape  ::= ["\\/bfnrt] | "u" [0-9a-fA-F]{4}
j-integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
j-number  ::= j-integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
j-boolean ::= "true" | "false"
"""

_TYPES = {
    "string": "j-string",
    "integer": "j-integer",
    "number": "j-number",
    "boolean": "j-boolean",
    "null": '"null"',
}
_REF = re.compile(r"#/(\$defs|definitions)/([^/]+)$")


def literal(value: Any) -> str:
    """A GBNF literal matching exactly `value` written as JSON in the layout above."""
    text = json.dumps(value, ensure_ascii=True)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def schema_rules(schema: Any, name: str) -> list[str]:
    """The rules for a value of `schema`: `name` is the rule to refer to, and every other rule
    it needs is named `name-<n>` (plus JSON_RULES, which the caller includes once)."""
    converter = _Converter(name, schema if isinstance(schema, Mapping) else {})
    converter.rules[name] = converter.visit(schema)
    return [f"{rule} ::= {body}" for rule, body in converter.rules.items()]


class _Converter:
    def __init__(self, prefix: str, root: Mapping[str, Any]) -> None:
        self.prefix = prefix
        self.root = root
        self.rules: dict[str, str] = {}
        self._refs: dict[str, str] = {}
        self._count = 0

    def _rule(self, body: str) -> str:
        self._count += 1
        name = f"{self.prefix}-{self._count}"
        self.rules[name] = body
        return name

    def visit(self, schema: Any) -> str:
        """An expression (a rule name, a literal or a parenthesised group) for `schema`."""
        if not isinstance(schema, Mapping):
            return "j-value"  # `true`, `{}`-like or not a schema at all: any value
        if isinstance(schema.get("$ref"), str):
            return self._ref(schema["$ref"])
        if "const" in schema:
            return literal(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return _group([literal(value) for value in schema["enum"]])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return _group([self.visit(option) for option in schema[key]])
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.visit(self._merged(schema))
        kind = schema.get("type")
        if isinstance(kind, list) and kind:
            return _group([self.visit({**schema, "type": one}) for one in kind])
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if kind == "object":
            return self._object(schema)
        if kind == "array":
            return self._array(schema)
        if kind == "string" and ("minLength" in schema or "maxLength" in schema):
            return f'"\\"" j-char{_bounds(schema, "minLength", "maxLength")} "\\""'
        return _TYPES.get(str(kind), "j-value")

    def _ref(self, ref: str) -> str:
        if ref in self._refs:
            return self._refs[ref]
        found = _REF.match(ref)
        defs = self.root.get(found[1]) if found else None
        if found is None or not isinstance(defs, Mapping) or found[2] not in defs:
            return "j-value"  # a remote or unknown reference: not followed
        self._count += 1
        name = self._refs[ref] = f"{self.prefix}-{self._count}"
        self.rules[name] = "j-value"  # held while the definition is visited (recursion)
        self.rules[name] = self.visit(defs[found[2]])
        return name

    def _merged(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """allOf: the parts' properties and required keys together (the common use: a model
        that extends another); other keywords of the parts are not merged."""
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, Mapping) and isinstance(part.get("$ref"), str):
                found = _REF.match(part["$ref"])
                defs = self.root.get(found[1]) if found else None
                part = defs.get(found[2]) if found and isinstance(defs, Mapping) else None
            if not isinstance(part, Mapping):
                continue
            for key, value in part.items():
                if key == "properties" and isinstance(value, Mapping):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _object(self, schema: Mapping[str, Any]) -> str:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            values = schema.get("additionalProperties")
            if not isinstance(values, Mapping):
                return "j-object"
            pair = f'j-string ": " {self.visit(values)}'
            return self._rule(f'"{{" ( {pair} ( ", " {pair} )* )? "}}"')
        if not properties:  # a tool without arguments says so with `"properties": {}`
            return '"{}"'
        required = set(schema.get("required") or [])
        pairs = [
            (self._rule(f'{literal(str(key))} ": " {self.visit(value)}'), key in required)
            for key, value in properties.items()
        ]
        # rest[i]: the pairs from i on, once some pair is written (each then follows ", ").
        rest = [""] * (len(pairs) + 1)
        for i in range(len(pairs) - 1, 0, -1):
            pair, needed = pairs[i]
            step = f'", " {pair}' if needed else f'( ", " {pair} )?'
            rest[i] = self._rule(f"{step} {rest[i + 1]}".strip())
        # The first pair written is one before the first required one, or that one.
        firsts = []
        for i, (pair, needed) in enumerate(pairs):
            firsts.append(f"{pair} {rest[i + 1]}".strip())
            if needed:
                break
        body = _group(firsts)
        if not any(needed for _, needed in pairs):
            body += "?"
        return self._rule(f'"{{" {body} "}}"')

    def _array(self, schema: Mapping[str, Any]) -> str:
        item = self.visit(schema.get("items", True))
        low, high = _int(schema.get("minItems"), 0) or 0, _int(schema.get("maxItems"), None)
        if high == 0:
            return '"[]"'
        more = f'( ", " {item} ){_repeat(max(low - 1, 0), None if high is None else high - 1)}'
        items = f"{item} {more}"
        return self._rule(f'"[" {items} "]"' if low else f'"[" ( {items} )? "]"')


def _group(options: list[str]) -> str:
    unique = list(dict.fromkeys(options))
    return unique[0] if len(unique) == 1 else "( " + " | ".join(unique) + " )"


def _int(value: Any, default: int | None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value


def _bounds(schema: Mapping[str, Any], low_key: str, high_key: str) -> str:
    return _repeat(_int(schema.get(low_key), 0) or 0, _int(schema.get(high_key), None))


def _repeat(low: int, high: int | None) -> str:
    if high is None:
        return "*" if low == 0 else f"{{{low},}}"
    return f"{{{low},{max(low, high)}}}"
