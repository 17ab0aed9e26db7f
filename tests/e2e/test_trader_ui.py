"""The trader's pages end to end, in chromium, at a desktop and a phone viewport.

The hooks used here are the DOM contract of the pages (``#order-form``, ``#order-preview``,
``tr#order-<pk>``, ``#unrealized-pnl`` ...). Every wait is an auto-waiting ``expect``: no sleeps.
"""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.sync_api import Locator, Page, expect

from .conftest import PASSWORD, TIMEOUT_MS, Browsing, number_in

RESTING = re.compile(r"^(PENDING|SUBMITTED|ACCEPTED)$")
PRICE_ERROR = re.compile(r"required|price", re.I)
NOTIONAL = re.compile(r"order notional", re.I)


# --- helpers ----------------------------------------------------------------------------------------
def mark_page(page: Page) -> None:
    """A marker on the window: still there later means the page was never reloaded."""
    page.evaluate("window.__e2eMarker = 'no-reload'")


def watch_live(page: Page) -> None:
    """Note when the stream last told the page that something changed (see ``wait_live_idle``)."""
    page.evaluate(
        """window.__e2eOrdersAt = performance.now();
        for (const topic of ['orders', 'positions', 'fills']) {
          document.body.addEventListener('tm-' + topic, () => { window.__e2eOrdersAt = performance.now(); });
        }"""
    )


def wait_live_idle(page: Page) -> None:
    """Until the live re-render is done: no htmx request in flight and no orders/positions event
    for longer than app.js's coalescing window (250 ms). Opening an inline editor while a panel
    refresh is in flight loses the editor when that refresh lands (the panel's guard
    ``tm-orders[!this.querySelector('tr.editing')]`` is checked when a refresh starts, not when
    it is swapped in; the positions table has the same guard for its confirmations), so the test
    waits the way a trader's eye does."""
    page.wait_for_function(
        "performance.now() - window.__e2eOrdersAt > 400 && !document.querySelector('.htmx-request')"
    )


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__e2eMarker") == "no-reload", "the page was reloaded"


def wait_stream(page: Page) -> None:
    expect(page.locator("body[data-stream-ready]")).to_be_attached()


def log_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/$"))
    wait_stream(page)


def order_form(page: Page) -> Locator:
    return page.locator("form#order-form")


def set_field(form: Locator, label: str, value: str) -> None:
    """Set a labelled control of the order form (by its label: the form's accessible names)."""
    control = form.get_by_label(label, exact=True)
    if control.evaluate("e => e.tagName") == "SELECT":
        control.select_option(value)
    else:
        control.fill(value)
        control.dispatch_event("change")


def fill_limit_order(page: Page, symbol: str, side: str, quantity: str, price: str) -> None:
    form = order_form(page)
    set_field(form, "Symbol", symbol)
    expect(page.locator("#quote")).to_have_attribute("data-symbol", symbol)
    set_field(form, "Side", side)
    set_field(form, "Order type", "LIMIT")
    set_field(form, "Quantity", quantity)
    set_field(form, "Limit price", price)
    set_field(form, "Time in force", "GTC")


def placed_order_id(page: Page, not_id: int | None = None) -> int:
    """The id in ``#order-result`` ("Order <id> <STATUS>"), once it names a new order."""
    result = page.locator("#order-result")
    pattern = rf"Order (?!{not_id}\b)(\d+)\b" if not_id else r"Order (\d+)\b"
    expect(result).to_contain_text(re.compile(pattern))
    expect(result).to_have_attribute("role", "status")
    text = " ".join(result.text_content().split())
    found = re.search(pattern, text)
    assert found, f"no new order id in #order-result: {text!r}"
    return int(found.group(1))


def place(page: Page) -> None:
    button = page.locator("#place-order")
    expect(button).to_have_text(re.compile(r"Place order"))
    button.click()


