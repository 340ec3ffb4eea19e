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
    // Inline validation: a field's errors from the server as soon as the field is left.
    document.querySelectorAll("form[data-validate-url]").forEach(function (form) {
      var touched = {};
      var show = function (name, errors) {
        var input = form.elements[name];
        if (!input || !input.id) return;
        var row = input.closest(".form-row");
        var list = document.getElementById(input.id + "_errors");
        if (!errors.length) {
          if (list) list.remove();
          if (row) row.classList.remove("errors");
          input.removeAttribute("aria-invalid");
          return;
        }
        if (!list) {
          list = document.createElement("ul");
          list.className = "errorlist";
          list.id = input.id + "_errors";
          list.setAttribute("aria-live", "polite");
          input.insertAdjacentElement("afterend", list);
        }
        list.innerHTML = "";
        errors.forEach(function (text) {
          var item = document.createElement("li");
          item.textContent = text;
          list.appendChild(item);
        });
        if (row) row.classList.add("errors");
        input.setAttribute("aria-invalid", "true");
      };
      form.addEventListener("change", function (event) {
        if (!event.target.name) return;
        touched[event.target.name] = true;
        fetch(form.getAttribute("data-validate-url"), {
          method: "POST", body: new FormData(form), credentials: "same-origin",
          headers: {"X-Requested-With": "fetch"}
        }).then(function (response) {
          return response.ok ? response.json() : null;
        }).then(function (data) {
          if (!data) return;
          Object.keys(touched).forEach(function (name) { show(name, data.errors[name] || []); });
        }).catch(function () { /* Next still validates on the server */ });
      });
    });
    // A certificate's details as soon as it is pasted or chosen: the server inspects it (the same
    // checks as Finish and Add certificate) and answers the details, or the problem, to show below.
    document.querySelectorAll("form[data-inspect-url]").forEach(function (form) {
      var preview = form.querySelector("[data-certificate-preview]");
      var text = form.elements["pem"], file = form.elements["pem_file"];
      if (!preview || !text) return;
      var pending = null;
      var inspect = function () {
        var body = new FormData();
        body.append("csrfmiddlewaretoken", form.elements["csrfmiddlewaretoken"].value);
        if (file && file.files && file.files.length) body.append("pem_file", file.files[0]);
        else if (text.value.trim()) body.append("pem", text.value);
        else { preview.innerHTML = ""; return; }
        fetch(form.getAttribute("data-inspect-url"), {
          method: "POST", body: body, credentials: "same-origin", headers: {"X-Requested-With": "fetch"}
        }).then(function (response) {
          return response.ok ? response.json() : null;
        }).then(function (data) {
          if (!data) return;
          if (data.ok) {
            preview.innerHTML = data.html;  // rendered by the server's template, escaped there
            if (file && file.files && file.files.length) text.value = data.pem;
          } else {
            preview.innerHTML = "";
            var list = document.createElement("ul");
            list.className = "errorlist";
            list.setAttribute("data-testid", "certificate-problem");
            data.errors.forEach(function (message) {
              var item = document.createElement("li");
              item.textContent = message;
              list.appendChild(item);
            });
            preview.appendChild(list);
          }
        }).catch(function () { /* Check certificate and Finish still inspect on the server */ });
      };
      text.addEventListener("input", function () {
        clearTimeout(pending);
        pending = setTimeout(inspect, 400);
      });
      if (file) file.addEventListener("change", inspect);
    });
    // Forms that ask before they act: data-confirm="question".
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  });
})();
