"""The trading MCP server (official ``mcp`` SDK v2): tools and resources over the order services.

Tools are thin: parse (the REST API's serializers, so the same field rules), call one service or the
``TradingAgent``, shape the result. Amounts are decimal strings in and out, never floats. Every
action runs as the agent: ``Actor(AGENT, user.pk, "<application> (agent)")`` in the order event log.
Service errors (``TradeMasterError``) come back as MCP tool errors (``isError``) with their message.

Who is calling comes from the bearer token (``agentos.mcp.auth``): the principal is in the ASGI scope
of the HTTP request that carried the call. Read tools need the ``read`` scope (every accepted token
has it); executeOrder (unless ``preview``), cancelOrder and modifyOrder need ``trade``.

Annotations (hints for MCP hosts, static per tool):

==================  ========  ===========  ==========  =========
tool                readOnly  destructive  idempotent  openWorld
==================  ========  ===========  ==========  =========
executeOrder        false     true         false       true
cancelOrder         false     true         true        true
modifyOrder         false     true         true        true
getOrder, getPositions, getOpenOrders, getAccountSummary,
performRiskCheck, getCapabilities, getAgentHealth: readOnly true, idempotent true, openWorld false
==================  ========  ===========  ==========  =========

executeOrder is marked destructive although placing is additive in the MCP sense: a fill spends cash
and changes positions irreversibly, and hosts use ``destructiveHint`` to ask a person first. It is not
idempotent (annotations are static; a repeated call with the same ``clientOrderId`` returns the same
order, without one it places another).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from channels.db import database_sync_to_async
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from agentos.agent import AgentOrder, agent_identity, trading_agent
from agentos.mcp.auth import PRINCIPAL_KEY, TRADE, Principal
from brokers.domain.adapter import OrderChange
from orders import selectors, services
from orders.api import serializers as s
from orders.api.views import algo_params_from, order_request_from
from orders.domain.enums import TimeInForce
from orders.models import ActorType, Order, Position
from orders.portfolio import portfolio_figures
from risk.api.views import RiskCheckOutputSerializer, assessment_data
from routing.algos import algo_modify
from trademaster.errors import BrokerBusy, NotFound, TradeMasterError, ValidationFailed
from trademaster.outbox import jsonable

INSTRUCTIONS = (
    "TradeMaster trading: place, preview, modify and cancel orders and read orders, positions and the "
    "account of the token's user. Amounts are decimal strings. An order goes through every risk rule "
    "and rate limit a person's does; performRiskCheck or executeOrder(preview=true) place nothing."
)

mcp = MCPServer(name="trademaster-trading", instructions=INSTRUCTIONS)

READ_ONLY = ToolAnnotations(
    readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False
)
PLACES = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=True)
CHANGES = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=True)

# the tools' parameter names (camelCase) for the services' field names, in error messages
CAMEL = {
    "order_type": "orderType",
    "stop_price": "stopPrice",
    "trail_amount": "trailAmount",
    "trail_percent": "trailPercent",
    "time_in_force": "timeInForce",
    "client_order_id": "clientOrderId",
    "broker_id": "brokerId",
    "start_time": "startTime",
    "end_time": "endTime",
    "duration_seconds": "durationSeconds",
    "max_participation": "maxParticipation",
}

DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
Amount = Annotated[
    str, Field(description="A decimal number as a string, e.g. '10' or '187.25'.", pattern=DECIMAL)
]
OptionalAmount = Annotated[str | None, Field(description="A decimal number as a string.", pattern=DECIMAL)]
Side = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"]
Tif = Literal["DAY", "GTC", "IOC", "FOK"]


# --- plumbing ----------------------------------------------------------------------------------


def _in_thread(fn):
    """Run blocking ORM work off the event loop (fresh connection handling as Channels does)."""
    return database_sync_to_async(fn, thread_sensitive=False)


def principal(ctx: Context, scope: str | None = None) -> Principal:
    """The authenticated caller of this request; with ``scope``, also checks the token has it."""
    request = ctx.request_context.request
    found = getattr(request, "scope", {}).get(PRINCIPAL_KEY) if request is not None else None
    if not isinstance(found, Principal):
        raise ToolError("not authenticated: call with an Authorization: Bearer token")
    if scope is not None and not found.allows(scope):
        raise ToolError(f"this token lacks the {scope} scope")
    return found


def _field_messages(fields: dict[str, Any]) -> str:
    parts = []
    for name, messages in fields.items():
        text = " ".join(str(m) for m in (messages if isinstance(messages, list | tuple) else [messages]))
        parts.append(f"{CAMEL.get(name, name)}: {text}")
    return "; ".join(parts)


def tool_error(exc: TradeMasterError) -> ToolError:
    """A service error as a tool error with a clear message (the code, the message, the fields)."""
    message = f"{exc.code}: {exc.message}"
    if isinstance(exc, ValidationFailed) and exc.fields:
        message += " " + _field_messages(exc.fields)
    if isinstance(exc, BrokerBusy) and exc.extra.get("retry_after") is not None:
        message += f" Retry after {exc.extra['retry_after']} s."
    return ToolError(message)


async def call(fn, /, **kwargs):
    """``fn(**kwargs)`` in a worker thread; service errors become tool errors."""
    try:
        return await _in_thread(fn)(**kwargs)
    except TradeMasterError as exc:
        raise tool_error(exc) from exc


def _valid(serializer_class, data: dict) -> dict:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ToolError(
            f"validation_error: The request has invalid fields. {_field_messages(serializer.errors)}"
        )
    return dict(serializer.validated_data)


def _order_data(**given: Any) -> dict:
    """The REST field names of the given (non-None) tool arguments."""
    return {name: value for name, value in given.items() if value is not None}


def agent_actor(user, name: str) -> services.Actor:
    return services.Actor(ActorType.AGENT, user.pk, name)


def _identity(p: Principal):
    return agent_identity(user=p.user, application=p.application)


def _own_order(user, order_id: int) -> None:
    """Only the token's user's orders, even for staff (whom the services let see every order)."""
    if not Order.objects.filter(pk=order_id, user=user).exists():
        raise NotFound("order_not_found", f"Order {order_id} does not exist.")


def _order_dict(order) -> dict:
    return dict(s.OrderOutputSerializer(order).data)


# --- orders ------------------------------------------------------------------------------------


@mcp.tool(name="executeOrder", annotations=PLACES)
async def execute_order(
    ctx: Context,
    symbol: Annotated[str, Field(description="Equity ticker (AAPL, BRK.B) or crypto pair (BTC/USD).")],
    side: Side,
    orderType: OrderType,
    quantity: Amount,
    price: OptionalAmount = None,
    stopPrice: OptionalAmount = None,
    trailAmount: OptionalAmount = None,
    trailPercent: OptionalAmount = None,
    timeInForce: Tif = "DAY",
    brokerId: Annotated[
        int | None, Field(description="A broker account of yours; omitted: best execution.")
    ] = None,
    clientOrderId: Annotated[
        str | None, Field(description="Your id; the same id returns the same order.")
    ] = None,
    algo: Annotated[
        Literal["TWAP", "VWAP"] | None, Field(description="Work the order over a window.")
    ] = None,
    startTime: Annotated[str | None, Field(description="Algo window start, ISO 8601 (default now).")] = None,
    endTime: Annotated[str | None, Field(description="Algo window end, ISO 8601.")] = None,
    durationSeconds: Annotated[int | None, Field(description="Algo window length in seconds.")] = None,
    maxParticipation: OptionalAmount = None,
    randomize: OptionalAmount = None,
    slices: Annotated[int | None, Field(description="Algo: number of child orders.")] = None,
    preview: Annotated[bool, Field(description="true: return the risk assessment and route only.")] = False,
) -> dict[str, Any]:
    """Place an order through the trading agent: validate, risk check (every rule and rate limit a
    person's order meets, plus this agent's notional cap), route, execute, track, within 30 s.

    With preview=true nothing is placed: the result is the risk verdict and the route. A refused or
    failed order is a tool error naming the step and the reasons (and the order id when one was
    recorded). Needs the trade scope unless preview=true."""
    p = principal(ctx, None if preview else TRADE)
    data = _valid(
        s.OrderCreateInputSerializer,
        _order_data(
            symbol=symbol,
            side=side,
            order_type=orderType,
            quantity=quantity,
            price=price,
            stop_price=stopPrice,
            trail_amount=trailAmount,
            trail_percent=trailPercent,
            time_in_force=timeInForce,
            broker_id=brokerId,
            client_order_id=clientOrderId,
            algo=algo,
            start_time=startTime,
            end_time=endTime,
            duration_seconds=durationSeconds,
            max_participation=maxParticipation,
            randomize=randomize,
            slices=slices,
        ),
    )
    identity = await call(_identity, p=p)
    order = AgentOrder(
        request=order_request_from(data), broker_id=data.get("broker_id"), algo=algo_params_from(data)
    )
    try:
        outcome = await trading_agent().execute(order, agent=identity, preview=preview)
    except TradeMasterError as exc:
        raise tool_error(exc) from exc
    result = jsonable(outcome.as_dict())
    if not outcome.ok and not preview:
        where = f" (order {outcome.order_id}, {outcome.status})" if outcome.order_id else ""
        reasons = "; ".join(outcome.reasons) or "no reason given"
        raise ToolError(f"order not placed: failed at {outcome.failed_step}{where}: {reasons}")
    return result


@mcp.tool(name="performRiskCheck", annotations=READ_ONLY)
async def perform_risk_check(
    ctx: Context,
    symbol: Annotated[str, Field(description="Equity ticker (AAPL, BRK.B) or crypto pair (BTC/USD).")],
    side: Side,
    orderType: OrderType,
    quantity: Amount,
    price: OptionalAmount = None,
    stopPrice: OptionalAmount = None,
    trailAmount: OptionalAmount = None,
    trailPercent: OptionalAmount = None,
    timeInForce: Tif = "DAY",
    brokerId: Annotated[
        int | None, Field(description="A broker account of yours; omitted: best execution.")
    ] = None,
    clientOrderId: Annotated[str | None, Field(description="Your id for the order.")] = None,
) -> dict[str, Any]:
    """The pre-trade risk verdict and the route for an order, without placing it: approved, the
    broken rules with their messages, the projected exposure and the buying power it would reserve."""
    p = principal(ctx)
    data = _valid(
        s.OrderCreateInputSerializer,
        _order_data(
            symbol=symbol,
            side=side,
            order_type=orderType,
            quantity=quantity,
            price=price,
            stop_price=stopPrice,
            trail_amount=trailAmount,
            trail_percent=trailPercent,
            time_in_force=timeInForce,
            broker_id=brokerId,
            client_order_id=clientOrderId,
        ),
    )

    def check() -> dict:
        preview = services.order_preview(
            user=p.user, request=order_request_from(data), broker_id=data.get("broker_id")
        )
        return dict(RiskCheckOutputSerializer(assessment_data(preview.assessment, preview.account)).data)

    return jsonable(await call(check))


@mcp.tool(name="cancelOrder", annotations=CHANGES)
async def cancel_order(
    ctx: Context, orderId: Annotated[int, Field(description="The order's id.")]
) -> dict[str, Any]:
    """Cancel an open order of yours (an algo order cancels its children). A closed order is an
    error; a cancel already in flight is a no-op. Needs the trade scope."""
    p = principal(ctx, TRADE)

    def cancel() -> dict:
        _own_order(p.user, orderId)
        identity = _identity(p)
        order = services.order_cancel(user=p.user, order_id=orderId, actor=agent_actor(p.user, identity.name))
        return _order_dict(order)

    return jsonable(await call(cancel))


@mcp.tool(name="modifyOrder", annotations=CHANGES)
async def modify_order(
    ctx: Context,
    orderId: Annotated[int, Field(description="The order's id.")],
    quantity: Annotated[
        str | None, Field(description="The new total quantity (decimal string).", pattern=DECIMAL)
    ] = None,
    price: OptionalAmount = None,
    stopPrice: OptionalAmount = None,
    trailAmount: OptionalAmount = None,
    trailPercent: OptionalAmount = None,
    timeInForce: Tif | None = None,
    endTime: Annotated[str | None, Field(description="Algo orders: the new end of the window.")] = None,
) -> dict[str, Any]:
    """Cancel-replace the quantity, prices, trail or time in force of a working order of yours (an
    algo order changes only quantity and endTime). Needs the trade scope."""
    p = principal(ctx, TRADE)
    data = _valid(
        s.OrderModifyInputSerializer,
        _order_data(
            quantity=quantity,
            price=price,
            stop_price=stopPrice,
            trail_amount=trailAmount,
            trail_percent=trailPercent,
            time_in_force=timeInForce,
            end_time=endTime,
        ),
    )

    def modify() -> dict:
        _own_order(p.user, orderId)
        identity = _identity(p)
        if not getattr(identity, "active", True):
            raise ToolError(f"agent_inactive: {identity.name} is switched off; it may only cancel.")
        actor = agent_actor(p.user, identity.name)
        if selectors.order_get(user=p.user, order_id=orderId).algo:
            others = sorted(set(data) - {"quantity", "end_time"})
            if others:
                raise ValidationFailed(
                    {f: ["An algo order changes only quantity and end_time."] for f in others}
                )
            order = algo_modify(
                user=p.user,
                order_id=orderId,
                quantity=data.get("quantity"),
                end_time=data.get("end_time"),
                actor=actor,
            )
            return _order_dict(order)
        if "end_time" in data:
            raise ValidationFailed({"end_time": ["Only an algo order has an end_time."]})
        if "time_in_force" in data:
            data["time_in_force"] = TimeInForce(data["time_in_force"])
        order = services.order_replace(user=p.user, order_id=orderId, change=OrderChange(**data), actor=actor)
        return _order_dict(order)

    return jsonable(await call(modify))


@mcp.tool(name="getOrder", annotations=READ_ONLY)
async def get_order(
    ctx: Context,
    orderId: Annotated[int, Field(description="The order's id.")],
    includeEvents: Annotated[bool, Field(description="Also return the order's audit trail.")] = True,
) -> dict[str, Any]:
    """One order of yours: status, fills so far, prices; with includeEvents, its event log (every
    action and state change with its actor), oldest first."""
    p = principal(ctx)

    def read() -> dict:
        _own_order(p.user, orderId)
        order = selectors.order_get(user=p.user, order_id=orderId)
        result = _order_dict(order)
        if includeEvents:
            events = selectors.order_event_list(user=p.user, order_id=orderId)
            result["events"] = [dict(e) for e in s.OrderEventOutputSerializer(events, many=True).data]
        return result

    return jsonable(await call(read))


def _open_orders(user) -> dict:
    orders = selectors.order_list_open(user=user).order_by("id")
    return {"orders": [dict(o) for o in s.OrderOutputSerializer(orders, many=True).data]}


@mcp.tool(name="getOpenOrders", annotations=READ_ONLY)
async def get_open_orders(ctx: Context) -> dict[str, Any]:
    """Your open (working) orders, oldest first."""
    p = principal(ctx)
    return jsonable(await call(_open_orders, user=p.user))


# --- positions and account ---------------------------------------------------------------------


@mcp.tool(name="getPositions", annotations=READ_ONLY)
async def get_positions(
    ctx: Context,
    userId: Annotated[int, Field(description="Your user id (the token's user); no other user's.")],
    brokerId: Annotated[int | None, Field(description="Only this broker account of yours.")] = None,
) -> dict[str, Any]:
    """Your open positions per broker account: quantity, average cost, market value, P&L."""
    p = principal(ctx)
    if userId != p.user.pk:
        raise ToolError("permission_denied: not your account: a token reads only its own user's positions")

    def read() -> dict:
        if brokerId is not None and not p.user.broker_accounts.filter(pk=brokerId).exists():
            raise ToolError(f"broker_not_found: Broker account {brokerId} does not exist.")
        qs = Position.objects.filter(user=p.user).exclude(quantity=0)
        if brokerId is not None:
            qs = qs.filter(broker_id=brokerId)
        rows = s.PositionOutputSerializer(qs.order_by("symbol", "broker_id"), many=True).data
        return {"userId": p.user.pk, "positions": [dict(r) for r in rows]}

    return jsonable(await call(read))


def _account_summary(user) -> dict:
    figures = portfolio_figures(user=user)
    accounts = [
        {
            "brokerId": a.pk,
            "broker": str(a),
            "cash": a.cash,
            "buyingPower": a.buying_power,
            "totalValue": a.total_value,
            "isActive": a.is_active,
        }
        for a in user.broker_accounts.order_by("id")
    ]
    return {
        "userId": user.pk,
        "totalValue": figures.total_value,
        "equity": figures.equity,
        "dailyPnl": figures.daily_pnl,
        "dailyPnlPercent": figures.daily_pnl_percent,
        "unrealizedPnl": figures.unrealized_pnl,
        "realizedPnl": figures.realized_pnl,
        "tradingState": figures.trading_state,
        "openOrders": figures.open_orders,
        "accounts": accounts,
    }


@mcp.tool(name="getAccountSummary", annotations=READ_ONLY)
async def get_account_summary(ctx: Context) -> dict[str, Any]:
    """Your account: total value, equity, today's and unrealized/realized P&L, trading state
    (ACTIVE/REDUCING/HALTED), the number of open orders and each broker account's cash."""
    p = principal(ctx)
    return jsonable(await call(_account_summary, user=p.user))


