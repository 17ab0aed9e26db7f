/* TradeMaster pages: the live stream, toasts, and fields shown per form value.
 *
 * The server renders every number; this script only says *when* to re-render. Each stream frame
 * is dispatched on <body> as `tm-frame` (detail: the frame) at once, and as `tm-<topic>`
 * (orders, positions, fills, risk, brokers) at most every 250 ms with a trailing call, so an
 * htmx partial with hx-trigger="tm-orders from:body" re-fetches once per burst and never misses
 * the last change. After a reconnect every topic fires, so nothing missed stays stale.
 */
(function () {
  "use strict";
  const TOPICS = ["orders", "positions", "fills", "risk", "brokers"];
  const body = document.body;
  const TM = (window.TradeMaster = window.TradeMaster || {});

  // --- coalesced topic events ------------------------------------------------------------------
  const timers = {};
  const pending = {};
  function fire(topic) {
    body.dispatchEvent(new CustomEvent("tm-" + topic, { bubbles: true }));
  }
  function notify(topic) {
    if (timers[topic]) { pending[topic] = true; return; }
    fire(topic);
    timers[topic] = setTimeout(function tick() {
      if (pending[topic]) { pending[topic] = false; fire(topic); timers[topic] = setTimeout(tick, 250); }
      else { timers[topic] = null; }
    }, 250);
  }
  TM.notify = notify;

  // --- toasts ----------------------------------------------------------------------------------
  const ICONS = { fill: "✔", info: "◆", warn: "▲", bad: "■" };
  function toast(opts) {
    const region = document.getElementById("toasts");
    if (!region) return null;
    const kind = opts.kind || "info";
    const el = document.createElement("div");
    el.className = "toast " + kind;
    el.setAttribute("role", kind === "bad" ? "alert" : "status");
    el.dataset.kind = kind;
    const icon = document.createElement("span");
    icon.className = "icon"; icon.setAttribute("aria-hidden", "true"); icon.textContent = ICONS[kind] || "◆";
    const main = document.createElement("div");
    main.className = "body";
    const title = document.createElement("div");
    title.className = "title"; title.textContent = opts.title || "";
    main.appendChild(title);
    if (opts.text) {
      const text = document.createElement("div");
      text.className = "text"; text.textContent = opts.text; main.appendChild(text);
    }
    const close = document.createElement("button");
    close.type = "button"; close.setAttribute("aria-label", "Dismiss"); close.textContent = "✕";
    close.addEventListener("click", function () { dismiss(el); });
    el.append(icon, main, close);
    region.appendChild(el);
    while (region.children.length > 5) region.removeChild(region.firstElementChild);
    setTimeout(function () { dismiss(el); }, opts.sticky ? 15000 : 6000);
    return el;
  }
  function dismiss(el) {
    if (!el.isConnected || el.classList.contains("leaving")) return;
    el.classList.add("leaving");
    const gone = function () { el.remove(); };
    el.addEventListener("animationend", gone);
    setTimeout(gone, 400); // reduced motion: no animationend
  }
  TM.toast = toast;
  // a server response can ask for a toast: HX-Trigger: {"tm-toast": {"kind": ..., "title": ..., "text": ...}}
  body.addEventListener("tm-toast", function (e) { toast(e.detail || {}); });

  function qty(v) { return v == null ? "" : String(v).replace(/(\.\d*?[1-9])0+$|\.0+$/, "$1"); }
  function toastFor(frame) {
    const d = frame.data || {};
    if (frame.type === "FILL_NOTIFICATION") {
      const o = d.order || {}, f = d.fill || {};
      const done = o.status === "FILLED";
      toast({
        kind: "fill",
        title: (done ? "Filled " : "Partial fill ") + (o.side || "") + " " + qty(f.quantity) + " " + (o.symbol || ""),
        text: "@ " + qty(f.price) + " · order " + o.id + " " + qty(o.filled_quantity) + "/" + qty(o.quantity),
      });
    } else if (frame.type === "RISK_ALERT") {
      if (d.to) {
        toast({ kind: d.to === "ACTIVE" ? "info" : "bad", title: "Trading " + d.to, text: "was " + d.from + (d.actor ? " · by " + d.actor : ""), sticky: d.to !== "ACTIVE" });
      } else {
        const sev = String(d.severity || "").toUpperCase();
        toast({ kind: sev === "CRITICAL" || sev === "HIGH" ? "bad" : "warn", title: "Risk alert: " + (d.rule || "") + (d.symbol ? " " + d.symbol : ""), text: d.message || "", sticky: true });
      }
    } else if (frame.type === "BROKER_STATUS" && d.new_status && d.new_status !== d.old_status) {
      const kind = d.new_status === "CONNECTED" ? "info" : d.new_status === "DEGRADED" ? "warn" : "bad";
      toast({ kind: kind, title: (d.label || d.broker_name || "Broker") + " " + d.new_status, text: d.reason || "" });
    }
  }

  // a status badge outside the live lists (e.g. "Order 5 ACCEPTED" after placing) follows the order:
  // <span class="badge" data-order-status="5">
  const BADGE = { FILLED: "ok", PARTIALLY_FILLED: "warn", REJECTED: "bad", CANCELLED: "dim", EXPIRED: "dim" };
  function followStatus(order) {
    if (!order.id || !order.status) return;
    document.querySelectorAll('[data-order-status="' + order.id + '"]').forEach(function (el) {
      el.textContent = order.status;
      el.className = "badge " + (BADGE[order.status] || "info");
    });
  }

  // --- the stream --------------------------------------------------------------------------------
  const live = document.getElementById("live");
  function setLive(state, text) {
    if (!live) return;
    live.dataset.state = state;
    const t = live.querySelector(".live-text");
    if (t) t.textContent = text;
  }
  let delay = 500, everOpen = false;
  function connect() {
    const path = body.dataset.stream;
    if (!path || !window.WebSocket) return;
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
    ws.addEventListener("open", function () {
      ws.send(JSON.stringify({ action: "subscribe", topics: TOPICS }));
    });
    ws.addEventListener("message", function (e) {
      let frame;
      try { frame = JSON.parse(e.data); } catch (err) { return; }
      if (frame.type === "SUBSCRIBED") {
        delay = 500;
        setLive("open", "Live");
        body.dataset.streamReady = "1";
        if (everOpen) TOPICS.forEach(notify); // catch up after a reconnect
        everOpen = true;
        return;
      }
      if (frame.type === "ERROR") { console.warn("stream:", frame.error); return; }
      body.dispatchEvent(new CustomEvent("tm-frame", { detail: frame }));
      toastFor(frame);
      if (frame.type === "ORDER_UPDATE") followStatus((frame.data || {}).order || frame.data || {});
      const topic = { ORDER_UPDATE: "orders", ALGO_PROGRESS: "orders", FILL_NOTIFICATION: "fills", POSITION_UPDATE: "positions", POSITIONS_MARKED: "positions", RISK_ALERT: "risk", BROKER_STATUS: "brokers" }[frame.type];
      if (topic) notify(topic);
      if (frame.type === "FILL_NOTIFICATION") { notify("orders"); notify("positions"); }
    });
    ws.addEventListener("close", function (e) {
      delete body.dataset.streamReady;
      if (e.code === 4401) { setLive("closed", "Signed out"); return; }
      setLive("closed", "Reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    });
  }

  // --- fields shown for some values of another field --------------------------------------------
  // <div data-show-when="order_type=LIMIT,STOP_LIMIT"> is shown only while the form's order_type
  // has one of those values; its inputs are disabled while hidden, so they are not submitted.
  function applyShowWhen(root) {
    (root || document).querySelectorAll("[data-show-when]").forEach(function (el) {
      const spec = el.dataset.showWhen.split("=");
      const form = el.closest("form");
      if (!form || !form.elements[spec[0]]) return;
      const control = form.elements[spec[0]];
      const value = control.type === "checkbox" ? String(control.checked) : control.value;
      const show = spec[1].split(",").indexOf(value) !== -1;
      el.hidden = !show;
      el.querySelectorAll("input, select, textarea").forEach(function (i) { i.disabled = !show; });
    });
  }
  TM.applyShowWhen = applyShowWhen;
  document.addEventListener("change", function (e) { if (e.target.form) applyShowWhen(e.target.form); });
  document.addEventListener("htmx:afterSettle", function (e) { applyShowWhen(e.target); });

  applyShowWhen(document);
  connect();
})();