# --- the flow -----------------------------------------------------------------------------------------
def test_trader_places_tracks_modifies_and_cancels_orders_live(browsing: Browsing):
    page, server, shot = browsing.page, browsing.server, browsing.shot
    server.set_mid("AAPL", "100.00")
    server.set_mid("MSFT", "300.00")
    check_width = browsing.check_width

    # every page requires login: an anonymous /trade/ goes to the login form
    page.goto("/trade/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/trade/"))
    expect(page.locator("#login-form")).to_be_visible()
    shot(1, "login")
    check_width()

    # log in through the form: to the dashboard, and the stream is live
    log_in(page, browsing.username)
    expect(page.locator("#trading-state")).to_have_attribute("data-state", "ACTIVE")
    for hook in ("#portfolio-value", "#daily-pnl", "#unrealized-pnl", "#realized-pnl"):
        expect(page.locator(hook)).to_have_attribute("data-value", re.compile(r"^-?\d+(\.\d+)?$"))
    expect(page.locator("#daily-pnl")).to_contain_text("%")
    expect(page.locator("#equity-chart")).to_have_attribute("role", "img")
    expect(page.locator("#equity-chart")).to_have_attribute("aria-label", re.compile(r"\d"))
    expect(page.locator("#brokers")).to_be_visible()
    expect(page.locator("#risk-alerts")).to_be_visible()
    shot(2, "dashboard")
    check_width()

    # /trade/: a resting LIMIT BUY 10 AAPL at 90 (mid 100), green and routed
    page.goto("/trade/")
    wait_stream(page)
    mark_page(page)
    watch_live(page)
    expect(order_form(page)).to_be_visible()
    shot(3, "trade-empty")
    check_width()
    fill_limit_order(page, "AAPL", "BUY", "10", "90.00")
    for word in ("bid", "ask", "last"):
        expect(page.locator("#quote")).to_contain_text(re.compile(word, re.I))
    preview = page.locator("#order-preview")
    expect(preview).to_have_attribute("data-risk", "green")
    expect(preview.locator(".badge", has_text="OK")).to_be_visible()
    expect(page.locator("#route")).to_contain_text(re.compile(r"Route: \S"))
    shot(4, "trade-preview-green")
    place(page)
    first = placed_order_id(page)
    expect(page.locator(f'#order-result a[href$="/orders/{first}/"]').first).to_be_visible()
    expect(page.locator(".toast", has_text=f"Order {first} placed").first).to_be_attached()
    row = page.locator(f"tr#order-{first}")
    expect(row).to_have_attribute("data-status", RESTING)
    expect(row.locator(".o-symbol")).to_contain_text("AAPL")
    expect(row.locator(".o-side")).to_contain_text("BUY")
    expect(row.locator(".o-type")).to_contain_text("LIMIT")
    expect(row.locator(".o-qty")).to_contain_text("10")
    expect(order_form(page)).to_be_visible()  # the form stays for the next order
    assert server.order(first)["status"] in {"SUBMITTED", "ACCEPTED"}
    shot(5, "trade-placed")

    # the market comes down to it: a fill toast, the row turns FILLED live (no reload)
    server.set_mid("AAPL", "85.00")
    expect(page.locator(".toast.fill", has_text="AAPL").first).to_be_attached()
    expect(row).to_have_attribute("data-status", "FILLED")
    expect(row.locator(".o-status")).to_contain_text("FILLED")
    filled = server.order(first)
    assert filled["status"] == "FILLED" and filled["filled_quantity"] == Decimal(10)
    average = filled["average_fill_price"]
    assert average is not None and average <= Decimal(90)
    expect(row.locator(".o-filled")).to_contain_text("10")
    expect(row.locator(".o-avg")).to_contain_text(re.compile(r"\d"))
    assert abs(number_in(row.locator(".o-avg").inner_text()) - average) < Decimal("0.01")
    assert_not_reloaded(page)
    shot(6, "trade-filled")
    check_width()

    # a second order, modified in place, then cancelled
    fill_limit_order(page, "MSFT", "BUY", "5", "250.00")
    expect(preview).to_have_attribute("data-risk", "green")
    place(page)
    second = placed_order_id(page, not_id=first)
    row2 = page.locator(f"tr#order-{second}")
    expect(row2).to_have_attribute("data-status", "ACCEPTED")  # working at the venue
    expect(row2.locator(".o-price")).to_contain_text("250")
    wait_live_idle(page)
    page.get_by_role("button", name=f"Modify order {second}", exact=True).click()
    editing = page.locator(f"tr#order-{second}.editing")
    expect(editing).to_be_visible()
    expect(editing.get_by_role("button", name="Keep")).to_be_visible()
    editing.get_by_label("New limit price").fill("255.00")
    shot(7, "trade-modify")
    editing.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(f"tr#order-{second}:not(.editing) .o-price")).to_contain_text("255")
    assert server.order(second)["price"] == Decimal(255)
    cancel = page.get_by_role("button", name=f"Cancel order {second}", exact=True)
    expect(cancel).to_have_class(re.compile(r"\bneon\b"))
    cancel.click()
    expect(row2).to_have_attribute("data-status", "CANCELLED")
    assert server.order(second)["status"] == "CANCELLED"
    assert_not_reloaded(page)

    # positions: AAPL 10 at the fill price, per symbol and per broker (with close/reduce)
    page.goto("/positions/")
    wait_stream(page)
    by_symbol = page.locator('#positions-by-symbol tr[data-symbol="AAPL"]')
    expect(by_symbol.locator(".p-qty")).to_contain_text("10")
    assert number_in(by_symbol.locator(".p-qty").inner_text()) == Decimal(10)
    assert abs(number_in(by_symbol.locator(".p-avg").inner_text()) - average) < Decimal("0.05")
    for cell in (".p-value", ".p-unrealized", ".p-realized"):
        expect(by_symbol.locator(cell)).to_contain_text(re.compile(r"\d"))
    by_broker = page.locator('#positions-by-broker tr[data-symbol="AAPL"][data-broker]')
    expect(by_broker).to_have_count(1)
    close = by_broker.get_by_role("button", name=re.compile(r"^Close AAPL at "))
    expect(close).to_have_class(re.compile(r"\bneon\b"))
    expect(by_broker.get_by_role("button", name=re.compile(r"Reduce"))).to_be_visible()
    shot(8, "positions")
    check_width()

    # a risk rejection: red in the preview with the rule's reason, and on submit
    page.goto("/trade/")
    wait_stream(page)
    fill_limit_order(page, "AAPL", "BUY", "1000", "100.00")  # 100,000 > the 75,000 limit
    expect(preview).to_have_attribute("data-risk", "red")
    expect(preview.locator(".badge", has_text="Blocked")).to_be_visible()
    expect(page.locator("#risk-reasons li", has_text=NOTIONAL).first).to_be_visible()
    shot(9, "trade-preview-red")
    place(page)
    # large, but refused whatever the trader confirms: no confirmation step, the reasons at once
    errors = page.locator("#order-errors")
    expect(errors).to_contain_text(NOTIONAL)
    expect(page.locator("#confirm-order")).to_have_count(0)
    expect(errors).to_have_attribute("role", "alert")
    expect(page.locator("#order-result")).to_have_count(0)
    rejected = page.locator('tr[data-status="REJECTED"]', has=page.locator(".o-qty", has_text="1000"))
    expect(rejected.first).to_be_visible()
    shot(10, "trade-rejected")

    # a field error: a LIMIT without its price
    form = order_form(page)
    set_field(form, "Quantity", "1")
    set_field(form, "Limit price", "")
    place(page)
    expect(page.locator("ul.errorlist#error-price")).to_contain_text(PRICE_ERROR)
    expect(form.get_by_label("Limit price", exact=True)).to_have_attribute("aria-invalid", "true")
    shot(11, "trade-field-error")
    check_width()

    # a large order (60,000: over the 50,000 confirmation threshold, under the 75,000 limit) is
    # placed only once confirmed
    fill_limit_order(page, "MSFT", "BUY", "500", "120.00")
    expect(preview).to_have_attribute("data-risk", re.compile(r"^(green|yellow)$"))
    place(page)
    confirm = page.locator("#confirm-order")
    expect(confirm).to_contain_text(re.compile(r"large|confirm", re.I))
    confirm_button = confirm.get_by_role("button", name="Confirm order")
    expect(confirm_button).to_have_class(re.compile(r"\bneon\b"))
    expect(confirm.locator('input[name="confirmed"]')).to_have_value("1")
    expect(page.locator("#order-result")).to_have_count(0)  # nothing placed yet
    shot(12, "trade-confirmation")
    check_width()
    confirm_button.click()
    large = placed_order_id(page, not_id=second)
    assert large not in (first, second)
    expect(page.locator(f"tr#order-{large}")).to_have_attribute("data-status", RESTING)
    page.get_by_role("button", name=f"Cancel order {large}", exact=True).click()
    expect(page.locator(f"tr#order-{large}")).to_have_attribute("data-status", "CANCELLED")

    # the filled order's page: status, history and routing decision
    page.goto(f"/orders/{first}/")
    wait_stream(page)
    expect(page.locator("#order-status")).to_have_text(re.compile(r"^\s*FILLED\s*$"))
    events = page.locator("#order-events")
    expect(events.locator("tbody tr").first).to_be_visible()
    assert events.locator("tbody tr").count() >= 2  # at least placed and filled
    expect(events).to_contain_text("FILLED")
    expect(events).to_contain_text(browsing.username)  # who placed it
    expect(page.locator("#order-routing")).to_be_visible()
    shot(13, "order-detail")
    check_width()

    # the order list
    page.goto("/orders/")
    wait_stream(page)
    expect(page.locator(f"tr#order-{first}")).to_have_attribute("data-status", "FILLED")
    expect(page.locator(f"tr#order-{second}")).to_have_attribute("data-status", "CANCELLED")
    shot(14, "orders")
    check_width()

    # the dashboard: the position's unrealized P&L follows the market live
    page.goto("/")
    wait_stream(page)
    mark_page(page)
    summary = page.locator('#positions-summary tr[data-symbol="AAPL"]')
    expect(summary.locator(".p-qty")).to_contain_text("10")
    unrealized = page.locator("#unrealized-pnl")
    expect(unrealized).to_have_attribute("data-value", re.compile(r"^-?\d+(\.\d+)?$"))
    before = unrealized.get_attribute("data-value")
    server.set_mid("AAPL", "95.00")
    try:
        expect(unrealized).not_to_have_attribute("data-value", before)
    except AssertionError:
        page.reload()  # only to tell a missing live update from a missing revaluation
        expect(unrealized).to_be_attached()
        reloaded = unrealized.get_attribute("data-value")
        raise AssertionError(
            f"#unrealized-pnl stayed {before} for {TIMEOUT_MS // 1000} s after AAPL moved to 95.00, "
            f"no live update; after a reload it shows {reloaded}"
        ) from None
    assert Decimal(unrealized.get_attribute("data-value")) > 0  # bought at 90 at most, now 95
    expect(summary.locator(".p-unrealized")).to_contain_text(re.compile(r"\d"))
    assert_not_reloaded(page)
    shot(15, "dashboard-live")
    check_width()


