// Live feed for the items page: a WebSocket to /ws for the shown table, rows updated in
// place or added on top, reconnecting with backoff after the server restarts. Data is only
// ever written with textContent, never as HTML.
(function () {
  "use strict";
  const table = document.body.dataset.liveTable;
  const grid = document.getElementById("items");
  const status = document.getElementById("live-status");
  if (!table || !grid) return;

  const pk = grid.dataset.pk;
  const sk = grid.dataset.sk;
  const filter = grid.dataset.filter || "";
  let delay = 500;

  function setStatus(text, cls) {
    status.hidden = false;
    status.textContent = text;
    status.className = "badge live " + cls;
  }

  function columns() {
    return Array.from(grid.tHead.rows[0].cells).map((c) => c.dataset.attr);
  }

  function addColumn(name) {
    const th = document.createElement("th");
    th.dataset.attr = name;
    th.textContent = name;
    grid.tHead.rows[0].appendChild(th);
    for (const row of grid.tBodies[0].rows) row.insertCell(-1).className = "empty";
  }

  function display(v) {
    if (!v) return "";
    if (v.kind === "encrypted") {
      return v.error ? "encrypted (" + v.error + ")" : "encrypted (key " + (v.keyId || "?") + " v" + (v.keyVersion || 0) + ")";
    }
    if (typeof v.value === "string") return v.value;
    return JSON.stringify(v.value);
  }

  function itemHref(key) {
    let href = "/tables/" + encodeURIComponent(table) + "/item?pk=" + encodeURIComponent(key[pk]);
    if (sk) href += "&sk=" + encodeURIComponent(key[sk]);
    return href;
  }

  function findRow(label) {
    for (const row of grid.tBodies[0].rows) if (row.dataset.key === label) return row;
    return null;
  }

  function apply(change) {
    if (change.table !== table) return;
    const keyValue = String(change.key[pk] ?? "");
    if (filter && !keyValue.startsWith(filter)) return;
    let row = findRow(change.keyLabel);
    if (change.event === "REMOVE" || !change.item) {
      if (row) row.classList.add("removed");
      return;
    }
    for (const name of Object.keys(change.item)) {
      if (!columns().includes(name)) addColumn(name);
    }
    const cols = columns();
    if (!row) {
      row = grid.tBodies[0].insertRow(0);
      row.dataset.key = change.keyLabel;
      for (let i = 0; i < cols.length; i++) row.insertCell(-1);
      const a = document.createElement("a");
      a.href = itemHref(change.key);
      a.textContent = keyValue;
      row.cells[0].appendChild(a);
    }
    row.classList.remove("removed");
    row.classList.add("changed");
    for (let i = 1; i < cols.length; i++) {
      const v = change.item[cols[i]];
      const cell = row.cells[i] || row.insertCell(-1);
      cell.textContent = display(v);
      cell.className = v ? "kind-" + v.kind : "empty";
      if (v) cell.dataset.kind = v.kind;
    }
    const none = document.querySelector("p.none");
    if (none) none.remove();
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/ws?tables=" + encodeURIComponent(table));
    let dropped = false;
    ws.onopen = () => {
      delay = 500;
      setStatus("live", "on");
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (msg.type === "change") apply(msg);
      else if (msg.type === "dropped") {
        dropped = true;
        setStatus("dropped: " + msg.reason, "off");
      }
    };
    ws.onclose = () => {
      if (!dropped) setStatus("reconnecting…", "off");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
