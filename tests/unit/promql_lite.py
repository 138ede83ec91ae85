"""A small PromQL parser for checking alert rules and dashboard queries offline.

It follows the Prometheus grammar for what queries are made of (numbers, strings,
selectors with label matchers, range selectors, subqueries, offset and @, functions,
aggregations with by/without, binary operators with their precedence, bool, on/ignoring
and group_left/group_right) and the type rules that matter for catching mistakes: a
function gets the argument types it takes (``rate`` a range vector, ...), a range
selector applies to a plain selector only, comparisons between scalars need ``bool``,
set operators take vectors. :func:`parse` raises :class:`PromQLError` on anything
else; the tree it returns lets a test check metric and label names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SCALAR, VECTOR, MATRIX, STRING = "scalar", "vector", "matrix", "string"

_M, _V, _S, _STR = MATRIX, VECTOR, SCALAR, STRING
# name -> (argument types, the trailing ones optional from index `required`), result
FUNCTIONS: dict[str, tuple[tuple[str, ...], int, str]] = {
    **{f: ((_V,), 1, _V) for f in ("abs", "absent", "ceil", "exp", "floor", "ln", "log2")},
    **{f: ((_V,), 1, _V) for f in ("log10", "sgn", "sqrt", "sort", "sort_desc", "timestamp")},
    **{f: ((_V,), 0, _V) for f in ("day_of_month", "day_of_week", "hour", "minute", "month")},
    "year": ((_V,), 0, _V),
    "days_in_month": ((_V,), 0, _V),
    **{f: ((_M,), 1, _V) for f in ("rate", "irate", "increase", "delta", "idelta", "deriv")},
    **{f: ((_M,), 1, _V) for f in ("changes", "resets", "absent_over_time")},
    **{
        f"{a}_over_time": ((_M,), 1, _V)
        for a in ("avg", "min", "max", "sum", "count", "last", "present", "stddev", "stdvar")
    },
    "quantile_over_time": ((_S, _M), 2, _V),
    "predict_linear": ((_M, _S), 2, _V),
    "histogram_quantile": ((_S, _V), 2, _V),
    "round": ((_V, _S), 1, _V),
    "clamp": ((_V, _S, _S), 3, _V),
    "clamp_min": ((_V, _S), 2, _V),
    "clamp_max": ((_V, _S), 2, _V),
    "label_replace": ((_V, _STR, _STR, _STR, _STR), 5, _V),
    "scalar": ((_V,), 1, _S),
    "vector": ((_S,), 1, _V),
    "time": ((), 0, _S),
    "pi": ((), 0, _S),
}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"}
PARAM_AGGREGATIONS = {"topk": SCALAR, "bottomk": SCALAR, "quantile": SCALAR, "count_values": STRING}

# binary operator -> precedence (higher binds tighter); ^ is right-associative
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    **dict.fromkeys(("==", "!=", "<=", ">=", "<", ">"), 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
COMPARISONS = {"==", "!=", "<=", ">=", "<", ">"}
SET_OPERATORS = {"and", "or", "unless"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}

_DURATION = r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+"
_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<duration>"""
    + _DURATION
    + r""")(?![0-9a-zA-Z_.])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_:]*|:[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=(){}\[\],:@])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    """The expression is not valid PromQL (for this parser)."""


@dataclass
class Node:
    type: str


@dataclass
class Number(Node):
    value: float


@dataclass
class String(Node):
    value: str


@dataclass
class Selector(Node):
    name: str | None
    matchers: list[tuple[str, str, str]]
    range: str | None = None


@dataclass
class Subquery(Node):
    expr: Node
    range: str
    step: str | None


@dataclass
class Call(Node):
    func: str
    args: list[Node]


@dataclass
class Aggregate(Node):
    op: str
    expr: Node
    param: Node | None
    grouping: list[str] = field(default_factory=list)
    without: bool = False


@dataclass
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    matching: list[str] = field(default_factory=list)
    group_labels: list[str] = field(default_factory=list)


@dataclass
class Unary(Node):
    op: str
    expr: Node


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise PromQLError(f"unexpected character {text[pos]!r} at {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "space":
            tokens.append((kind, m.group()))
    return tokens


def parse(text: str) -> Node:
    """The syntax tree of ``text``; raises :class:`PromQLError` when it is not valid."""
    parser = _Parser(tokenize(text))
    node = parser.expression(0)
    if parser.peek() is not None:
        raise PromQLError(f"unexpected {parser.peek()[1]!r} after the expression")
    return node


def walk(node: Node):
    """Every node of the tree, depth first."""
    yield node
    for child in vars(node).values():
        if isinstance(child, Node):
            yield from walk(child)
        elif isinstance(child, list):
            for item in child:
                if isinstance(item, Node):
                    yield from walk(item)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, value: str | None = None, kind: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise PromQLError(f"unexpected end, expected {value or kind}")
        if (value is not None and token[1] != value) or (kind is not None and token[0] != kind):
            raise PromQLError(f"expected {value or kind}, got {token[1]!r}")
        self.pos += 1
        return token

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[1] == value and token[0] in ("op", "ident")

    def binary_operator(self) -> str | None:
        token = self.peek()
        if token is None:
            return None
        if token[0] == "op" and token[1] in PRECEDENCE:
            return token[1]
        if token[0] == "ident" and token[1].lower() in ("and", "or", "unless", "atan2"):
            return token[1].lower()
        return None

    def expression(self, min_precedence: int) -> Node:
        lhs = self.unary()
        while (op := self.binary_operator()) is not None and PRECEDENCE[op] > min_precedence:
            self.pos += 1
            returns_bool = False
            if self.at("bool"):
                self.take()
                returns_bool = True
            matching: list[str] = []
            group_labels: list[str] = []
            if self.at("on") or self.at("ignoring"):
                self.take()
                matching = self.label_list()
                if self.at("group_left") or self.at("group_right"):
                    self.take()
                    group_labels = self.label_list() if self.at("(") else []
            # ^ is right-associative: its right side may hold another ^
            rhs = self.expression(PRECEDENCE[op] - (1 if op == "^" else 0))
            lhs = self.combine(op, lhs, rhs, returns_bool, matching, group_labels)
        return lhs

    def combine(self, op, lhs, rhs, returns_bool, matching, group_labels) -> Node:
        for side in (lhs, rhs):
            if side.type not in (SCALAR, VECTOR):
                raise PromQLError(
                    f"operator {op} needs scalars or instant vectors, got {side.type}"
                )
        if returns_bool and op not in COMPARISONS:
            raise PromQLError(f"bool modifier on non-comparison {op}")
        if op in SET_OPERATORS and (lhs.type != VECTOR or rhs.type != VECTOR):
            raise PromQLError(f"set operator {op} needs instant vectors on both sides")
        both_scalar = lhs.type == SCALAR and rhs.type == SCALAR
        if op in COMPARISONS and both_scalar and not returns_bool:
            raise PromQLError("comparisons between scalars need the bool modifier")
        if matching and (lhs.type != VECTOR or rhs.type != VECTOR):
            raise PromQLError("vector matching (on/ignoring) needs vectors on both sides")
        result = SCALAR if both_scalar else VECTOR
        return Binary(result, op, lhs, rhs, matching, group_labels)

    def unary(self) -> Node:
        if self.at("-") or self.at("+"):
            op = self.take()[1]
            # -a^b is -(a^b): the operand extends over a power
            operand = self.expression(PRECEDENCE["^"] - 1)
            if operand.type not in (SCALAR, VECTOR):
                raise PromQLError(f"unary {op} needs a scalar or an instant vector")
            return Unary(operand.type, op, operand)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while self.at("["):
            self.take("[")
            length = self.take(kind="duration")[1]
            if self.at(":"):
                self.take(":")
                step = self.take(kind="duration")[1] if not self.at("]") else None
                self.take("]")
                if node.type != VECTOR:
                    raise PromQLError("a subquery needs an instant vector expression")
                node = Subquery(MATRIX, node, length, step)
            else:
                self.take("]")
                if not isinstance(node, Selector) or node.range is not None:
                    raise PromQLError("a range [..] applies to a plain selector only")
                node.range = length
                node.type = MATRIX
        while self.at("offset") or self.at("@"):
            if self.take()[1] == "offset":
                if self.at("-"):
                    self.take("-")
                self.take(kind="duration")
            elif self.at("start") or self.at("end"):
                self.take()
                self.take("(")
                self.take(")")
            else:
                self.take(kind="number")
            if not isinstance(node, Selector | Subquery):
                raise PromQLError("offset and @ apply to selectors and subqueries only")
        return node

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise PromQLError("unexpected end of expression")
        kind, value = token
        if kind == "number":
            self.pos += 1
            return Number(
                SCALAR, float(int(value, 16)) if value.lower().startswith("0x") else float(value)
            )
        if kind == "string":
            self.pos += 1
            return String(STRING, value[1:-1])
        if value == "(":
            self.take("(")
            node = self.expression(0)
            self.take(")")
            return node
        if value == "{":
            return self.selector(None)
        if kind != "ident":
            raise PromQLError(f"unexpected {value!r}")
        lower = value.lower()
        if lower in AGGREGATIONS or lower in PARAM_AGGREGATIONS:
            nxt = self.peek(1)
            if nxt is not None and (nxt[1] == "(" or nxt[1] in ("by", "without")):
                return self.aggregation()
        if self.peek(1) is not None and self.peek(1)[1] == "(":
            return self.call()
        if lower in ("inf", "nan"):
            self.pos += 1
            return Number(SCALAR, float(lower))
        if lower in KEYWORDS or lower in ("and", "or", "unless", "atan2"):
            raise PromQLError(f"keyword {value!r} where an expression was expected")
        self.pos += 1
        return self.selector(value)

    def selector(self, name: str | None) -> Selector:
        matchers: list[tuple[str, str, str]] = []
        if self.at("{"):
            self.take("{")
            while not self.at("}"):
                label = self.take(kind="ident")[1]
                if ":" in label:
                    raise PromQLError(f"invalid label name {label!r}")
                op = self.take(kind="op")[1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"invalid matcher operator {op!r}")
                matchers.append((label, op, self.take(kind="string")[1][1:-1]))
                if not self.at("}"):
                    self.take(",")
            self.take("}")
        if name is None and not any(v for _label, _op, v in matchers):
            raise PromQLError("a selector needs a metric name or a non-empty matcher")
        return Selector(VECTOR, name, matchers)

    def label_list(self) -> list[str]:
        self.take("(")
        labels: list[str] = []
        while not self.at(")"):
            labels.append(self.take(kind="ident")[1])
            if not self.at(")"):
                self.take(",")
        self.take(")")
        return labels

    def grouping(self) -> tuple[list[str], bool] | None:
        if self.at("by") or self.at("without"):
            without = self.take()[1] == "without"
            return self.label_list(), without
        return None

    def aggregation(self) -> Aggregate:
        op = self.take(kind="ident")[1].lower()
        grouping = self.grouping()
        self.take("(")
        param = None
        if op in PARAM_AGGREGATIONS:
            param = self.expression(0)
            if param.type != PARAM_AGGREGATIONS[op]:
                raise PromQLError(f"{op} takes a {PARAM_AGGREGATIONS[op]} parameter first")
            self.take(",")
        expr = self.expression(0)
        self.take(")")
        if expr.type != VECTOR:
            raise PromQLError(f"{op} aggregates an instant vector, got {expr.type}")
        after = self.grouping()
        if grouping is not None and after is not None:
            raise PromQLError(f"{op}: by/without given twice")
        labels, without = grouping or after or ([], False)
        return Aggregate(VECTOR, op, expr, param, labels, without)

    def call(self) -> Call:
        name = self.take(kind="ident")[1]
        if name not in FUNCTIONS:
            raise PromQLError(f"unknown function {name}")
        types, required, result = FUNCTIONS[name]
        self.take("(")
        args: list[Node] = []
        while not self.at(")"):
            args.append(self.expression(0))
            if not self.at(")"):
                self.take(",")
        self.take(")")
        if not required <= len(args) <= len(types):
            raise PromQLError(f"{name} takes {required}-{len(types)} arguments, got {len(args)}")
        for i, (arg, want) in enumerate(zip(args, types, strict=False)):
            if arg.type != want:
                raise PromQLError(f"{name}: argument {i + 1} must be a {want}, got {arg.type}")
        return Call(result, name, args)