def test_keyboard_only_reaches_navigation_and_places_an_order(browsing: Browsing):
    page, server = browsing.page, browsing.server
    server.set_mid("NVDA", "150.00")
    log_in(page, browsing.username)
    page.goto("/trade/")
    wait_stream(page)

    # from the top: the skip link first, then the brand and the main navigation
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    expect(page.locator("a.skip")).to_be_visible()  # shown while focused
    reached_nav = False
    for _ in range(4):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('nav')"):
            reached_nav = True
            break
    assert reached_nav, "Tab from the top does not reach the navigation"
    expect(page.locator("nav a:focus")).to_have_text("Dashboard")

    # the skip link jumps to the content; from there the form is filled with keys only
    page.keyboard.press("Shift+Tab")
    for _ in range(3):
        if page.evaluate("document.activeElement.classList.contains('skip')"):
            break
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))

    def tab_to(name: str) -> None:
        for _ in range(60):
            if page.evaluate(f"document.activeElement.name === {name!r}"):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reaches the field {name!r}")

    tab_to("symbol")
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("NVDA")
    expect(page.locator("#quote")).to_have_attribute("data-symbol", "NVDA")
    for name, value in (("side", "BUY"), ("order_type", "LIMIT"), ("time_in_force", "GTC")):
        tab_to(name)
        page.keyboard.press("Home")
        for _ in range(8):  # arrow keys through a select's options
            if page.evaluate("document.activeElement.value") == value:
                break
            page.keyboard.press("ArrowDown")
        assert page.evaluate("document.activeElement.value") == value, f"{name} not set by keys"
    for name, value in (("quantity", "1"), ("price", "140")):
        tab_to(name)
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(value)
    expect(page.locator("#order-preview")).to_have_attribute("data-risk", "green")
    for _ in range(60):
        if page.evaluate("document.activeElement.id") == "place-order":
            break
        page.keyboard.press("Tab")
    expect(page.locator("#place-order")).to_be_focused()
    page.keyboard.press("Enter")
    placed = placed_order_id(page)
    expect(page.locator(f"tr#order-{placed}")).to_have_attribute("data-status", RESTING)
    browsing.shot(20, "keyboard-placed")
    browsing.check_width()
    assert server.order(placed)["price"] == Decimal(140)

    # its page follows the order live: the market comes down to it, the status turns FILLED
    page.goto(f"/orders/{placed}/")
    wait_stream(page)
    mark_page(page)
    expect(page.locator("#order-status")).to_have_text(re.compile(r"^\s*ACCEPTED\s*$"))
    server.set_mid("NVDA", "135.00")
    expect(page.locator("#order-status")).to_have_text(re.compile(r"^\s*FILLED\s*$"))
    expect(page.locator("#order-events")).to_contain_text("FILLED")
    assert_not_reloaded(page)
    browsing.shot(21, "order-detail-live")


