import json
import pytest
from rest_framework.test import APIClient
pytestmark = pytest.mark.django_db

def p(r):
    print(r.status_code, json.dumps(r.json() if r.content and r.headers.get("Content-Type","").startswith("application/json") else r.content[:300].decode(), indent=1, default=str))

def test_explore(api, accounts, set_mid, trader):
    set_mid("AAPL", "100.00")
    set_mid("BTC/USD", "50000.00")
    r = api.post("/api/v1/orders/", {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "10"}, format="json"); p(r)
    r = api.post("/api/v1/orders/", {"symbol": "AAPL", "side": "BUY", "order_type": "LIMIT", "quantity": 1.5, "price": 99.5}, format="json"); p(r)
    r = api.post("/api/v1/orders/", {"symbol": "BTC/USD", "side": "BUY", "order_type": "LIMIT", "quantity": 0.0015, "price": "49000.5"}, format="json"); p(r)
    oid = r.json()["id"]
    r = api.get(f"/api/v1/orders/{oid}/events/"); p(r)
    r = api.patch(f"/api/v1/orders/{oid}/", {"price": "48000.00", "quantity": "0.002"}, format="json"); p(r)
    r = api.get(f"/api/v1/orders/{oid}/events/"); p(r)
    r = api.post(f"/api/v1/orders/{oid}/cancel/"); p(r)
    r = api.get("/api/v1/orders/?page_size=1"); p(r)
    r = api.get("/api/v1/quotes/?symbol=AAPL"); p(r)
    r = api.get("/api/v1/positions/"); p(r)
    r = api.get("/api/v1/positions/aggregate/"); p(r)
    r = api.get("/api/v1/brokers/"); p(r)
    r = APIClient().get("/api/v1/orders/"); p(r)
    r = api.post("/api/v1/orders/", "{bad", content_type="application/json"); p(r)
