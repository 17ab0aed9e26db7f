"""The per-user order-entry rate limit, shared by the REST API and the trading agent.

The REST API limits order entry with DRF's ``ScopedRateThrottle`` under the scope ``order_entry``
(``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["order_entry"]``, from ``ORDER_ENTRY_RATE``). Agent
requests (the agent itself, MCP tools) go through :func:`order_entry_allow`, which runs that very
throttle for the user: same rate, same cache key (``throttle_order_entry_<user id>``), so a user's
REST and agent orders draw on ONE budget.
"""

from __future__ import annotations

from types import SimpleNamespace

from rest_framework.throttling import ScopedRateThrottle

SCOPE = "order_entry"
_VIEW = SimpleNamespace(throttle_scope=SCOPE)


def order_entry_allow(*, user) -> float | None:
    """Count one order-entry request of ``user``. None when allowed; else the seconds to wait."""
    throttle = ScopedRateThrottle()
    if throttle.allow_request(SimpleNamespace(user=user, META={}), _VIEW):
        return None
    return throttle.wait() or 0.0