def test_logout_from_the_top_bar(browsing: Browsing):
    page = browsing.page
    log_in(page, browsing.username)
    page.get_by_role("button", name=re.compile(r"^Log out")).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator("#login-form")).to_be_visible()
    browsing.shot(30, "logged-out")
    page.goto("/trade/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/trade/"))


def test_dashboard_follows_a_fill_then_positions_reduce_and_close(browsing: Browsing):
    page, server = browsing.page, browsing.server
    server.set_mid("MSFT", "300.00")
    log_in(page, browsing.username)
    page.goto("/trade/")
    wait_stream(page)
    form = order_form(page)
    set_field(form, "Symbol", "MSFT")
    expect(page.locator("#quote")).to_have_attribute("data-symbol", "MSFT")
    set_field(form, "Order type", "MARKET")
    expect(form.get_by_label("Limit price", exact=True)).to_be_hidden()  # shown per order type
    fill_limit_order(page, "MSFT", "BUY", "10", "290.00")
    expect(page.locator("#order-preview")).to_have_attribute("data-risk", "green")
    place(page)
    bought = placed_order_id(page)
    expect(page.locator(f"tr#order-{bought}")).to_have_attribute("data-status", "ACCEPTED")

    # on the dashboard, the fill shows up live: the order, the position, the numbers
    page.goto("/")
    wait_stream(page)
    mark_page(page)
    expect(page.locator(f"tr#order-{bought}")).to_have_attribute("data-status", "ACCEPTED")
    value = page.locator("#portfolio-value").get_attribute("data-value")
    server.set_mid("MSFT", "285.00")
    expect(page.locator(f"tr#order-{bought}")).to_have_attribute("data-status", "FILLED")
    summary = page.locator('#positions-summary tr[data-symbol="MSFT"]')
    expect(summary.locator(".p-qty")).to_contain_text("10")
    expect(page.locator("#portfolio-value")).not_to_have_attribute("data-value", value)
    assert_not_reloaded(page)
    browsing.shot(39, "dashboard-after-fill")
    browsing.check_width()

    page.goto("/positions/")
    wait_stream(page)
    watch_live(page)
    row = page.locator('#positions-by-broker tr[data-symbol="MSFT"][data-broker]')
    expect(row.locator(".p-qty")).to_have_attribute("data-value", re.compile(r"^10(\.0+)?$"))
    wait_live_idle(page)
    row.get_by_role("button", name=re.compile(r"^Reduce MSFT at ")).click()
    row.get_by_label("Reduce by").fill("4")
    browsing.shot(40, "positions-reduce")
    browsing.check_width()
    row.get_by_role("button", name="Confirm reduce").click()
    expect(row.locator(".p-qty")).to_have_attribute("data-value", re.compile(r"^6(\.0+)?$"))
    expect(page.locator(".toast").first).to_be_attached()
    wait_live_idle(page)
    close = row.get_by_role("button", name=re.compile(r"^Close MSFT at "))
    expect(close).to_have_class(re.compile(r"\bneon\b"))
    close.click()
    confirm = row.get_by_role("button", name="Confirm close")
    expect(confirm).to_be_visible()
    browsing.shot(41, "positions-close")
    confirm.click()
    open_msft = page.locator('#positions-by-broker tr[data-symbol="MSFT"] .p-qty:not([data-value^="0"])')
    expect(open_msft).to_have_count(0)


