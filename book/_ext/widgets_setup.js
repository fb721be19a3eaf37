// Loaded on every page that carries widget state, after require.js and
// before the widget manager (embed-amd.js); see book/_ext/offline_assets.py.
(function () {
  "use strict";

  // 1. embed-amd.js defines the widget modules (@jupyter-widgets/base,
  //    controls, html-manager/dist/libembed-amd, ...), and each finds its icon
  //    fonts in the folder RequireJS gives as that module's address. Without
  //    paths, RequireJS places them beside the page (notebooks/@jupyter-
  //    widgets/...), where the fonts are not: put them all in the folder of
  //    embed-amd.js and its fonts (the longest matching prefix wins).
  var src = document.currentScript.src;
  var manager = src.slice(0, src.lastIndexOf("/") + 1) + "vendor/html-manager";
  window.require.config({
    paths: {
      "@jupyter-widgets": manager,
      "@jupyter-widgets/html-manager/dist": manager,
    },
  });

  // 2. The widgets typeset maths in their labels with the MathJax 2 call
  //    MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]), which throws
  //    under MathJax 3 (no MathJax.Hub). Give whatever window.MathJax holds
  //    (Sphinx's configuration, then MathJax 3 itself) a non-enumerable Hub
  //    whose Queue typesets the element with MathJax 3 once it is ready.
  function typesetWhenReady(element, triesLeft) {
    var mathjax = window.MathJax;
    if (mathjax && mathjax.typesetPromise && mathjax.startup &&
        mathjax.startup.promise) {
      mathjax.startup.promise.then(function () {
        return mathjax.typesetPromise([element]);
      });
    } else if (triesLeft > 0) {
      window.setTimeout(typesetWhenReady, 100, element, triesLeft - 1);
    }
  }
  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
          typesetWhenReady(job[2], 300);
        }
      }
    },
  };
  function withHub(value) {
    if (value && typeof value === "object" && !("Hub" in value)) {
      Object.defineProperty(value, "Hub", {
        value: hub, enumerable: false, configurable: true,
      });
    }
    return value;
  }
  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); },
  });
})();
