// Loaded on pages with ipywidgets, after require.js and before the widget manager
// (see nb_ipywidgets_js in _config.yml). Two fixes for rendering saved widgets offline:
(function () {
  "use strict";
  // This file sits in _static/; the manager and its icon fonts in _static/npm/html-manager/dist/.
  var here = document.currentScript.src;
  var dist = new URL("npm/html-manager/dist/", here).href;

  // 1. The manager finds its fonts next to the URL that require.js gives its AMD
  //    module. By default that is relative to the page (chapters/@jupyter-widgets/...),
  //    which does not exist: name the real folder.
  if (window.require && window.require.config) {
    window.require.config({paths: {"@jupyter-widgets/html-manager/dist": dist.replace(/\/$/, "")}});
  }
  window.__jupyter_widgets_assets_path__ = dist;

  // 2. ipywidgets 8 typesets labels with MathJax 2's MathJax.Hub.Queue, but the book
  //    loads MathJax 3, which has no Hub, so every label throws. Give each MathJax
  //    object a Hub whose Queue typesets the element with MathJax 3 once it is ready.
  function queue() {
    var elements = [];
    for (var i = 0; i < arguments.length; i++) {
      var command = arguments[i];
      if (Array.isArray(command) && command[0] === "Typeset" && command[2]) {
        elements.push(command[2]);
      }
    }
    var typeset = function () {
      var mj = window.MathJax;
      return mj && mj.typesetPromise ? mj.typesetPromise(elements) : null;
    };
    var mj = window.MathJax;
    var ready = mj && mj.startup && mj.startup.promise ? mj.startup.promise
      : document.readyState === "complete" ? Promise.resolve()
      : new Promise(function (resolve) { window.addEventListener("load", resolve); });
    return ready.then(typeset).catch(function (error) {
      console.warn("widget label not typeset:", error);
    });
  }
  var current = window.MathJax;
  function withHub(value) {
    if (value && typeof value === "object" && !value.Hub) {
      value.Hub = {Queue: queue};
    }
    return value;
  }
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); },
  });
  withHub(current);
})();
