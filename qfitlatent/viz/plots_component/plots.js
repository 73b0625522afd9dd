// A Streamlit component without a build step (component protocol version 1, by postMessage):
// plotly figures that stay for the page's life (the profile, the χ figures). Streamlit keeps
// this iframe while the page reruns, so each figure's div stays and a new figure is one
// Plotly.react into it; a figure whose JSON has not changed is not drawn again. As
// st.plotly_chart each new figure mounted a new chart (its element id comes from the figure)
// and drew it twice (once more after Streamlit's theme pass), and clearing a bar clicked on the
// profile meant a new chart: 0.2-0.5 s of the browser's one thread per residue on 2 cores.
// A click on a point of a figure shown with `clickable` is the component's value:
// {figure, customdata, click, view}: `click` counts the clicks, so the same bar twice is two
// picks, and `view` names this iframe's life, as the count starts again in a new one.
(function () {
  "use strict";

  var CONFIG = { displaylogo: false, responsive: true }; // a figure without a width follows the page
  // Where a click picks a residue: plotly takes a second click within doubleClickDelay (500 ms)
  // of the first as a double click (axes reset, no plotly_click), and the profile stays across
  // residue changes now, so a bar clicked within half a second of the last was lost. The home
  // button of the mode bar still resets the axes.
  var CLICK_CONFIG = Object.assign({}, CONFIG, { doubleClickDelay: 1 });
  var shown = {}; // figure name -> the JSON text it last drew
  var clickable = false;
  var clicks = 0;
  var VIEW = Math.random().toString(36).slice(2); // this iframe's life: its clicks count anew
  var renders = 0;
  var draws = 0; // Plotly.react calls

  function send(type, data) {
    var msg = Object.assign({ isStreamlitMessage: true, type: type }, data || {});
    window.parent.postMessage(msg, "*");
  }

  var script = null; // a promise: plotly.js, loaded once

  function load(url) {
    if (!script) {
      script = new Promise(function (resolve, reject) {
        var tag = document.createElement("script");
        tag.src = url;
        tag.onload = resolve;
        tag.onerror = function () {
          reject(new Error("plotly.js (" + url + ") could not be loaded"));
        };
        document.head.appendChild(tag);
      });
    }
    return script;
  }

  function div(name) {
    var el = document.getElementById("figure-" + name);
    if (!el) {
      el = document.createElement("div");
      el.id = "figure-" + name;
      document.getElementById("plots").appendChild(el);
    }
    return el;
  }

  function listen(el, name) {
    if (el.qfitListens) return; // plotly keeps its handlers across react calls
    el.qfitListens = true;
    el.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (!clickable || !point || point.customdata === undefined) return;
      send("streamlit:setComponentValue", {
        value: { figure: name, customdata: point.customdata, click: ++clicks, view: VIEW },
        dataType: "json",
      });
    });
  }

  // figures: [[name, figure JSON text], ...] in page order; a name not in the list is hidden
  // (a residue with one χ has no torus) and drawn again when it is back. Resolves once all are
  // drawn, with the frame's new height sent.
  function draw(figures) {
    var names = {};
    var drawing = figures.map(function (item) {
      var name = item[0], text = item[1], el = div(name);
      names[name] = true;
      el.hidden = false;
      if (shown[name] === text) return el;
      shown[name] = text;
      var fig = JSON.parse(text);
      window.qfitPlotDraws = ++draws;
      var config = clickable ? CLICK_CONFIG : CONFIG;
      return Plotly.react(el, fig.data, fig.layout, config).then(function () {
        listen(el, name);
      });
    });
    Object.keys(shown).forEach(function (name) {
      if (!names[name]) div(name).hidden = true;
    });
    return Promise.all(drawing).then(function () {
      var height = document.getElementById("plots").getBoundingClientRect().height;
      send("streamlit:setFrameHeight", { height: Math.ceil(height) });
      document.getElementById("problem").hidden = true;
      window.qfitPlotRenders = ++renders;
    });
  }

  window.addEventListener("message", function (event) {
    var msg = event.data;
    if (!msg || msg.type !== "streamlit:render") return;
    var args = msg.args;
    clickable = !!args.clickable;
    load(args.js_url)
      .then(function () {
        return draw(args.figures);
      })
      .catch(function (err) {
        var box = document.getElementById("problem");
        box.textContent = "These plots could not be drawn: " + String(err.message || err);
        box.hidden = false;
        send("streamlit:setFrameHeight", { height: 60 });
      });
  });

  send("streamlit:componentReady", { apiVersion: 1 });
})();
