// tokenledger web UI: the copy button of a new secret, and the removal of
// the page that shows it from the browser's history, so that reloading
// shows the token's page (without the secret) instead of posting again.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("secret-box");
  if (box && box.dataset.replaceUrl && window.history.replaceState) {
    window.history.replaceState(null, "", box.dataset.replaceUrl);
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.dataset.copy);
      var status = document.getElementById("copy-status");
      var done = function (text) { if (status) { status.textContent = text; } };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(
          function () { done("Copied."); },
          function () { field.select(); done("Select and copy it by hand (Ctrl+C)."); });
      } else {
        field.select();
        done(document.execCommand && document.execCommand("copy") ? "Copied." : "Select and copy it by hand (Ctrl+C).");
      }
    });
  });
});
