// A Streamlit component without a build step: it speaks the component protocol (version 1) by
// postMessage. Streamlit keeps this iframe while the page reruns, so the 3Dmol.js viewer (and
// its WebGL context) is made once; each render message replays a scene (viz/viewer.py, Scene)
// on it. The structure's text is sent only to an iframe that does not hold it (ui.show_view):
// a scene without it that names text this iframe lacks (a new iframe) asks for it back. The text
// is parsed again only when its hash changes, and the user's rotation is kept across residues of
// one structure, and across a reload of the page (in the tab's sessionStorage, per structure).
(function () {
  "use strict";

  // Whether WebGL is drawn by the CPU (SwiftShader, llvmpipe, ...): its renderer says so.
  function softwareGL() {
    try {
      var gl = document.createElement("canvas").getContext("webgl");
      if (!gl) return true;
      var info = gl.getExtension("WEBGL_debug_renderer_info");
      var name = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
      var lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext(); // a probe: give its context back at once
      return /swiftshader|llvmpipe|software|softpipe/i.test(String(name));
    } catch (e) {
      return true;
    }
  }

  var viewer = null; // made on the first render, kept for the page's life
  var baseHash = null; // the hash of the text that model 0 holds
  var text = null; // the structure text last received, and its hash: a scene may come without
  var textHash = null; // it, and is drawn after 3Dmol.js has loaded
  var instance = Math.random().toString(36).slice(2); // this iframe, in its requests for text
  var asks = 0;
  var structure = null; // the structure (result) the last scene belonged to
  var script = null; // a promise: 3Dmol.js, loaded once from the app's own static folder
  var renders = 0;
  var ROTATION_KEY = "qfitlatent-rotation:";

  // The rotation (a quaternion: getView()[4..8]) the user last left on `key`'s structure in
  // this tab, or null.
  function savedRotation(key) {
    try {
      var q = JSON.parse(window.sessionStorage.getItem(ROTATION_KEY + key) || "null");
      return Array.isArray(q) && q.length === 4 ? q : null;
    } catch (e) {
      return null; // storage switched off: the view starts unrotated, as without this
    }
  }

  function saveRotation() {
    if (!viewer || structure === null) return;
    try {
      var q = viewer.getView().slice(4, 8);
      window.sessionStorage.setItem(ROTATION_KEY + structure, JSON.stringify(q));
    } catch (e) {}
  }

  function send(type, data) {
    var msg = Object.assign({ isStreamlitMessage: true, type: type }, data || {});
    window.parent.postMessage(msg, "*");
  }

  // The scene came without its structure's text, which this iframe does not hold: a new iframe
  // on a page whose server still counts the old one as holding it. Ask for it: a new value makes
  // Streamlit rerun, and the server answers a request it has not answered with the text.
  function askForText(hash) {
    window.qfitAsks = ++asks;
    send("streamlit:setComponentValue", {
      value: { ask: instance + ":" + asks, base_hash: hash },
      dataType: "json",
    });
  }

  function load(url) {
    if (!script) {
      script = new Promise(function (resolve, reject) {
        var tag = document.createElement("script");
        tag.src = url;
        tag.onload = resolve;
        tag.onerror = function () {
          reject(new Error("the 3D viewer's script (" + url + ") could not be loaded"));
        };
        document.head.appendChild(tag);
      });
    }
    return script;
  }

  // A 3Dmol viewer that draws again only when its size changes. 3Dmol resizes, and so draws the
  // whole scene, on every window resize, every ResizeObserver and every IntersectionObserver
  // callback: right after it is made both observers fire once, and the iframe's own resize
  // (Streamlit setting its height) a third time, 0.3-0.4 s of redrawing an unchanged scene on
  // software WebGL while the page is opening.
  function quietViewer(el, config) {
    var add = window.addEventListener;
    window.addEventListener = function (type) {
      if (type !== "resize") return add.apply(window, arguments);
    };
    var made;
    try {
      made = $3Dmol.createViewer(el, config);
    } finally {
      window.addEventListener = add;
    }
    if (made.divwatcher) made.divwatcher.disconnect();
    if (made.intwatcher) made.intwatcher.disconnect();
    var size = [el.clientWidth, el.clientHeight];
    new ResizeObserver(function () {
      var now = [el.clientWidth, el.clientHeight];
      if (now[0] !== size[0] || now[1] !== size[1]) {
        size = now;
        made.resize();
      }
    }).observe(el);
    return made;
  }

  function draw(args) {
    var start = performance.now();
    var el = document.getElementById("viewer");
    if (el.style.height !== args.height + "px") {
      el.style.height = args.height + "px";
      if (viewer) viewer.resize();
    }
    if (!viewer) {
      // Antialiasing only on a GPU: 3Dmol's draws at twice the size in each direction and
      // scales down, four times the pixels; on software WebGL (a server's headless browser, a
      // machine without a GPU driver) a draw took 3-4 times as long (0.9-1.2 s for the
      // example's scene against 0.24-0.34 s). A GPU draws it in milliseconds either way.
      viewer = quietViewer(el, { backgroundColor: "white", antialias: !softwareGL() });
      window.qfitViewer = viewer; // for tests and for a curious user's console
      // A drag ends: keep the rotation for a reload (3Dmol has turned the view by then).
      ["mouseup", "touchend"].forEach(function (type) {
        el.addEventListener(type, function () {
          setTimeout(saveRotation, 0);
        });
      });
    }
    var sameStructure = structure !== null && structure === args.structure;
    var rotation = sameStructure ? viewer.getView().slice(4, 8) : savedRotation(args.structure);
    // 3Dmol draws the whole scene after most calls (zoomTo, center, addLabel, setBackgroundColor,
    // removeAll*...): a few hundred ms each on software WebGL. Drawing is switched off while the
    // scene is replayed and done once at the end.
    var render = viewer.render, show = viewer.show;
    viewer.render = viewer.show = function () {
      return viewer;
    };
    try {
      if (args.base_hash !== baseHash) {
        viewer.removeAllModels();
        viewer.addModel(args.base, "pdb");
        baseHash = args.base_hash;
      } else {
        // Keep model 0; drop the conformers (removed from the end, so 3Dmol's list stays compact
        // and the scene's next addModel is model 1 again).
        for (var m = viewer.models.length - 1; m >= 1; m--) viewer.removeModel(m);
      }
      if (textHash === baseHash) text = null; // model 0 holds it (tens of MB: once is enough)
      viewer.removeAllLabels();
      viewer.removeAllShapes();
      args.calls.forEach(function (call) {
        var method = viewer[call[0]];
        if (typeof method !== "function") throw new Error("3Dmol has no method " + call[0]);
        method.apply(viewer, call[1]);
      });
      if (rotation) {
        // The scene centred and framed the new residue; the user's rotation stays.
        var view = viewer.getView();
        for (var k = 0; k < 4; k++) view[4 + k] = rotation[k];
        viewer.setView(view);
      }
    } finally {
      viewer.render = render;
      viewer.show = show;
    }
    viewer.render();
    document.getElementById("problem").hidden = true;
    structure = args.structure;
    window.qfitFocus = args.focus;
    window.qfitRenders = ++renders;
    window.qfitDrawMs = performance.now() - start; // the last scene's cost here (benchmarks)
    window.qfitReady = true;
  }

  function problem(text) {
    var box = document.getElementById("problem");
    box.textContent = text;
    box.hidden = false;
  }

  window.addEventListener("message", function (event) {
    var msg = event.data;
    if (!msg || msg.type !== "streamlit:render") return;
    var args = msg.args;
    send("streamlit:setFrameHeight", { height: args.height + 8 });
    if (args.base != null) {
      text = args.base;
      textHash = args.base_hash;
    } else if (args.base_hash === textHash) {
      args.base = text; // null once model 0 holds it; else a draw still to come parses it
    } else {
      askForText(args.base_hash); // the scene cannot be drawn without it: keep the last one
      return;
    }
    load(args.js_url)
      .then(function () {
        draw(args);
      })
      .catch(function (err) {
        problem(String(err.message || err));
      });
  });

  send("streamlit:componentReady", { apiVersion: 1 });
})();
