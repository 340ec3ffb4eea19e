// Identity Console: small progressive enhancements. Every page works without them.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    // Copy buttons: data-copy="#selector".
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source) return;
        var text = source.textContent;
        var done = function () { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () {});
        } else {
          var area = document.createElement("textarea");
          area.value = text; document.body.appendChild(area); area.select();
          try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selectable */ }
          document.body.removeChild(area);
        }
      });
    });
    // The certificate mode switch shows the panel of the chosen mode.
    var switcher = document.querySelector("[data-mode-switch]");
    if (switcher) {
      var update = function () {
        var checked = switcher.querySelector("input:checked");
        var mode = checked ? checked.value : "jwks";
        document.querySelectorAll("[data-mode-panel]").forEach(function (panel) {
          panel.hidden = panel.getAttribute("data-mode-panel") !== mode;
        });
      };
      switcher.addEventListener("change", update);
      update();
    }
    // Forms that ask before they act: data-confirm="question".
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();
