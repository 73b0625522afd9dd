// A Streamlit component without a build step (component protocol version 1, by postMessage):
// the selected residue's χ figures. Streamlit keeps this iframe while the page reruns, so each
// figure's div stays and a new residue is one Plotly.react into it. As a st.plotly_chart each
// residue change mounted a new chart (its element id comes from the figure) and drew every
// figure twice (once more after Streamlit's theme pass): 0.2-0.5 s of the browser's one thread
// per change on 2 cores.
(function () {
  "use strict";

  var CONFIG = { displaylogo: false, responsive: false };
  var shown = {}; // figure name -> the JSON text it last drew, so an unchanged figure is kept
  var renders = 0;
  var draws = 0; // Plotly.react calls: an unchanged figure is not drawn again

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
      window.qfitChiDraws = ++draws;
      return Plotly.react(el, fig.data, fig.layout, CONFIG);
    });
    Object.keys(shown).forEach(function (name) {
      if (!names[name]) div(name).hidden = true;
    });
    return Promise.all(drawing).then(function () {
      var height = document.getElementById("plots").getBoundingClientRect().height;
      send("streamlit:setFrameHeight", { height: Math.ceil(height) });
      document.getElementById("problem").hidden = true;
      window.qfitChiRenders = ++renders;
    });
  }

  window.addEventListener("message", function (event) {
    var msg = event.data;
    if (!msg || msg.type !== "streamlit:render") return;
    var args = msg.args;
    load(args.js_url)
      .then(function () {
        return draw(args.figures);
      })
      .catch(function (err) {
        var box = document.getElementById("problem");
        box.textContent = "The χ plots could not be drawn: " + String(err.message || err);
        box.hidden = false;
        send("streamlit:setFrameHeight", { height: 60 });
      });
  });

  send("streamlit:componentReady", { apiVersion: 1 });
})();
