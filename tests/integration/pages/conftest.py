"""Fixtures for the page tests: a logged-in trader with paper accounts and quotes.

Reuses ``trader``, ``accounts`` (PAPER-EQ-A, PAPER-EQ-B, PAPER-CRYPTO) and ``set_mid`` from
``tests/conftest.py``; page test modules may add their own fixtures in their own files.
"""

from __future__ import annotations

import pytest
from django.test import Client

from orders.services import Actor, Placed, order_place
from tests.builders import order_request


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created in nearly every test: skip the deliberately slow production hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def quotes(set_mid) -> dict[str, str]:
    """Mid prices for the symbols the page tests trade."""
    mids = {"AAPL": "100.00", "MSFT": "400.00", "BTC/USD": "50000.00"}
    for symbol, mid in mids.items():
        set_mid(symbol, mid)
    return mids


@pytest.fixture
def client(trader, accounts, quotes) -> Client:
    """A Django test client logged in as ``trader`` (who has paper accounts and quotes)."""
    c = Client()
    c.force_login(trader)
    return c


@pytest.fixture
def anon() -> Client:
    return Client()


@pytest.fixture
def fill():
    """Place an order for ``user`` (at ``account`` when given) through the real pipeline."""

    def fill_(user, account=None, **request) -> Placed:
        return order_place(
            user=user,
            request=order_request(**request),
            actor=Actor.for_user(user),
            broker_id=account.pk if account is not None else None,
        )

    return fill_


# --- a minimal DOM for assertions on rendered pages (stdlib html.parser; no extra package) -------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def text(self) -> str:
        """The text content, whitespace collapsed."""
        parts: list[str] = []

        def walk(node: Node) -> None:
            for child in node.children:
                if isinstance(child, str):
                    parts.append(child)
                else:
                    walk(child)

        walk(self)
        return " ".join(" ".join(parts).split())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants by tag and exact attribute values (``class_`` matches one class)."""
        wanted_class = attrs.pop("class_", None)
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
            and (wanted_class is None or wanted_class in n.classes)
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node | None:
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, element_id: str) -> Node:
        node = self.find(id=element_id)
        assert node is not None, f"no element #{element_id}"
        return node


def parse_html(content: bytes | str) -> Node:
    from html.parser import HTMLParser

    root = Node("#document", {}, None)

    class Builder(HTMLParser):
        current = root

        def handle_starttag(self, tag, attrs):
            node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
            self.current.children.append(node)
            if tag not in VOID:
                self.current = node

        def handle_startendtag(self, tag, attrs):
            self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

        def handle_endtag(self, tag):
            node = self.current
            while node is not None and node.tag != tag:
                node = node.parent
            if node is not None and node.parent is not None:
                self.current = node.parent

        def handle_data(self, data):
            self.current.children.append(data)

    builder = Builder(convert_charrefs=True)
    builder.feed(content.decode() if isinstance(content, bytes) else content)
    return root


@pytest.fixture
def dom():
    """``dom(response)``: the response's HTML as a small tree (``by_id``, ``find``, ``find_all``)."""

    def dom_(response) -> Node:
        return parse_html(response.content)

    return dom_
