/*! Closeloop survey widget. Paste into a page:
 *  <script src="https://HOST/widget.js" data-key="cl_..." data-source="checkout-web"
 *          data-metric="nps" async></script>
 * Optional: data-locale, data-touchpoint, data-journey-stage, data-customer-id,
 * data-customer-signature. It adds no global, keeps its markup and styles in a shadow
 * root, and catches its own errors: whatever happens to it, the page goes on. */
(function () {
  "use strict";

  // The words in each language: app/web/i18n.py (WIDGET_TEXT), written in here as the
  // service serves this file.
  var TEXT = __WIDGET_TEXT__;
  var SCALES = { nps: [0, 10], csat: [1, 5] };
  // After an answer or a dismissal, the same question is not asked again on this site for
  // this long (when the browser lets us remember it).
  var QUIET_MS = 90 * 24 * 3600 * 1000;

  var CSS =
    // The page's styles reach the host element, and through it what inherits: start afresh.
    ":host{all:initial}" +
    ".card{all:initial;display:block;position:fixed;right:16px;bottom:16px;z-index:2147483000;box-sizing:border-box;" +
    "width:380px;max-width:calc(100vw - 32px);max-height:calc(100vh - 32px);overflow:auto;" +
    "padding:16px 16px 14px;background:#fff;color:#1f2328;border:1px solid #8c959f;" +
    "border-radius:12px;box-shadow:0 8px 28px rgba(0,0,0,.22);font:15px/1.45 system-ui," +
    "-apple-system,'Segoe UI',Roboto,'Noto Sans','PingFang SC','Microsoft YaHei',sans-serif;" +
    "text-align:left}" +
    "*{box-sizing:border-box}" +
    "form{margin:0}fieldset{border:0;margin:0 0 10px;padding:0;min-width:0}" +
    "legend{font-weight:600;font-size:16px;padding:0 32px 8px 0}" +
    ".scale{display:grid;gap:4px}" +
    ".scale label{position:relative;display:block}" +
    ".scale input{position:absolute;opacity:0;inset:0;margin:0;width:100%;height:100%;" +
    "cursor:pointer}" +
    ".scale span{display:flex;align-items:center;justify-content:center;min-height:36px;" +
    "border:2px solid #6b7480;border-radius:6px;font-weight:600;background:#fff}" +
    ".scale input:hover+span{border-color:#0b57d0;background:#f3f7fe}" +
    ".scale input:checked+span{background:#0b57d0;border-color:#0b57d0;color:#fff}" +
    ".scale input:focus-visible+span{outline:3px solid #0b57d0;outline-offset:2px}" +
    ".ends{display:flex;justify-content:space-between;gap:8px;font-size:13px;color:#4a5360;" +
    "margin-top:4px}" +
    "label.c{display:block;font-weight:600;margin:6px 0 4px}" +
    "textarea{display:block;width:100%;min-height:56px;padding:6px 8px;font:inherit;" +
    "color:#1f2328;background:#fff;border:2px solid #6b7480;border-radius:6px;resize:vertical}" +
    "textarea:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}" +
    ".send{margin-top:10px;min-height:40px;padding:6px 18px;font:inherit;font-weight:600;" +
    "color:#fff;background:#0b57d0;border:2px solid #0b57d0;border-radius:6px;cursor:pointer}" +
    ".send[disabled]{background:#4a5360;border-color:#4a5360;cursor:progress}" +
    ".close{position:absolute;top:8px;right:8px;width:32px;height:32px;padding:0;font:20px/1 " +
    "system-ui,sans-serif;color:#1f2328;background:transparent;border:0;border-radius:6px;" +
    "cursor:pointer}" +
    ".close:hover{background:#eef1f5}" +
    "button:focus-visible{outline:3px solid #1f2328;outline-offset:2px}" +
    ".status{margin:8px 0 0;font-weight:600}.status:empty{margin:0}" +
    ".status.bad{color:#b3261e}" +
    ".thanks{margin:4px 40px 4px 0;font-size:16px;font-weight:600}.thanks:focus{outline:none}" +
    ".nps .scale{grid-template-columns:repeat(11,1fr)}.csat .scale{grid-template-columns:" +
    "repeat(5,1fr)}@media (max-width:420px){.nps .scale{grid-template-columns:repeat(6,1fr)}}";

  function language(tag) {
    var parts = String(tag || "").toLowerCase().replace(/_/g, "-").split("-");
    if (parts[0] === "zh") {
      var traditional = parts.indexOf("hant") > 0 || parts.indexOf("tw") > 0 ||
        parts.indexOf("hk") > 0 || parts.indexOf("mo") > 0;
      return traditional ? "zh-Hant" : "zh-Hans";
    }
    return TEXT[parts[0]] ? parts[0] : "en";
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    for (var name in attributes) node.setAttribute(name, attributes[name]);
    if (text != null) node.textContent = text;
    return node;
  }

  function remembered(name) {
    try {
      var at = Number(window.localStorage.getItem(name));
      return at > 0 && Date.now() - at < QUIET_MS;
    } catch (e) { return false; }
  }

  function remember(name) {
    try { window.localStorage.setItem(name, String(Date.now())); } catch (e) { /* private */ }
  }

  function randomKey() {
    try { if (window.crypto && crypto.randomUUID) return crypto.randomUUID(); } catch (e) { /**/ }
    return "w-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function start(script) {
    var data = script.dataset;
    if (!data.key || !data.source) {
      console.warn("Closeloop widget: data-key and data-source are required.");
      return;
    }
    var metric = data.metric === "csat" ? "csat" : "nps";
    var memory = "closeloop:" + data.source + ":" + metric;
    if (remembered(memory)) return;
    var lang = language(data.locale || navigator.language);
    var t = TEXT[lang];
    var endpoint = new URL("v1/feedback", script.src).href;

    var host = element("div", { "data-closeloop-widget": "" });
    var root = host.attachShadow({ mode: "open" });
    if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet) {
      // A constructed sheet: allowed even where the page's CSP forbids inline styles.
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.appendChild(element("style", {}, CSS));
    }

    var card = element("section", { "class": "card " + metric, lang: lang,
      role: "region", "aria-labelledby": "q" });
    var close = element("button", { type: "button", "class": "close", "aria-label": t.close },
      "×");
    var form = element("form", { novalidate: "" });
    var fieldset = element("fieldset", { "aria-describedby": "ends" });
    fieldset.appendChild(element("legend", { id: "q" }, t[metric]));
    var scale = element("div", { "class": "scale" });
    var low = SCALES[metric][0], high = SCALES[metric][1];
    for (var score = low; score <= high; score++) {
      var option = element("label");
      option.appendChild(element("input", { type: "radio", name: "score", value: String(score),
        "aria-label": String(score) }));
      option.appendChild(element("span", { "aria-hidden": "true" }, String(score)));
      scale.appendChild(option);
    }
    fieldset.appendChild(scale);
    var ends = element("div", { "class": "ends", id: "ends" });
    ends.appendChild(element("span", {}, low + " = " + t[metric + "Low"]));
    ends.appendChild(element("span", {}, high + " = " + t[metric + "High"]));
    fieldset.appendChild(ends);
    form.appendChild(fieldset);
    form.appendChild(element("label", { "class": "c", "for": "comment" }, t.comment));
    var comment = element("textarea", { id: "comment", rows: "2", maxlength: "2000" });
    form.appendChild(comment);
    var send = element("button", { type: "submit", "class": "send" }, t.send);
    form.appendChild(send);
    var status = element("p", { "class": "status", role: "status" });
    form.appendChild(status);
    card.appendChild(close);
    card.appendChild(form);
    root.appendChild(card);
    document.body.appendChild(host);

    function dismiss() {
      remember(memory);
      host.remove();
    }
    close.addEventListener("click", dismiss);
    card.addEventListener("keydown", function (event) {
      if (event.key === "Escape") dismiss();
    });

    var idempotencyKey = null, lastBody = null;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      try {
        var chosen = form.querySelector("input[name=score]:checked");
        if (!chosen) {
          status.className = "status bad";
          status.textContent = t.pick;
          return;
        }
        var body = { source: data.source, channel: "web", metric: metric,
          score: Number(chosen.value) };
        var text = comment.value.trim();
        if (text) body.comment = text;
        if (data.touchpoint) body.touchpoint = data.touchpoint;
        if (data.journeyStage) body.journey_stage = data.journeyStage;
        if (data.customerId || data.locale) {
          body.customer = {};
          if (data.customerId) body.customer.external_id = data.customerId;
          if (data.customerSignature) body.customer.signature = data.customerSignature;
          if (data.locale) body.customer.locale = data.locale;
        }
        var json = JSON.stringify(body);
        // A retry of the same answer is recognised as one; a changed answer is a new one.
        if (json !== lastBody) { idempotencyKey = randomKey(); lastBody = json; }
        send.disabled = true;
        send.textContent = t.sending;
        status.className = "status";
        status.textContent = "";
        fetch(endpoint, {
          method: "POST", mode: "cors", credentials: "omit", body: json,
          headers: { "Authorization": "Bearer " + data.key, "Content-Type": "application/json",
            "Idempotency-Key": idempotencyKey }
        }).then(function (response) {
          if (!response.ok) throw new Error("Closeloop answered " + response.status);
          remember(memory);
          var thanks = element("p", { "class": "thanks", tabindex: "-1", role: "status" },
            t.thanks);
          form.replaceWith(thanks);
          thanks.focus();
        }).catch(function (error) {
          console.warn("Closeloop widget:", error && error.message);
          send.disabled = false;
          send.textContent = t.send;
          status.className = "status bad";
          status.textContent = t.failed;
        });
      } catch (error) {
        console.warn("Closeloop widget:", error && error.message);
      }
    });
  }

  try {
    var script = document.currentScript ||
      document.querySelector("script[src*='/widget.js'][data-key]");
    if (!script || !window.fetch || !document.documentElement.attachShadow) return;
    if (document.body) {
      start(script);
    } else {
      document.addEventListener("DOMContentLoaded", function () {
        try { start(script); } catch (error) { console.warn("Closeloop widget:", error); }
      });
    }
  } catch (error) {
    console.warn("Closeloop widget:", error);
  }
})();
