// A Streamlit component without a build step (component protocol version 1, by postMessage):
// the flexibility table (viz/table.py). Streamlit keeps this iframe while the page reruns, so
// the rows are sent once and kept: a render without rows that names rows this iframe lacks (a
// new iframe) asks for them back, as the viewer does for its text. Only the rows in sight are in
// the page (50,000 residues scroll as 300 do), a header click sorts, and the residue shown,
// however it was chosen, is highlighted. A click on a row is the component's value at once:
// {row, click, view, ask}: `row` is its position in the rows as sent, `click` counts the clicks
// within this iframe's life (`view`), so the same row twice is two picks, and `ask` repeats the
// last request for rows so that a click does not read as a new one.
(function () {
  "use strict";

  var ROW = 28; // px, every row (index.html's th, td height): which rows are in sight
  var MARGIN = 10; // rows drawn beyond those in sight, so a scroll shows no blank
  var columns = [];
  var rows = []; // [[value per column] per residue], as sent
  var hash = null; // of the rows held
  var order = []; // positions in `rows`, in the order shown
  var sortBy = -1; // the column sorted by, -1: as sent (most flexible first)
  var sortDir = 0; // 1 ascending, -1 descending
  var selected = null; // the position highlighted
  var selectedArg = null; // the last `selected` the server sent: a new one is scrolled to
  var drawn = null; // "first:last:selected" of the rows in the page: nothing changed, no work
  var VIEW = Math.random().toString(36).slice(2);
  var clicks = 0;
  var asks = 0;
  var lastAsk = null;
  var renders = 0;
  var wrap = document.getElementById("wrap");
  var body = document.getElementById("body");

  function send(type, data) {
    var msg = Object.assign({ isStreamlitMessage: true, type: type }, data || {});
    window.parent.postMessage(msg, "*");
  }

  function ask(h) {
    lastAsk = VIEW + ":" + ++asks;
    window.qfitTableAsks = asks;
    send("streamlit:setComponentValue", { value: { ask: lastAsk, hash: h }, dataType: "json" });
  }

  function text(v, col) {
    if (v === null || v === undefined) return "–";
    if (col.kind === "num" || col.kind === "bar") return v.toFixed(col.digits) + col.suffix;
    return String(v);
  }

  function cell(v, col) {
    var td = document.createElement("td");
    if (col.kind === "bar") {
      var bar = document.createElement("div"), track = document.createElement("span");
      var fill = document.createElement("i"), label = document.createElement("b");
      bar.className = "bar";
      fill.style.width = (v === null ? 0 : Math.max(0, Math.min(1, v)) * 100) + "%";
      label.style.fontWeight = "normal";
      label.textContent = text(v, col);
      track.appendChild(fill);
      bar.appendChild(track);
      bar.appendChild(label);
      td.appendChild(bar);
    } else {
      td.textContent = text(v, col);
      if (col.kind !== "text") td.className = "n";
    }
    return td;
  }

  function spacer(height) {
    var tr = document.createElement("tr"), td = document.createElement("td");
    tr.className = "spacer";
    td.colSpan = columns.length;
    td.style.height = height + "px";
    tr.appendChild(td);
    return tr;
  }

  // The rows in sight (and MARGIN more each side) between two spacers that keep the scroll
  // height of all of them.
  function draw() {
    var head = document.getElementById("head").offsetHeight;
    var top = Math.max(0, wrap.scrollTop);
    var first = Math.max(0, Math.floor(top / ROW) - MARGIN);
    var last = Math.min(order.length, Math.ceil((top + wrap.clientHeight - head) / ROW) + MARGIN);
    var key = first + ":" + last + ":" + selected;
    if (key === drawn) return;
    drawn = key;
    var part = document.createDocumentFragment();
    part.appendChild(spacer(first * ROW));
    for (var k = first; k < last; k++) {
      var pos = order[k], tr = document.createElement("tr");
      tr.className = "row" + (pos === selected ? " selected" : "");
      tr.dataset.row = pos;
      tr.tabIndex = 0;
      for (var c = 0; c < columns.length; c++) tr.appendChild(cell(rows[pos][c], columns[c]));
      part.appendChild(tr);
    }
    part.appendChild(spacer((order.length - last) * ROW));
    body.replaceChildren(part);
  }

  function header() {
    var cols = document.getElementById("cols"), head = document.getElementById("head");
    cols.replaceChildren();
    head.replaceChildren();
    columns.forEach(function (col, c) {
      var colEl = document.createElement("col");
      colEl.style.width = col.kind === "bar" ? "150px" : col.kind === "text" ? "110px" : "";
      cols.appendChild(colEl);
      var th = document.createElement("th");
      th.textContent = col.name + (c === sortBy ? (sortDir > 0 ? " ▲" : " ▼") : "");
      th.title = col.help || col.name;
      if (col.kind !== "text" && col.kind !== "bar") th.className = "n";
      th.addEventListener("click", function () {
        sortOn(c);
      });
      head.appendChild(th);
    });
  }

  // A header click: descending (numbers; text ascending), then the other way, then as sent.
  function sortOn(c) {
    var firstDir = columns[c].kind === "text" ? 1 : -1;
    if (sortBy !== c) {
      sortBy = c;
      sortDir = firstDir;
    } else if (sortDir === firstDir) {
      sortDir = -firstDir;
    } else {
      sortBy = -1;
      sortDir = 0;
    }
    sorted();
    header();
    drawn = null;
    draw();
  }

  function sorted() {
    order = rows.map(function (_, k) {
      return k;
    });
    if (sortBy < 0) return;
    var c = sortBy, dir = sortDir;
    order.sort(function (a, b) {
      var x = rows[a][c], y = rows[b][c];
      if (x === y) return a - b;
      if (x === null) return 1; // missing values last, either way
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }

  // Scroll the highlighted row into sight, unless it is.
  function reveal() {
    var k = order.indexOf(selected);
    if (k < 0) return;
    var head = document.getElementById("head").offsetHeight;
    var inSight = wrap.clientHeight - head;
    if (k * ROW < wrap.scrollTop || (k + 1) * ROW > wrap.scrollTop + inSight)
      wrap.scrollTop = Math.max(0, k * ROW - inSight / 2);
  }

  function pick(tr) {
    var pos = Number(tr.dataset.row);
    selected = pos;
    window.qfitTableClicks = ++clicks;
    draw();
    send("streamlit:setComponentValue", {
      value: { row: pos, click: clicks, view: VIEW, ask: lastAsk },
      dataType: "json",
    });
  }

  body.addEventListener("click", function (event) {
    var tr = event.target.closest("tr.row");
    if (tr) pick(tr);
  });
  body.addEventListener("keydown", function (event) {
    var tr = event.target.closest("tr.row");
    if (tr && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      pick(tr);
    }
  });
  var pending = false;
  wrap.addEventListener("scroll", function () {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      draw();
    });
  });

  window.addEventListener("message", function (event) {
    var msg = event.data;
    if (!msg || msg.type !== "streamlit:render") return;
    var args = msg.args;
    try {
      if (args.rows) {
        var same = args.columns.length === columns.length && args.columns.every(function (c, k) {
          return c.name === columns[k].name;
        });
        columns = args.columns;
        rows = args.rows;
        hash = args.hash;
        if (!same) {
          sortBy = -1;
          sortDir = 0;
        }
        sorted(); // the user's sort stays while the columns do (new settings, same residues)
        header();
        drawn = null;
        window.qfitTableData = (window.qfitTableData || 0) + 1;
      } else if (args.hash !== hash) {
        ask(args.hash); // rows this iframe does not hold: the last ones stay until they come
        return;
      }
      wrap.style.height = args.height + "px";
      send("streamlit:setFrameHeight", { height: args.height });
      if (args.selected !== selectedArg) {
        selectedArg = selected = args.selected;
        reveal();
      }
      draw();
      document.getElementById("problem").hidden = true;
      window.qfitTableRenders = ++renders;
    } catch (err) {
      var box = document.getElementById("problem");
      box.textContent = "The table could not be drawn: " + String(err.message || err);
      box.hidden = false;
      send("streamlit:setFrameHeight", { height: 60 });
    }
  });

  send("streamlit:componentReady", { apiVersion: 1 });
})();