def test_order_form_fields_per_type_and_an_algo_order(browsing: Browsing):
    page, server = browsing.page, browsing.server
    server.set_mid("NVDA", "150.00")
    log_in(page, browsing.username)
    page.goto("/trade/")
    wait_stream(page)
    form = order_form(page)
    shown_for = {
        "MARKET": (),
        "LIMIT": ("Limit price",),
        "STOP": ("Stop price",),
        "STOP_LIMIT": ("Limit price", "Stop price"),
        "TRAILING_STOP": ("Trail amount", "Trail %"),
    }
    prices = ("Limit price", "Stop price", "Trail amount", "Trail %")
    for order_type, shown in shown_for.items():
        set_field(form, "Order type", order_type)
        for label in prices:
            control = form.get_by_label(label, exact=True)
            if label in shown:
                expect(control).to_be_visible()
                expect(control).to_be_enabled()
            else:
                expect(control).to_be_hidden()
    window = ("Duration (minutes)", "Slices")
    algo_fields = {"": (), "TWAP": window, "VWAP": (*window, "Max participation %")}
    for algo, shown in algo_fields.items():
        set_field(form, "Algo", algo)
        for label in (*window, "Max participation %"):
            control = form.get_by_label(label, exact=True)
            if label in shown:
                expect(control).to_be_visible()
            else:
                expect(control).to_be_hidden()

    # a TWAP parent resting far from the market: its page shows progress against the schedule
    fill_limit_order(page, "NVDA", "BUY", "10", "100.00")
    set_field(form, "Algo", "TWAP")
    set_field(form, "Duration (minutes)", "30")
    set_field(form, "Slices", "5")
    expect(page.locator("#order-preview")).to_have_attribute("data-risk", re.compile(r"^(green|yellow)$"))
    browsing.shot(50, "trade-twap")
    browsing.check_width()
    place(page)
    parent = placed_order_id(page)
    page.goto(f"/orders/{parent}/")
    wait_stream(page)
    progress = page.locator("#algo-progress")
    expect(progress).to_contain_text("TWAP")
    expect(progress.get_by_role("progressbar")).to_have_attribute("aria-valuetext", re.compile(r"% filled"))
    expect(progress).to_contain_text(re.compile(r"\d+(\.\d+)?% filled"))
    expect(page.locator("#algo-children tr[id^='order-']").first).to_be_visible()  # the first slice
    browsing.shot(51, "order-detail-twap")
    browsing.check_width()
