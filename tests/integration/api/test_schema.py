"""The OpenAPI schema and the API docs pages (served without any CDN)."""

from __future__ import annotations

import io
import json
import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command

pytestmark = pytest.mark.django_db

ASSET = re.compile(r"<(script|link)\b[^>]*?\b(?:src|href)=\"([^\"]*)\"", re.IGNORECASE)
API_PATHS = {
    "/api/v1/orders/",
    "/api/v1/orders/{order_id}/",
    "/api/v1/orders/{order_id}/cancel/",
    "/api/v1/orders/{order_id}/events/",
    "/api/v1/fills/",
    "/api/v1/positions/",
    "/api/v1/positions/aggregate/",
    "/api/v1/brokers/",
    "/api/v1/brokers/{account_id}/",
    "/api/v1/quotes/",
}


def test_schema_is_openapi_3_yaml(client):
    # when anyone fetches the schema
    response = client.get("/api/schema/")
    # then it is OpenAPI 3 YAML describing every API path
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "TradeMaster API"
    assert set(schema["paths"]) >= API_PATHS


def test_schema_as_json(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) >= API_PATHS


def test_schema_documents_the_operations(client):
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)
    paths = schema["paths"]
    # operation ids, create and modify bodies, and the error responses
    assert paths["/api/v1/orders/"]["post"]["operationId"] == "orders_create"
    assert set(paths["/api/v1/orders/"]["post"]["responses"]) == {"200", "201", "400", "403", "404", "409"}
    assert paths["/api/v1/orders/{order_id}/"]["patch"]["operationId"] == "orders_modify"
    assert paths["/api/v1/orders/{order_id}/cancel/"]["post"]["operationId"] == "orders_cancel"
    # the list filters are documented as query parameters
    list_params = {p["name"] for p in paths["/api/v1/orders/"]["get"]["parameters"]}
    assert {"status", "open", "symbol", "side", "broker_id", "page", "page_size"} <= list_params
    fill_params = {p["name"] for p in paths["/api/v1/fills/"]["get"]["parameters"]}
    assert {"order_id", "symbol", "broker_id"} <= fill_params
    position_params = {p["name"] for p in paths["/api/v1/positions/"]["get"]["parameters"]}
    assert {"include_flat", "symbol", "broker_id"} <= position_params
    # enums are upper case, decimals are strings
    components = schema["components"]["schemas"]
    assert components["SideEnum"]["enum"] == ["BUY", "SELL"]
    assert components["OrderTypeEnum"]["enum"] == ["MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"]
    assert components["OrderOutput"]["properties"]["quantity"]["type"] == "string"
    assert components["OrderOutput"]["properties"]["quantity"]["format"] == "decimal"
    # credentials are not part of any schema
    dumped = json.dumps(schema)
    assert "api_key_encrypted" not in dumped
    assert "api_secret_encrypted" not in dumped


def test_spectacular_validates_without_warnings(tmp_path):
    # when the schema is generated, validated and written, failing on any warning
    target = tmp_path / "schema.yaml"
    stderr = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=stderr)
    # then it succeeded and wrote an OpenAPI 3 document
    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) >= API_PATHS
    assert "Warning" not in stderr.getvalue()


def test_docs_page_uses_only_local_assets(client):
    # when the Swagger UI page is opened
    response = client.get("/api/docs/")
    # then it is HTML whose scripts and styles all come from this server's static files
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assets = [src for _, src in ASSET.findall(page)]
    assert len(assets) == 4  # favicon, stylesheet, bundle, preset
    for src in assets:
        assert src.startswith("/static/"), src
        assert finders.find(src.removeprefix("/static/")) is not None, src
    # and no absolute URL (a CDN) appears anywhere in it
    assert "http://" not in page
    assert "https://" not in page
    assert "//cdn" not in page


def test_docs_page_points_at_the_local_schema(client):
    page = client.get("/api/docs/").content.decode()
    assert '"/api/schema/"' in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