# --- the agent ---------------------------------------------------------------------------------


@mcp.tool(name="getCapabilities", annotations=READ_ONLY)
async def get_capabilities(ctx: Context) -> dict[str, Any]:
    """The trading agent's capabilities (ORDER_EXECUTION, RISK_MANAGEMENT, BROKER_ROUTING) with
    their proficiency and live health (0..1 from recent success rate and latency)."""
    principal(ctx)
    return {"capabilities": jsonable(trading_agent().capabilities())}


@mcp.tool(name="getAgentHealth", annotations=READ_ONLY)
async def get_agent_health(ctx: Context) -> dict[str, Any]:
    """The trading agent's overall health score and status (HEALTHY, or DEGRADED when a
    capability is below 0.9), with each capability's health."""
    principal(ctx)
    return jsonable(trading_agent().health())


# --- resources -----------------------------------------------------------------------------------
# Static resources get no Context in the SDK (so no caller), hence templates on the user's id.


def _own(ctx: Context, userId: str) -> Principal:
    try:
        p = principal(ctx)
    except ToolError as exc:
        raise ResourceError(str(exc)) from None
    if userId != str(p.user.pk):
        raise ResourceError("permission_denied: not your account: a token reads only its own user's data")
    return p


@mcp.resource("trading://users/{userId}/orders/open", name="openOrders", mime_type="application/json")
async def open_orders_resource(userId: str, ctx: Context) -> dict[str, Any]:
    """Your open (working) orders, as getOpenOrders returns them (userId: the token's user)."""
    p = _own(ctx, userId)
    return jsonable(await call(_open_orders, user=p.user))


@mcp.resource("trading://users/{userId}/account/summary", name="accountSummary", mime_type="application/json")
async def account_summary_resource(userId: str, ctx: Context) -> dict[str, Any]:
    """Your account summary, as getAccountSummary returns it (userId: the token's user)."""
    p = _own(ctx, userId)
    return jsonable(await call(_account_summary, user=p.user))
