"""Unit tests for order-request validation (orders/domain/validation.py)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.domain.validation import (
    MAX_DECIMALS,
    MAX_QUANTITY,
    OrderRequest,
    asset_class_of,
    decimals_of,
    validate_order_request,
)

D = Decimal
T = OrderType
TIF = TimeInForce


def _request(order_type: OrderType = T.MARKET, **overrides) -> OrderRequest:
    """A valid request of the given type; ``overrides`` replace single fields."""
    type_fields: dict[OrderType, dict[str, Decimal]] = {
        T.MARKET: {},
        T.LIMIT: {"price": D("150.25")},
        T.STOP: {"stop_price": D("140")},
        T.STOP_LIMIT: {"price": D("139.50"), "stop_price": D("140")},
        T.TRAILING_STOP: {"trail_percent": D("2.5")},
    }
    fields: dict[str, object] = {
        "symbol": "AAPL",
        "side": Side.BUY,
        "order_type": order_type,
        "quantity": D("10"),
        "time_in_force": TIF.DAY,
        **type_fields[order_type],
    }
    fields.update(overrides)
    return OrderRequest(**fields)  # type: ignore[arg-type]


def _assert_human_messages(errors: dict[str, list[str]]) -> None:
    for field, messages in errors.items():
        assert messages, f"{field} has an empty message list"
        for message in messages:
            assert isinstance(message, str)
            assert message.strip() == message
            assert len(message) >= 10
            assert message[0].isupper() or message[0].isdigit()
            assert message.endswith(".")


# ---------------------------------------------------------------------------------------------
# Valid requests
# ---------------------------------------------------------------------------------------------

VALID = {
    "market": _request(T.MARKET),
    "market-sell-ioc": _request(T.MARKET, side=Side.SELL, time_in_force=TIF.IOC),
    "market-fok": _request(T.MARKET, time_in_force=TIF.FOK),
    "market-gtc": _request(T.MARKET, time_in_force=TIF.GTC),
    "limit": _request(T.LIMIT),
    "limit-ioc": _request(T.LIMIT, time_in_force=TIF.IOC),
    "limit-fok": _request(T.LIMIT, time_in_force=TIF.FOK),
    "stop": _request(T.STOP),
    "stop-gtc": _request(T.STOP, time_in_force=TIF.GTC),
    "stop-limit": _request(T.STOP_LIMIT),
    "trailing-percent": _request(T.TRAILING_STOP),
    "trailing-percent-max-50": _request(T.TRAILING_STOP, trail_percent=D("50")),
    "trailing-amount": _request(T.TRAILING_STOP, trail_percent=None, trail_amount=D("1.5")),
    "trailing-gtc": _request(T.TRAILING_STOP, time_in_force=TIF.GTC),
    "quantity-8-decimals": _request(T.MARKET, quantity=D("0.00000001")),
    "quantity-max": _request(T.MARKET, quantity=D("9999999999.99999999")),
    "quantity-trailing-zeros": _request(T.MARKET, quantity=D("1.0000000000")),
    "price-8-decimals": _request(T.LIMIT, price=D("0.12345678")),
    "price-max": _request(T.LIMIT, price=D("9999999999.99999999")),
    "equity-class-share": _request(T.MARKET, symbol="BRK.B"),
    "crypto": _request(T.LIMIT, symbol="BTC/USD", quantity=D("0.5")),
    "client-order-id": _request(T.MARKET, client_order_id="strat-1_a.b:2024"),
    "client-order-id-64": _request(T.MARKET, client_order_id="x" * 64),
}


@pytest.mark.parametrize("req", VALID.values(), ids=VALID.keys())
def test_valid_request_has_no_errors(req):
    # given a well-formed request
    # when it is validated
    errors = validate_order_request(req)
    # then there is no error at all
    assert errors == {}


# ---------------------------------------------------------------------------------------------
# Order types: required and forbidden fields
# ---------------------------------------------------------------------------------------------

MISSING = {
    "limit-without-price": (_request(T.LIMIT, price=None), {"price": ["Required for LIMIT orders."]}),
    "stop-without-stop-price": (
        _request(T.STOP, stop_price=None),
        {"stop_price": ["Required for STOP orders."]},
    ),
    "stop-limit-without-price": (
        _request(T.STOP_LIMIT, price=None),
        {"price": ["Required for STOP_LIMIT orders."]},
    ),
    "stop-limit-without-stop-price": (
        _request(T.STOP_LIMIT, stop_price=None),
        {"stop_price": ["Required for STOP_LIMIT orders."]},
    ),
    "stop-limit-without-either": (
        _request(T.STOP_LIMIT, price=None, stop_price=None),
        {
            "price": ["Required for STOP_LIMIT orders."],
            "stop_price": ["Required for STOP_LIMIT orders."],
        },
    ),
    "trailing-without-either": (
        _request(T.TRAILING_STOP, trail_percent=None),
        {"trail_amount": ["A trailing stop needs exactly one of trail_amount or trail_percent."]},
    ),
    "trailing-with-both": (
        _request(T.TRAILING_STOP, trail_amount=D("1")),
        {"trail_amount": ["A trailing stop needs exactly one of trail_amount or trail_percent."]},
    ),
}


@pytest.mark.parametrize(("req", "expected"), MISSING.values(), ids=MISSING.keys())
def test_required_type_fields(req, expected):
    # given a request lacking (or over-supplying) the fields its type needs
    # when it is validated
    errors = validate_order_request(req)
    # then exactly those fields are reported
    assert errors == expected
    _assert_human_messages(errors)


_VALUES = {
    "price": D("100"),
    "stop_price": D("95"),
    "trail_amount": D("1"),
    "trail_percent": D("1"),
}
_ALLOWED = {
    T.MARKET: set(),
    T.LIMIT: {"price"},
    T.STOP: {"stop_price"},
    T.STOP_LIMIT: {"price", "stop_price"},
    T.TRAILING_STOP: {"trail_amount", "trail_percent"},
}
NOT_ALLOWED = [
    (order_type, field)
    for order_type in OrderType
    for field in ("price", "stop_price", "trail_amount", "trail_percent")
    if field not in _ALLOWED[order_type]
]


@pytest.mark.parametrize(("order_type", "field"), NOT_ALLOWED, ids=[f"{t.value}-{f}" for t, f in NOT_ALLOWED])
def test_field_not_allowed_for_type(order_type, field):
    # given an otherwise valid request carrying a field its type does not use
    req = _request(order_type, **{field: _VALUES[field]})
    # when it is validated
    errors = validate_order_request(req)
    # then that field alone is refused
    assert errors == {field: [f"Not allowed for {order_type.value} orders."]}
    _assert_human_messages(errors)


def test_not_allowed_field_is_not_range_checked():
    # given a MARKET order with a negative price
    req = _request(T.MARKET, price=D("-1"))
    # when it is validated
    errors = validate_order_request(req)
    # then only "not allowed" is reported, not the range problem too
    assert errors == {"price": ["Not allowed for MARKET orders."]}


def test_market_order_with_every_price_field_reports_each():
    # given a MARKET order carrying all four price fields
    req = _request(T.MARKET, **_VALUES)
    # when it is validated
    errors = validate_order_request(req)
    # then each field is refused
    assert errors == {field: ["Not allowed for MARKET orders."] for field in _VALUES}


# ---------------------------------------------------------------------------------------------
# Quantity
# ---------------------------------------------------------------------------------------------

QUANTITY = {
    "zero": (D("0"), ["Must be greater than zero."]),
    "negative-zero": (D("-0"), ["Must be greater than zero."]),
    "negative": (D("-5"), ["Must be greater than zero."]),
    "9-decimals": (D("0.000000001"), ["At most 8 decimal places are allowed."]),
    "9-decimals-large": (D("1.123456789"), ["At most 8 decimal places are allowed."]),
    "too-large": (D("10000000000"), ["Must be at most 9999999999.99999999."]),
    "just-too-large": (
        D("9999999999.999999991"),
        [
            "Must be at most 9999999999.99999999.",
            "At most 8 decimal places are allowed.",
        ],
    ),
    "negative-9-decimals": (
        D("-0.000000001"),
        ["Must be greater than zero.", "At most 8 decimal places are allowed."],
    ),
    "nan": (D("NaN"), ["Must be a finite number."]),
    "signalling-nan": (D("sNaN"), ["Must be a finite number."]),
    "infinity": (D("Infinity"), ["Must be a finite number."]),
    "negative-infinity": (D("-Infinity"), ["Must be a finite number."]),
}


@pytest.mark.parametrize(("quantity", "expected"), QUANTITY.values(), ids=QUANTITY.keys())
def test_invalid_quantity(quantity, expected):
    # given a MARKET order with a bad quantity
    req = _request(T.MARKET, quantity=quantity)
    # when it is validated
    errors = validate_order_request(req)
    # then only the quantity is reported, with the expected messages in order
    assert errors == {"quantity": expected}
    _assert_human_messages(errors)


@pytest.mark.parametrize("quantity", [D("0.00000001"), D("12345.12345678"), MAX_QUANTITY, D("1E+3")])
def test_quantity_with_up_to_8_decimals_is_accepted(quantity):
    # given a positive quantity within range with at most 8 decimals
    req = _request(T.MARKET, quantity=quantity)
    # when it is validated
    # then there is no error
    assert validate_order_request(req) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("1"), 0),
        (D("1.50"), 1),
        (D("0.00000001"), 8),
        (D("0.000000001"), 9),
        (D("1.0000000000"), 0),
        (D("1E+3"), 0),
        (D("NaN"), 0),
    ],
)
def test_decimals_of(value, expected):
    # given a Decimal
    # when counting its significant decimal places
    # then trailing zeros do not count
    assert decimals_of(value) == expected
    assert MAX_DECIMALS == 8


# ---------------------------------------------------------------------------------------------
# Prices and trail values
# ---------------------------------------------------------------------------------------------

PRICE_FIELDS = {
    "limit-price": (T.LIMIT, "price"),
    "stop-stop-price": (T.STOP, "stop_price"),
    "stop-limit-price": (T.STOP_LIMIT, "price"),
    "stop-limit-stop-price": (T.STOP_LIMIT, "stop_price"),
    "trailing-amount": (T.TRAILING_STOP, "trail_amount"),
    "trailing-percent": (T.TRAILING_STOP, "trail_percent"),
}
BAD_AMOUNTS = {
    "zero": (D("0"), ["Must be greater than zero."]),
    "negative": (D("-1.5"), ["Must be greater than zero."]),
    "9-decimals": (D("1.000000001"), ["At most 8 decimal places are allowed."]),
    "nan": (D("NaN"), ["Must be a finite number."]),
    "infinity": (D("Infinity"), ["Must be a finite number."]),
}


@pytest.mark.parametrize(("value", "expected"), BAD_AMOUNTS.values(), ids=BAD_AMOUNTS.keys())
@pytest.mark.parametrize(("order_type", "field"), PRICE_FIELDS.values(), ids=PRICE_FIELDS.keys())
def test_invalid_price_field(order_type, field, value, expected):
    # given a request whose price-like field is bad
    overrides: dict[str, object] = {field: value}
    if field == "trail_amount":
        overrides["trail_percent"] = None
    if field == "trail_percent" and expected == ["At most 8 decimal places are allowed."]:
        # percentages are stored as DECIMAL(10,4): four places
        expected = ["At most 4 decimal places are allowed."]
    req = _request(order_type, **overrides)
    # when it is validated
    errors = validate_order_request(req)
    # then that field alone is reported
    assert errors == {field: expected}
    _assert_human_messages(errors)


@pytest.mark.parametrize(
    ("order_type", "field"),
    [(t, f) for t, f in PRICE_FIELDS.values() if f != "trail_percent"],
    ids=[k for k, (_, f) in PRICE_FIELDS.items() if f != "trail_percent"],
)
def test_price_too_large(order_type, field):
    # given a price-like field above the DECIMAL(18,8) range
    overrides: dict[str, object] = {field: D("10000000000")}
    if field == "trail_amount":
        overrides["trail_percent"] = None
    req = _request(order_type, **overrides)
    # when it is validated
    errors = validate_order_request(req)
    # then it is refused
    assert errors == {field: ["Must be at most 9999999999.99999999."]}


@pytest.mark.parametrize("percent", [D("50.0001"), D("51"), D("100")])
def test_trail_percent_above_50_is_refused(percent):
    # given a trailing stop with a trail percent above 50
    req = _request(T.TRAILING_STOP, trail_percent=percent)
    # when it is validated
    errors = validate_order_request(req)
    # then the percent is refused
    assert errors == {"trail_percent": ["Must be at most 50."]}
    _assert_human_messages(errors)


def test_trail_amount_is_not_capped_at_50():
    # given a trailing stop with a large absolute trail amount
    req = _request(T.TRAILING_STOP, trail_percent=None, trail_amount=D("500"))
    # when it is validated
    # then the 50 cap (a percent cap) does not apply
    assert validate_order_request(req) == {}


# ---------------------------------------------------------------------------------------------
# Time in force
# ---------------------------------------------------------------------------------------------

TIF_CASES = [
    (T.STOP, TIF.IOC, "Stop orders rest until triggered: use DAY or GTC."),
    (T.STOP, TIF.FOK, "Stop orders rest until triggered: use DAY or GTC."),
    (T.STOP_LIMIT, TIF.IOC, "Stop orders rest until triggered: use DAY or GTC."),
    (T.STOP_LIMIT, TIF.FOK, "Stop orders rest until triggered: use DAY or GTC."),
    (T.TRAILING_STOP, TIF.IOC, "Trailing stops rest on the book: use DAY or GTC."),
    (T.TRAILING_STOP, TIF.FOK, "Trailing stops rest on the book: use DAY or GTC."),
]


@pytest.mark.parametrize(
    ("order_type", "tif", "message"),
    TIF_CASES,
    ids=[f"{t.value}-{tif.value}" for t, tif, _ in TIF_CASES],
)
def test_resting_orders_refuse_ioc_and_fok(order_type, tif, message):
    # given a stop or trailing order with an immediate time in force
    req = _request(order_type, time_in_force=tif)
    # when it is validated
    errors = validate_order_request(req)
    # then the time in force is refused
    assert errors == {"time_in_force": [message]}
    _assert_human_messages(errors)


TIF_OK = [(t, tif) for t in OrderType for tif in TimeInForce if (t, tif) not in {c[:2] for c in TIF_CASES}]


@pytest.mark.parametrize(("order_type", "tif"), TIF_OK, ids=[f"{t.value}-{tif.value}" for t, tif in TIF_OK])
def test_other_type_and_tif_combinations_are_accepted(order_type, tif):
    # given any other order type and time in force combination
    req = _request(order_type, time_in_force=tif)
    # when it is validated
    # then there is no error
    assert validate_order_request(req) == {}


# ---------------------------------------------------------------------------------------------
# Symbols and asset classes
# ---------------------------------------------------------------------------------------------

SYMBOL_CLASSES = {
    "AAPL": AssetClass.EQUITY,
    "F": AssetClass.EQUITY,
    "GOOGL": AssetClass.EQUITY,
    "BRK.B": AssetClass.EQUITY,
    "BF.AB": AssetClass.EQUITY,
    "BTC/USD": AssetClass.CRYPTO,
    "ETH/USDT": AssetClass.CRYPTO,
    "1INCH/USD": AssetClass.CRYPTO,
    "aapl": None,
    "Aapl": None,
    "AAPL1": None,
    "": None,
    "BTCUSD/": None,
    "/USD": None,
    "btc/usd": None,
    "BTC/US": None,
    "TOOLONGSYM": None,
    "GOOGLE": None,
    "BRK.": None,
    "BRK.BBB": None,
    "BRK-B": None,
    " AAPL": None,
    "AAPL ": None,
    "AAPL\n": None,
    "BTC/USD\n": None,
}


@pytest.mark.parametrize(
    ("symbol", "expected"), SYMBOL_CLASSES.items(), ids=[repr(s) for s in SYMBOL_CLASSES]
)
def test_asset_class_of(symbol, expected):
    # given a symbol
    # when classifying it
    # then equity tickers, crypto pairs and unknown formats are told apart
    assert asset_class_of(symbol) is expected


VALID_SYMBOLS = [s for s, c in SYMBOL_CLASSES.items() if c is not None]
INVALID_SYMBOLS = [s for s, c in SYMBOL_CLASSES.items() if c is None]


@pytest.mark.parametrize("symbol", VALID_SYMBOLS)
def test_known_symbol_formats_are_accepted(symbol):
    # given a request for an equity ticker or a crypto pair
    req = _request(T.LIMIT, symbol=symbol)
    # when it is validated
    # then there is no error
    assert validate_order_request(req) == {}


@pytest.mark.parametrize("symbol", INVALID_SYMBOLS, ids=[repr(s) for s in INVALID_SYMBOLS])
def test_unknown_symbol_format_is_refused(symbol):
    # given a request with a malformed symbol
    req = _request(T.LIMIT, symbol=symbol)
    # when it is validated
    errors = validate_order_request(req)
    # then only the symbol is reported, with a hint at the accepted formats
    assert list(errors) == ["symbol"]
    assert errors["symbol"] == [
        "Unknown symbol format: use an equity ticker such as AAPL or BRK.B, or a crypto pair such as BTC/USD."
    ]
    _assert_human_messages(errors)


# ---------------------------------------------------------------------------------------------
# client_order_id
# ---------------------------------------------------------------------------------------------

CLIENT_ID_MESSAGE = ["1 to 64 characters: letters, digits and . _ : - only."]


@pytest.mark.parametrize(
    "client_order_id",
    ["a", "A1", "order-1", "order_1", "order.1", "order:1", "MiXeD-123_.:", "9" * 64, None],
)
def test_client_order_id_accepted(client_order_id):
    # given a well-formed (or absent) client order id
    req = _request(T.MARKET, client_order_id=client_order_id)
    # when it is validated
    # then there is no error
    assert validate_order_request(req) == {}


BAD_CLIENT_IDS = [
    "",
    "x" * 65,
    "has space",
    "slash/1",
    "semi;colon",
    "émoji",
    "tab\t",
    "line\n",
    "a+b",
    "a@b",
]


@pytest.mark.parametrize("client_order_id", BAD_CLIENT_IDS, ids=[repr(c) for c in BAD_CLIENT_IDS])
def test_client_order_id_refused(client_order_id):
    # given a malformed client order id
    req = _request(T.MARKET, client_order_id=client_order_id)
    # when it is validated
    errors = validate_order_request(req)
    # then only the client order id is reported
    assert errors == {"client_order_id": CLIENT_ID_MESSAGE}
    _assert_human_messages(errors)


# ---------------------------------------------------------------------------------------------
# Several problems at once
# ---------------------------------------------------------------------------------------------


def test_every_problem_is_reported_together():
    # given a request that is wrong in many ways at once
    req = OrderRequest(
        symbol="aapl",
        side=Side.SELL,
        order_type=T.STOP_LIMIT,
        quantity=D("0"),
        time_in_force=TIF.FOK,
        price=D("-1"),
        stop_price=None,
        trail_amount=D("1"),
        client_order_id="bad id",
    )
    # when it is validated
    errors = validate_order_request(req)
    # then each field has its own messages
    assert errors == {
        "symbol": [
            "Unknown symbol format: use an equity ticker such as AAPL or BRK.B, "
            "or a crypto pair such as BTC/USD."
        ],
        "quantity": ["Must be greater than zero."],
        "price": ["Must be greater than zero."],
        "stop_price": ["Required for STOP_LIMIT orders."],
        "trail_amount": ["Not allowed for STOP_LIMIT orders."],
        "time_in_force": ["Stop orders rest until triggered: use DAY or GTC."],
        "client_order_id": CLIENT_ID_MESSAGE,
    }
    _assert_human_messages(errors)


def test_validation_does_not_mutate_request():
    # given a frozen request
    req = _request(T.LIMIT)
    before = replace(req)
    # when it is validated twice
    first = validate_order_request(req)
    second = validate_order_request(req)
    # then the request is unchanged and each call returns a fresh dict
    assert req == before
    assert first == second == {}
    assert first is not second


@pytest.mark.parametrize(("percent", "ok"), [(D("1.2345"), True), (D("1.23456"), False)])
def test_trail_percent_allows_four_decimal_places(percent, ok):
    # given a trailing stop by percent with four or five decimal places
    req = _request(T.TRAILING_STOP, trail_percent=percent)
    # when it is validated
    errors = validate_order_request(req)
    # then four places pass and a fifth is refused (the column holds four; nothing is rounded silently)
    assert errors == ({} if ok else {"trail_percent": ["At most 4 decimal places are allowed."]})
