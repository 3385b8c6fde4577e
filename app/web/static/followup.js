// The follow-up page, a little better with JavaScript: the answer is sent without leaving the
// page, the button says it is sending (and cannot send twice), and focus moves to what the
// answer brought (the thanks, or what to fix). Without it the form posts as a plain form.
(function () {
  "use strict";

  function focusResult(main) {
    var target = main.querySelector("#problem") || main.querySelector("h1");
    if (target) target.focus();
  }

  function enhance(main) {
    var form = main.querySelector("form.answer");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      var button = form.querySelector("button[type=submit]");
      if (!button || !window.fetch || !window.DOMParser || !window.URLSearchParams) return;
      event.preventDefault();
      if (button.disabled) return;
      var label = button.textContent;
      button.disabled = true;
      button.textContent = main.getAttribute("data-sending") || label;
      var old = main.querySelector(".offline");
      if (old) old.remove();
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var next = page.getElementById("main");
          if (!next) throw new Error("not a page of ours");
          document.title = page.title;
          main.replaceWith(next);
          enhance(next);
          focusResult(next);
        })
        .catch(function () {
          button.disabled = false;
          button.textContent = label;
          var note = document.createElement("p");
          note.className = "offline";
          note.setAttribute("role", "alert");
          note.textContent = main.getAttribute("data-offline") || "";
          form.appendChild(note);
        });
    });
  }

  var main = document.getElementById("main");
  if (main) enhance(main);
})();
